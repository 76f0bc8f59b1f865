//! Storage: the connection enum, the pools, migrations, the schema and one file of queries
//! per table, for SQLite and PostgreSQL alike. Queries only: no HTTP and no use-case rules.
//!
//! `DATABASE_URL` picks the engine. Migrations for that engine run on a plain connection before
//! the pool is built, so a bad URL or an unreachable server fails start-up with the real error.

/// Ids of up to `$limit` due rows of a lease-based queue table (invitations, emails, webhook
/// deliveries): rows in status `$waiting` whose `next_attempt_at` has come, and rows left in
/// `$working` by a worker whose lease (`claimed_until`) ran out, oldest due first. On
/// PostgreSQL they are locked `FOR UPDATE SKIP LOCKED`, so replicas never claim the same row;
/// SQLite has one process and one writer. Use inside the claiming transaction.
macro_rules! due_queue_ids {
    ($conn:expr, $table:ident, $waiting:expr, $working:expr, $limit:expr, $now:expr) => {{
        use $crate::store::schema::$table as q;
        let due = || {
            q::status
                .eq($waiting)
                .and(q::next_attempt_at.le($now))
                .or(q::status.eq($working).and(q::claimed_until.lt($now)))
        };
        let ids: Vec<String> = match $conn {
            $crate::store::DbConnection::Postgres(pg) => q::table
                .filter(due())
                .order(q::next_attempt_at)
                .select(q::id)
                .limit($limit)
                .for_update()
                .skip_locked()
                .load(pg)?,
            $crate::store::DbConnection::Sqlite(lite) => q::table
                .filter(due())
                .order(q::next_attempt_at)
                .select(q::id)
                .limit($limit)
                .load(lite)?,
        };
        ids
    }};
}
pub(crate) use due_queue_ids;

/// The state of a lease-based queue table for `/metrics`: rows waiting in `$waiting`, how
/// many of them are due at `$now`, and the oldest due one's `next_attempt_at`. Two counts.
macro_rules! queue_state {
    ($conn:expr, $table:ident, $waiting:expr, $now:expr) => {{
        use diesel::dsl::{count_star, min};
        use $crate::store::schema::$table as q;
        let waiting: i64 = q::table
            .filter(q::status.eq($waiting))
            .select(count_star())
            .first($conn)?;
        let (due, oldest_due): (i64, Option<chrono::NaiveDateTime>) = q::table
            .filter(q::status.eq($waiting).and(q::next_attempt_at.le($now)))
            .select((count_star(), min(q::next_attempt_at)))
            .first($conn)?;
        $crate::store::QueueState {
            waiting,
            due,
            oldest_due,
        }
    }};
}
pub(crate) use queue_state;

/// What [`queue_state!`] reads from one queue table.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueueState {
    /// Rows waiting for their time (or their next attempt).
    pub waiting: i64,
    /// Of those, the rows whose time has come.
    pub due: i64,
    /// The earliest `next_attempt_at` among waiting rows, when one is due.
    pub oldest_due: Option<chrono::NaiveDateTime>,
}

/// Extends to `$until` the lease of those of `$ids` in a queue table that worker `$me` still
/// holds (status `$working`, claimed by it): the heartbeat of a worker that is still on them.
/// Returns how many it still holds.
macro_rules! extend_claims {
    ($conn:expr, $table:ident, $working:expr, $me:expr, $ids:expr, $until:expr) => {{
        use $crate::store::schema::$table as q;
        diesel::update(
            q::table
                .filter(q::id.eq_any($ids))
                .filter(q::status.eq($working))
                .filter(q::claimed_by.eq($me)),
        )
        .set(q::claimed_until.eq(Some($until)))
        .execute($conn)
    }};
}
pub(crate) use extend_claims;

