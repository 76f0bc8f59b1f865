//! Storage: the connection enum, the pools, migrations, the schema and one file of queries
//! per table, for SQLite and PostgreSQL alike. Queries only: no HTTP and no use-case rules.
//!
//! `DATABASE_URL` picks the engine. Migrations for that engine run on a plain connection before
//! the pool is built, so a bad URL or an unreachable server fails start-up with the real error.

/// The query for the ids of up to `$limit` rows of a lease-based queue table (invitations,
/// emails, webhook deliveries) in status `$waiting` whose `next_attempt_at` has come, oldest
/// first. It reads the `(status, next_attempt_at)` index of the table over the due range only
/// (checked by [`plans`]).
macro_rules! due_queue_query {
    ($table:ident, $waiting:expr, $limit:expr, $now:expr) => {{
        use $crate::store::schema::$table as q;
        q::table
            .filter(q::status.eq($waiting))
            .filter(q::next_attempt_at.le($now))
            .order(q::next_attempt_at)
            .select(q::id)
            .limit($limit)
    }};
}
pub(crate) use due_queue_query;

/// Runs `$body` with `$c` bound to the engine's own connection instead of the
/// multi-engine wrapper: for SQL the wrapper cannot express (`ON CONFLICT … DO NOTHING`),
/// and on the hot paths, where the engine's statement cache finds a statement by its type
/// without building its SQL text first (the wrapper builds the text on every run). `$body`
/// is compiled once per engine.
macro_rules! on_engine {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::store::DbConnection::Sqlite($c) => $body,
            $crate::store::DbConnection::Postgres($c) => $body,
        }
    };
}
pub(crate) use on_engine;

/// A statement that diesel would prepare anew on every run (every `UPDATE`, every upsert,
/// every `sql_query`: their SQL can vary with the values of one Rust type), kept prepared in
/// the connection's statement cache under its SQL text instead. On the hot paths this saves
/// SQLite's parser and planner, and PostgreSQL's parse and plan, on every run. Only for
/// statements of a fixed shape: each distinct SQL text takes a cache entry.
#[derive(Debug, Clone, Copy)]
pub struct Cached<Q>(pub Q);

impl<Q, DB> diesel::query_builder::QueryFragment<DB> for Cached<Q>
where
    Q: diesel::query_builder::QueryFragment<DB>,
    DB: diesel::backend::Backend,
{
    fn walk_ast<'b>(
        &'b self,
        pass: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> diesel::QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> diesel::QueryResult<bool> {
        Ok(true)
    }
}

/// No static id: the cache keys the statement by its SQL text (and bind types).
impl<Q> diesel::query_builder::QueryId for Cached<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: diesel::query_builder::Query> diesel::query_builder::Query for Cached<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, Conn> diesel::RunQueryDsl<Conn> for Cached<Q> {}

/// The query for the ids of up to `$limit` rows left in status `$working` by a worker whose
/// lease (`claimed_until`) ran out. It reads the `(status, …)` index over the rows in flight
/// only. Kept apart from [`due_queue_query!`]: with both conditions in one `OR`, SQLite with
/// statistics (ANALYZE) scans the whole table.
macro_rules! expired_claims_query {
    ($table:ident, $working:expr, $limit:expr, $now:expr) => {{
        use $crate::store::schema::$table as q;
        q::table
            .filter(q::status.eq($working))
            .filter(q::claimed_until.lt($now))
            .select(q::id)
            .limit($limit)
    }};
}
pub(crate) use expired_claims_query;