/// Narrows boxed query `$q` to rows whose contact property `$key` equals `$value`, compared
/// as text ignoring case (a string as is, a number as written, a boolean as `true`/`false`).
/// The short form reads `contacts.properties`; the long one takes the SQL of the properties
/// column `$col` and wraps the condition in `$prefix` … `$suffix` (e.g. a subquery). The key
/// must have passed `followups::is_property_key`.
macro_rules! filter_property {
    ($q:ident, $key:expr, $value:expr, $pg:expr) => {
        $crate::store::filter_property!($q, $pg, "", "contacts.properties", $key, $value, "")
    };
    ($q:ident, $pg:expr, $prefix:expr, $col:expr, $key:expr, $value:expr, $suffix:expr) => {{
        use diesel::dsl::sql;
        use diesel::sql_types::{Bool, Text};
        let (prefix, col, suffix): (&str, &str, &str) = ($prefix, $col, $suffix);
        let (key, value): (String, String) = ($key.to_string(), $value.to_string());
        if $pg {
            $q = $q.filter(
                sql::<Bool>(&format!("{prefix}LOWER({col}::jsonb ->> "))
                    .bind::<Text, _>(key)
                    .sql(") = LOWER(")
                    .bind::<Text, _>(value)
                    .sql(&format!("){suffix}")),
            );
        } else {
            let path = format!("$.\"{key}\"");
            $q = $q.filter(
                sql::<Bool>(&format!("{prefix}LOWER(CASE json_type({col}, "))
                    .bind::<Text, _>(path.clone())
                    .sql(&format!(") WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(json_extract({col}, "))
                    .bind::<Text, _>(path)
                    .sql(") AS TEXT) END) = LOWER(")
                    .bind::<Text, _>(value)
                    .sql(&format!("){suffix}")),
            );
        }
    }};
}
pub(crate) use filter_property;

/// `text` as a LIKE pattern matching it anywhere, lowercased, with `\` escaping `%` and `_`
/// (use with `ESCAPE '\'`).
pub fn contains_pattern(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

pub mod api_keys;
pub mod batch;
pub mod contacts;
pub mod emails;
pub mod followups;
pub mod idempotency;
pub mod invitations;
pub mod jobs;
pub mod models;
pub mod reports;
pub mod responses;
pub mod rollups;
pub mod schema;
pub mod segments;
pub mod surveys;
pub mod users;
pub mod webhooks;

use std::time::Duration;

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::DatabaseUrl;
use crate::error::AppError;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to either engine; diesel dispatches each query to the right backend.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

pub type DbPool = Pool<ConnectionManager<DbConnection>>;
pub type PooledConn = PooledConnection<ConnectionManager<DbConnection>>;

/// Per-connection SQLite settings: foreign keys are off by default in SQLite and the busy
/// timeout makes writers wait for each other instead of failing with "database is locked".
#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        if let DbConnection::Sqlite(c) = conn {
            c.batch_execute(
                "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL;",
            )
            .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// The connection pool and which engine it talks to.
///
/// On SQLite, writes go through a pool of one connection: SQLite allows one writer at a time,
/// and queueing writers in-process is faster and fairer than letting them collide on the file
/// lock ("database is locked"). Reads use the larger pool (WAL lets them run beside the
/// writer). On PostgreSQL both are the same pool.
#[derive(Clone)]
pub struct Db {
    pool: DbPool,
    write_pool: DbPool,
    /// SQLite only: the group-commit writer for answers.
    batcher: Option<batch::Batcher>,
    pub engine: Engine,
    /// How long a caller waits for a free connection before giving up with a 503: short on
    /// request paths, so an outage answers fast; longer for background workers.
    checkout: Duration,
}

/// Tries of a PostgreSQL transaction aborted by a deadlock or a serialization failure
/// before the error reaches the caller (as a 503).
const TX_ATTEMPTS: u32 = 3;

impl Db {
    /// Applies pending migrations and builds the pool. `checkout` is how long callers wait
    /// for a connection (see [`Db::with_checkout`]).
    pub fn connect(url: &DatabaseUrl, pool_size: u32, checkout: Duration) -> anyhow::Result<Db> {
        let (conn_str, engine) = match url {
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path)
                    .with_context(|| format!("cannot open SQLite database {path:?}"))?;
                // WAL once, before the pool exists: it is a property of the file.
                conn.batch_execute("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")
                    .context("cannot switch SQLite to WAL mode")?;
                let applied = conn
                    .run_pending_migrations(SQLITE_MIGRATIONS)
                    .map_err(|e| anyhow::anyhow!("SQLite migrations failed: {e}"))?;
                log_migrations("sqlite", &applied);
                (path.clone(), Engine::Sqlite)
            }
            DatabaseUrl::Postgres(url) => {
                let mut conn = PgConnection::establish(url)
                    .context("cannot connect to PostgreSQL (check DATABASE_URL)")?;
                let applied = conn
                    .run_pending_migrations(POSTGRES_MIGRATIONS)
                    .map_err(|e| anyhow::anyhow!("PostgreSQL migrations failed: {e}"))?;
                log_migrations("postgres", &applied);
                (url.clone(), Engine::Postgres)
            }
        };
        let build = |size: u32| {
            Pool::builder()
                .max_size(size)
                .min_idle(Some(1))
                .connection_timeout(Duration::from_secs(10))
                .connection_customizer(Box::new(SqlitePragmas))
                .build(ConnectionManager::<DbConnection>::new(conn_str.clone()))
                .context("cannot build the database connection pool")
        };
        let pool = build(pool_size)?;
        let write_pool = match engine {
            Engine::Sqlite => build(1)?,
            Engine::Postgres => pool.clone(),
        };
        let batcher = match engine {
            Engine::Sqlite => Some(batch::Batcher::start(write_pool.clone())),
            Engine::Postgres => None,
        };
        Ok(Db {
            pool,
            write_pool,
            batcher,
            engine,
            checkout,
        })
    }

    /// Each pool's connections in use and idle, by name (`read`, and `write` on SQLite where
    /// writes have their own pool). No query: r2d2 keeps the counts.
    pub fn pool_states(&self) -> Vec<(&'static str, u32, u32)> {
        let state = |pool: &DbPool| {
            let s = pool.state();
            (s.connections - s.idle_connections, s.idle_connections)
        };
        let (used, idle) = state(&self.pool);
        let mut out = vec![("read", used, idle)];
        if self.engine == Engine::Sqlite {
            let (used, idle) = state(&self.write_pool);
            out.push(("write", used, idle));
        }
        out
    }

    /// The same pools with another connection checkout timeout (background workers wait
    /// longer than requests).
    pub fn with_checkout(&self, checkout: Duration) -> Db {
        Db {
            checkout,
            ..self.clone()
        }
    }

    /// Runs read-only `f` with a pooled connection on the blocking thread pool, so sync diesel
    /// never blocks the async executor.
    pub async fn run<F, R>(&self, f: F) -> Result<R, AppError>
    where
        F: FnOnce(&mut DbConnection) -> Result<R, AppError> + Send + 'static,
        R: Send + 'static,
    {
        let (pool, checkout) = (self.pool.clone(), self.checkout);
        Self::blocking(move || f(&mut *checkout_from(&pool, checkout)?)).await
    }

    /// Runs `f`, which writes, with a connection from the write pool.
    ///
    /// When PostgreSQL aborts `f`'s transaction for a deadlock or a serialization failure,
    /// `f` runs again (up to 3 tries, after a short random pause), so `f` must be one
    /// transaction, or a single statement, that is safe to repeat once rolled back.
    pub async fn write<F, R>(&self, mut f: F) -> Result<R, AppError>
    where
        F: FnMut(&mut DbConnection) -> Result<R, AppError> + Send + 'static,
        R: Send + 'static,
    {
        let (pool, checkout) = (self.write_pool.clone(), self.checkout);
        Self::blocking(move || {
            let mut conn = checkout_from(&pool, checkout)?;
            let mut attempt = 1;
            loop {
                match f(&mut conn) {
                    Err(e) if e.is_transaction_conflict() && attempt < TX_ATTEMPTS => {
                        tracing::warn!(attempt, error = %e, "transaction aborted by a conflict; trying again");
                        std::thread::sleep(Duration::from_millis(
                            5 + rand::random_range(0..20 * attempt as u64),
                        ));
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        })
        .await
    }

    /// Like `write`, for small hot writes (recording answers), always inside a transaction:
    /// on SQLite they are grouped with concurrent ones into one transaction (each in its own
    /// savepoint); on PostgreSQL each gets its own transaction.
    pub async fn write_grouped<F, R>(&self, mut f: F) -> Result<R, AppError>
    where
        F: FnMut(&mut DbConnection) -> Result<R, AppError> + Send + 'static,
        R: Send + 'static,
    {
        match &self.batcher {
            // Each job runs in a savepoint of its batch's transaction (one writer: no
            // deadlocks on SQLite).
            Some(b) => b.write(f).await,
            // Its own transaction, retried by `write` after a deadlock.
            None => self.write(move |conn| conn.transaction(&mut f)).await,
        }
    }

    /// Runs `f` on the blocking thread pool, in the caller's tracing span.
    async fn blocking<F, R>(f: F) -> Result<R, AppError>
    where
        F: FnOnce() -> Result<R, AppError> + Send + 'static,
        R: Send + 'static,
    {
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            f()
        })
        .await
        .map_err(|e| AppError::internal(anyhow::anyhow!("blocking task failed: {e}")))?
    }

    /// Whether the database answers a trivial query within the checkout timeout (at most
    /// two seconds).
    pub async fn ping(&self) -> bool {
        let pool = self.pool.clone();
        let wait = self.checkout.min(Duration::from_secs(2));
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get_timeout(wait).ok()?;
            conn.batch_execute("SELECT 1").ok()
        })
        .await
        .ok()
        .flatten()
        .is_some()
    }

    /// A read connection for long synchronous readers (exports) on a blocking thread.
    pub fn read_conn(&self) -> Result<PooledConn, AppError> {
        checkout_from(&self.pool, self.checkout)
    }

    /// A write connection for synchronous callers (CLI, background workers on blocking threads).
    pub fn get(&self) -> Result<PooledConn, AppError> {
        checkout_from(&self.write_pool, self.checkout)
    }
}