/// The ids of up to `$limit` rows to claim from queue `$table`: first those whose worker's
/// lease ran out ([`expired_claims_query!`]), then those whose time has come
/// ([`due_queue_query!`]). On PostgreSQL they are locked `FOR UPDATE SKIP LOCKED`, so
/// replicas never claim the same row; SQLite has one process and one writer. Use inside the
/// claiming transaction.
macro_rules! due_queue_ids {
    ($conn:expr, $table:ident, $waiting:expr, $working:expr, $limit:expr, $now:expr) => {{
        let limit: i64 = $limit;
        let mut ids: Vec<String> = match &mut *$conn {
            $crate::store::DbConnection::Postgres(pg) => {
                $crate::store::expired_claims_query!($table, $working, limit, $now)
                    .for_update()
                    .skip_locked()
                    .load(pg)?
            }
            $crate::store::DbConnection::Sqlite(lite) => {
                $crate::store::expired_claims_query!($table, $working, limit, $now).load(lite)?
            }
        };
        let rest = limit - ids.len() as i64;
        if rest > 0 {
            let due: Vec<String> = match &mut *$conn {
                $crate::store::DbConnection::Postgres(pg) => {
                    $crate::store::due_queue_query!($table, $waiting, rest, $now)
                        .for_update()
                        .skip_locked()
                        .load(pg)?
                }
                $crate::store::DbConnection::Sqlite(lite) => {
                    $crate::store::due_queue_query!($table, $waiting, rest, $now).load(lite)?
                }
            };
            ids.extend(due);
        }
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
pub mod plans;
pub mod reports;
pub mod responses;
pub mod retention;
pub mod rollups;
pub mod schema;
pub mod segments;
pub mod surveys;
pub mod users;
pub mod webhooks;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use prometheus_client::metrics::counter::Counter;

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

/// `SQLITE_SYNCHRONOUS=full` (see [`set_sqlite_synchronous`]).
static SQLITE_FULL_SYNC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets SQLite's `synchronous` for the connections opened from now on: `full` (true) syncs
/// the WAL on every commit, so an acknowledged answer survives a power cut; `normal` syncs
/// it at checkpoints only, so a commit survives a crash of the process but the last commits
/// before a power cut may be lost. With group commit one sync serves a whole batch.
pub fn set_sqlite_synchronous(full: bool) {
    SQLITE_FULL_SYNC.store(full, Ordering::Relaxed);
}

/// Per-connection SQLite settings: foreign keys are off by default in SQLite and the busy
/// timeout makes writers wait for each other instead of failing with "database is locked".
/// On PostgreSQL, `prepared_statements: false` turns off diesel's prepared-statement cache
/// (see [`no_statement_cache`]).
#[derive(Debug)]
struct SqlitePragmas {
    prepared_statements: bool,
}

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        match conn {
            DbConnection::Sqlite(c) => c
                .batch_execute(if SQLITE_FULL_SYNC.load(Ordering::Relaxed) {
                    "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                     PRAGMA synchronous = FULL;"
                } else {
                    "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                     PRAGMA synchronous = NORMAL;"
                })
                .map_err(diesel::r2d2::Error::QueryError)?,
            DbConnection::Postgres(c) if !self.prepared_statements => no_statement_cache(c),
            DbConnection::Postgres(_) => {}
        }
        Ok(())
    }
}

/// Turns on SQLite's query planner stability guarantee (QPSG) for every SQLite connection this
/// process opens from now on (an auto-extension runs on each new connection).
///
/// Without it, SQLite (3.47 and later) plans `LIMIT ?` and `LIKE ?` with the value bound to
/// the parameter, and marks the statement to be compiled again whenever that parameter is
/// bound anew. diesel binds every parameter on every run, so each cached statement with a
/// `LIMIT` (every `.first()`) or a `LIKE` was parsed and planned again on every run: 20 % of
/// the CPU of the answer path in a profile (BENCHMARKS.md, section 2d). With QPSG, plans do not
/// depend on bound values and cached statements stay compiled. Our plans do not need those
/// values: the due-row queries are checked with `tests/api/due_queries.rs`.
pub fn stable_sqlite_plans() {
    use libsqlite3_sys as ffi;
    use std::os::raw::{c_char, c_int};

    unsafe extern "C" fn enable_qpsg(
        db: *mut ffi::sqlite3,
        _error: *mut *mut c_char,
        _api: *const ffi::sqlite3_api_routines,
    ) -> c_int {
        // SAFETY: SQLite calls this with a valid, open connection handle; the option takes
        // an int (1: on) and an optional int pointer for the result (none).
        unsafe {
            ffi::sqlite3_db_config(
                db,
                ffi::SQLITE_DBCONFIG_ENABLE_QPSG,
                1 as c_int,
                std::ptr::null_mut::<c_int>(),
            );
        }
        ffi::SQLITE_OK
    }

    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a function with the signature SQLite expects; it stays valid
        // for the life of the process.
        let rc = unsafe { ffi::sqlite3_auto_extension(Some(enable_qpsg)) };
        if rc != ffi::SQLITE_OK {
            tracing::warn!(rc, "cannot register the SQLite query-plan setting");
        }
    });
}