/// Says at start which engine is used and which migrations were just applied.
fn log_migrations(engine: &str, applied: &[diesel::migration::MigrationVersion<'_>]) {
    if applied.is_empty() {
        tracing::info!(engine, "database schema is up to date");
    } else {
        let list = applied
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        tracing::info!(engine, migrations = %list, "applied database migrations");
    }
}

/// The ids of a worker's claimed rows that it is still working on. A heartbeat
/// (`Db::keep_claims`) extends their lease until each is recorded and removed.
#[derive(Clone, Default)]
pub struct Held(std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>);

impl Held {
    pub fn new(ids: impl IntoIterator<Item = String>) -> Held {
        Held(std::sync::Arc::new(std::sync::Mutex::new(
            ids.into_iter().collect(),
        )))
    }

    /// The row is recorded (or given up): stop extending its lease.
    pub fn release(&self, id: &str) {
        if let Ok(mut set) = self.0.lock() {
            set.remove(id);
        }
    }

    fn snapshot(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// A spawned task that is stopped when this is dropped.
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Extends the lease of the given rows claimed by an instance until the given time.
pub type ExtendFn =
    fn(&mut DbConnection, &str, &[String], chrono::NaiveDateTime) -> Result<usize, AppError>;

impl Db {
    /// The heartbeat of a worker's claims: every third of `lease`, extends the lease of the
    /// rows in `held` that instance `me` still holds, until the returned guard is dropped (at
    /// the end of the batch, or when the worker's task unwinds). So a live worker never loses
    /// its rows to another replica however long its batch takes, and a dead one's rows are
    /// free again one lease after its last beat.
    pub fn keep_claims(
        &self,
        me: std::sync::Arc<str>,
        held: Held,
        lease: chrono::TimeDelta,
        extend: ExtendFn,
    ) -> AbortOnDrop {
        let db = self.clone();
        let every = Duration::from_millis((lease.num_milliseconds() / 3).max(250) as u64);
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let ids = held.snapshot();
                if ids.is_empty() {
                    continue;
                }
                let me = me.clone();
                let until = crate::domain::now() + lease;
                if let Err(e) = db.write(move |conn| extend(conn, &me, &ids, until)).await {
                    tracing::warn!(error = %e, "cannot extend the lease of claimed rows");
                }
            }
        }))
    }
}

/// A connection from `pool`, or a 503 after waiting `timeout` (the database is down or
/// every connection is busy).
fn checkout_from(pool: &DbPool, timeout: Duration) -> Result<PooledConn, AppError> {
    pool.get_timeout(timeout).map_err(AppError::from)
}

/// Applies migrations only (the `closeloop migrate` command).
pub fn migrate(url: &DatabaseUrl) -> anyhow::Result<Vec<String>> {
    let applied = match url {
        DatabaseUrl::Sqlite(path) => {
            let mut conn = SqliteConnection::establish(path)
                .with_context(|| format!("cannot open SQLite database {path:?}"))?;
            conn.batch_execute("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")?;
            conn.run_pending_migrations(SQLITE_MIGRATIONS)
                .map_err(|e| anyhow::anyhow!("SQLite migrations failed: {e}"))?
                .iter()
                .map(|v| v.to_string())
                .collect()
        }
        DatabaseUrl::Postgres(url) => {
            let mut conn = PgConnection::establish(url)
                .context("cannot connect to PostgreSQL (check DATABASE_URL)")?;
            conn.run_pending_migrations(POSTGRES_MIGRATIONS)
                .map_err(|e| anyhow::anyhow!("PostgreSQL migrations failed: {e}"))?
                .iter()
                .map(|v| v.to_string())
                .collect()
        }
    };
    Ok(applied)
}

/// Turns a JSON properties object into its stored text.
pub fn to_json_text(value: &serde_json::Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".into())
}