/// Turns off diesel's prepared-statement cache on `conn` (`DATABASE_PREPARED_STATEMENTS=off`):
/// every query is then sent as an unnamed statement (parse, bind and execute in one round
/// trip), which PgBouncer in transaction pooling mode can pass to whichever server connection
/// it picks. With the cache on, diesel names statements (`__diesel_stmt_N`) once per client
/// connection, and the next transaction may run on a server connection that has never seen
/// them ("prepared statement … does not exist") or already has one of that name.
fn no_statement_cache(conn: &mut PgConnection) {
    use diesel::connection::{CacheSize, Connection as _};
    conn.set_prepared_statement_cache_size(CacheSize::Disabled);
}

/// The pool of a PostgreSQL read replica (`DATABASE_READ_URL`) and when it last failed.
#[derive(Clone)]
struct Replica {
    pool: DbPool,
    /// Unix milliseconds until which reads skip the replica after it failed (0: up).
    down_until: Arc<AtomicI64>,
}

/// How long reads skip a replica that failed (a checkout or a lost connection) before they
/// try it again: one slow read per this period while it is down, not one per request.
const REPLICA_RETRY_AFTER: Duration = Duration::from_secs(10);

/// The longest a read waits for a replica connection before it falls back to the primary.
const REPLICA_CHECKOUT: Duration = Duration::from_secs(1);

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Replica {
    fn is_up(&self) -> bool {
        self.down_until.load(Ordering::Relaxed) <= unix_ms()
    }

    /// Skips the replica for [`REPLICA_RETRY_AFTER`]; warns once per outage.
    fn mark_down(&self, why: &dyn std::fmt::Display) {
        let until = unix_ms() + REPLICA_RETRY_AFTER.as_millis() as i64;
        let before = self.down_until.swap(until, Ordering::Relaxed);
        if before == 0 {
            tracing::warn!(error = %why, "the read replica (DATABASE_READ_URL) failed; reads fall back to the primary and try it again every 10 s");
        }
    }

    fn mark_up(&self) {
        if self.down_until.swap(0, Ordering::Relaxed) != 0 {
            tracing::info!("the read replica (DATABASE_READ_URL) answers again; reads go to it");
        }
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
    batcher: batch::Batcher,
    pub engine: Engine,
    /// How long a caller waits for a free connection before giving up with a 503: short on
    /// request paths, so an outage answers fast; longer for background workers.
    checkout: Duration,
    /// PostgreSQL only, when `DATABASE_READ_URL` is set: the replica that serves the reads
    /// that may lag (see [`Db::run_replica`]).
    replica: Option<Replica>,
    /// Reads meant for the replica that the primary served because the replica was down
    /// (`closeloop_db_read_fallback_total`).
    read_fallbacks: Counter,
}

/// Whether a PostgreSQL error means the connection is gone or reaches a read-only server:
/// such a connection is closed for good (the pool then drops it at the next checkout) and
/// the work runs once more on a fresh one.
fn retire_if_lost(conn: &mut DbConnection, e: &AppError) -> bool {
    if !e.is_connection_lost() {
        return false;
    }
    if let DbConnection::Postgres(pg) = conn {
        // A connection to a demoted primary still answers `SELECT 1`, so the pool's check
        // would keep it; ending its own backend makes the check fail. On a dead connection
        // this fails too, which is as good.
        let _ = pg.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())");
    }
    true
}

/// Tries of a PostgreSQL transaction aborted by a deadlock or a serialization failure
/// before the error reaches the caller (as a 503).
const TX_ATTEMPTS: u32 = 3;

impl Db {
    /// Applies pending migrations and builds the pool. `checkout` is how long callers wait
    /// for a connection (see [`Db::with_checkout`]); `prepared_statements: false` turns
    /// diesel's statement cache off on PostgreSQL (`DATABASE_PREPARED_STATEMENTS`, for
    /// PgBouncer's transaction pooling).
    pub fn connect(
        url: &DatabaseUrl,
        pool_size: u32,
        checkout: Duration,
        prepared_statements: bool,
    ) -> anyhow::Result<Db> {
        Self::connect_with_replica(url, None, pool_size, checkout, prepared_statements)
    }

    /// Like [`Db::connect`], with a PostgreSQL read replica (`DATABASE_READ_URL`). The
    /// replica need not be up at start: its pool connects on demand, and reads fall back to
    /// the primary while it is down.
    pub fn connect_with_replica(
        url: &DatabaseUrl,
        read_url: Option<&str>,
        pool_size: u32,
        checkout: Duration,
        prepared_statements: bool,
    ) -> anyhow::Result<Db> {
        let (conn_str, engine) = match url {
            DatabaseUrl::Sqlite(path) => {
                stable_sqlite_plans();
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
                if !prepared_statements {
                    no_statement_cache(&mut conn);
                }
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
                .connection_customizer(Box::new(SqlitePragmas {
                    prepared_statements,
                }))
                .build(ConnectionManager::<DbConnection>::new(conn_str.clone()))
                .context("cannot build the database connection pool")
        };
        let pool = build(pool_size)?;
        let write_pool = match engine {
            Engine::Sqlite => build(1)?,
            Engine::Postgres => pool.clone(),
        };
        let writers = match engine {
            Engine::Sqlite => 1,
            Engine::Postgres => batch::writers_for(pool_size),
        };
        let batcher = batch::Batcher::start(write_pool.clone(), writers, checkout);
        let replica = match (read_url, engine) {
            (None, _) => None,
            (Some(_), Engine::Sqlite) => {
                anyhow::bail!("DATABASE_READ_URL needs a PostgreSQL DATABASE_URL")
            }
            (Some(read_url), Engine::Postgres) => Some(Replica {
                pool: Pool::builder()
                    .max_size(pool_size)
                    .min_idle(Some(0))
                    .connection_timeout(REPLICA_CHECKOUT)
                    .connection_customizer(Box::new(SqlitePragmas {
                        prepared_statements,
                    }))
                    .build_unchecked(ConnectionManager::<DbConnection>::new(read_url)),
                down_until: Arc::new(AtomicI64::new(0)),
            }),
        };
        Ok(Db {
            pool,
            write_pool,
            batcher,
            engine,
            checkout,
            replica,
            read_fallbacks: Counter::default(),
        })
    }

    /// Empties the page cache of every idle SQLite connection (`PRAGMA shrink_memory`; up to
    /// 2 MB each after a burst). The idle memory trim (`startup::release_memory_when_idle`)
    /// calls it once the server has answered nothing for a second; the next statements read
    /// their pages again from the operating system's cache. PostgreSQL: nothing to do.
    pub fn release_memory(&self) {
        if self.engine != Engine::Sqlite {
            return;
        }
        for pool in [&self.pool, &self.write_pool] {
            // Hold the idle connections together, or `try_get` hands out the same one again.
            let held: Vec<PooledConn> = (0..pool.state().idle_connections)
                .map_while(|_| pool.try_get())
                .collect();
            for mut conn in held {
                if let DbConnection::Sqlite(c) = &mut *conn {
                    let _ = c.batch_execute("PRAGMA shrink_memory");
                }
            }
        }
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
        if let Some(r) = &self.replica {
            let (used, idle) = state(&r.pool);
            out.push(("replica", used, idle));
        }
        out
    }

    /// The counter of reads meant for the replica that the primary served, for `/metrics`.
    pub fn read_fallbacks(&self) -> Counter {
        self.read_fallbacks.clone()
    }

    /// Whether a read replica is configured.
    pub fn has_replica(&self) -> bool {
        self.replica.is_some()
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
        F: FnMut(&mut DbConnection) -> Result<R, AppError> + Send + 'static,
        R: Send + 'static,
    {
        let (pool, checkout) = (self.pool.clone(), self.checkout);
        Self::blocking(move || read_on(&pool, checkout, f)).await
    }

    /// Runs read-only `f` on the read replica when one is configured (`DATABASE_READ_URL`),
    /// else like [`Db::run`]. For reads that may lag the primary by the replica's replay
    /// delay: reports, dashboards, exports, lists. Never for a read that must see a write
    /// just made (the page after a redirect). When the replica cannot be reached (no
    /// connection within 1 s, or the connection drops) the primary serves the read, a
    /// warning is logged, `closeloop_db_read_fallback_total` counts it, and reads skip the
    /// replica for 10 s before trying it again.
    pub async fn run_replica<F, R>(&self, f: F) -> Result<R, AppError>
    where
        F: FnMut(&mut DbConnection) -> Result<R, AppError> + Send + 'static,
        R: Send + 'static,
    {
        let Some(replica) = self.replica.clone() else {
            return self.run(f).await;
        };
        let (pool, checkout, fallbacks) = (
            self.pool.clone(),
            self.checkout,
            self.read_fallbacks.clone(),
        );
        Self::blocking(move || {
            let mut f = f;
            if replica.is_up() {
                match replica.pool.get_timeout(REPLICA_CHECKOUT.min(checkout)) {
                    Ok(mut conn) => match f(&mut conn) {
                        Err(e) if retire_if_lost(&mut conn, &e) => replica.mark_down(&e),
                        Err(e) if e.is_transaction_conflict() => {
                            tracing::warn!(error = %e, "a read on the replica was cancelled (recovery conflict); the primary serves it")
                        }
                        other => {
                            replica.mark_up();
                            return other;
                        }
                    },
                    Err(e) => replica.mark_down(&e),
                }
            }
            fallbacks.inc();
            read_on(&pool, checkout, f)
        })
        .await
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
        Self::blocking(move || write_retried(&pool, checkout, &mut f)).await
    }

    /// Like `write`, for small hot writes (recording answers), always inside a transaction:
    /// grouped with concurrent ones into one transaction (group commit, see `batch`), their
    /// counter increments in `Tally` folded into one upsert per counter row. `f` may run
    /// again (in a transaction of its own) when another write of its batch fails.
    ///
    /// `key` is the id of the row `f` locks first (the invitation an answer is for): each
    /// batch runs its writes in key order, so concurrent batches do not deadlock on rows they
    /// share.
    pub async fn write_grouped<F, R>(&self, key: impl Into<String>, f: F) -> Result<R, AppError>
    where
        F: FnMut(&mut DbConnection, &mut rollups::Tally) -> Result<R, AppError> + Send + 'static,
        R: Send + 'static,
    {
        self.batcher.write(key.into(), f).await
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

    /// Like [`Db::read_conn`], from the read replica when one is configured and answers
    /// (else the primary, counted as in [`Db::run_replica`]).
    pub fn replica_conn(&self) -> Result<PooledConn, AppError> {
        if let Some(replica) = &self.replica {
            if replica.is_up() {
                match replica
                    .pool
                    .get_timeout(REPLICA_CHECKOUT.min(self.checkout))
                {
                    Ok(conn) => {
                        replica.mark_up();
                        return Ok(conn);
                    }
                    Err(e) => replica.mark_down(&e),
                }
            }
            self.read_fallbacks.inc();
        }
        self.read_conn()
    }

    /// Whether the read replica answers a trivial query within a second (`None`: no
    /// replica configured). A failure makes reads skip it, as a failed read does.
    pub async fn ping_replica(&self) -> Option<bool> {
        let replica = self.replica.clone()?;
        let ok = tokio::task::spawn_blocking(move || {
            let ok = replica
                .pool
                .get_timeout(REPLICA_CHECKOUT)
                .map_err(|e| e.to_string())
                .and_then(|mut c| c.batch_execute("SELECT 1").map_err(|e| e.to_string()));
            match ok {
                Ok(()) => {
                    replica.mark_up();
                    true
                }
                Err(e) => {
                    replica.mark_down(&e);
                    false
                }
            }
        })
        .await
        .unwrap_or(false);
        Some(ok)
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

/// Runs read-only `f` on a connection from `pool`, once more on a fresh connection when the
/// first one turns out to be dead.
fn read_on<F, R>(pool: &DbPool, checkout: Duration, mut f: F) -> Result<R, AppError>
where
    F: FnMut(&mut DbConnection) -> Result<R, AppError>,
{
    let mut conn = checkout_from(pool, checkout)?;
    match f(&mut conn) {
        Err(e) if retire_if_lost(&mut conn, &e) => {
            tracing::warn!(error = %e, "database connection lost; reading once more on a new connection");
            drop(conn);
            f(&mut *checkout_from(pool, checkout)?)
        }
        other => other,
    }
}

/// Runs `f` (one transaction, or a single statement, safe to repeat once rolled back) on a
/// connection from `pool`, as [`Db::write`] and the group commit's single writes do: once
/// more on a fresh connection when the connection was lost, and again (up to
/// [`TX_ATTEMPTS`] tries, after a short random pause) when PostgreSQL aborted it for a
/// deadlock or a serialization failure.
fn write_retried<R>(
    pool: &DbPool,
    checkout: Duration,
    mut f: impl FnMut(&mut DbConnection) -> Result<R, AppError>,
) -> Result<R, AppError> {
    let mut conn = checkout_from(pool, checkout)?;
    let mut attempt = 1;
    let mut reconnected = false;
    loop {
        match f(&mut conn) {
            // The connection died (a failover, a restart) or reaches a demoted primary: once,
            // on a fresh connection, which the pool makes to the server that is primary now
            // (libpq's `target_session_attrs`). `f` is a transaction that was rolled back, or
            // whose commit went through unacknowledged: every writer is written to be repeated
            // (answers upsert by invitation, claims take only rows free or held by this
            // process).
            Err(e) if !reconnected && retire_if_lost(&mut conn, &e) => {
                tracing::warn!(error = %e, "database connection lost; running the transaction once more on a new connection");
                reconnected = true;
                drop(conn);
                conn = checkout_from(pool, checkout)?;
            }
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
}

/// A connection from `pool`, or a 503 after waiting `timeout` (the database is down or
/// every connection is busy).
fn checkout_from(pool: &DbPool, timeout: Duration) -> Result<PooledConn, AppError> {
    pool.get_timeout(timeout).map_err(AppError::from)
}

/// Applies migrations only (the `closeloop migrate` command); `prepared_statements` as in
/// [`Db::connect`].
pub fn migrate(url: &DatabaseUrl, prepared_statements: bool) -> anyhow::Result<Vec<String>> {
    let applied = match url {
        DatabaseUrl::Sqlite(path) => {
            stable_sqlite_plans();
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
            if !prepared_statements {
                no_statement_cache(&mut conn);
            }
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
