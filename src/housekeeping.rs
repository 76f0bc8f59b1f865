//! The daily housekeeping job (`RETENTION_DAYS`, default 90; 0 keeps everything): keeps the
//! tables from growing forever. Once a day across replicas (a `job_runs` row per day, as the
//! overdue digest), it prunes, in short batches so no transaction holds a lock for long:
//! - the bodies of emails sent more than `RETENTION_DAYS` ago (the row, its delivery state
//!   and Message-ID stay, so task pages still say a reply was sent);
//! - webhook deliveries delivered more than `RETENTION_DAYS` ago, with their attempts;
//! - sign-in links and workspace sessions expired more than `RETENTION_DAYS` ago;
//! - `Idempotency-Key` records and `job_runs` rows (past days of daily jobs, one-time keys of
//!   confirmed invitation batches) older than that.
//!
//! Answers, follow-ups, their activity, invitations and contacts are never pruned. What was
//! pruned is logged and counted in the `closeloop_pruned_rows` metric.

use chrono::{NaiveDateTime, TimeDelta};

use crate::domain::now;
use crate::error::AppError;
use crate::store::{retention, Db, DbConnection};
use crate::telemetry::Metrics;

/// The `job_runs` job of the daily run.
pub const JOB: &str = "housekeeping";
/// Rows pruned per transaction.
const BATCH: i64 = 1000;

/// How many rows one run pruned, per kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub email_bodies: usize,
    pub webhook_deliveries: usize,
    pub webhook_attempts: usize,
    pub sign_in_tokens: usize,
    pub sessions: usize,
    pub idempotency_records: usize,
    pub job_runs: usize,
}

impl Pruned {
    /// Each count with its name (the `table` label of `closeloop_pruned_rows`).
    pub fn counts(&self) -> [(&'static str, usize); 7] {
        [
            ("email_bodies", self.email_bodies),
            ("webhook_deliveries", self.webhook_deliveries),
            ("webhook_attempts", self.webhook_attempts),
            ("sign_in_tokens", self.sign_in_tokens),
            ("sessions", self.sessions),
            ("idempotency_records", self.idempotency_records),
            ("job_runs", self.job_runs),
        ]
    }

    pub fn total(&self) -> usize {
        self.counts().iter().map(|(_, n)| n).sum()
    }
}

/// Records today's run; false when it was already recorded (by this replica or another).
pub fn claim_today(conn: &mut DbConnection, t: NaiveDateTime) -> Result<bool, AppError> {
    use diesel::Connection;
    let period = t.format("%Y-%m-%d").to_string();
    match conn.transaction(|conn| crate::store::jobs::claim_run(conn, JOB, &period, t)) {
        // Two replicas raced for the same day: the other one has it.
        Err(AppError::Conflict { .. }) => Ok(false),
        other => other,
    }
}

/// Today's run, unless another replica has done it: `None` when it was not this replica's
/// (or `retention_days` is 0), else what was pruned.
pub async fn run_daily(
    db: &Db,
    retention_days: u32,
    metrics: &Metrics,
) -> Result<Option<Pruned>, AppError> {
    if retention_days == 0 {
        return Ok(None);
    }
    let t = now();
    if !db.write(move |conn| claim_today(conn, t)).await? {
        return Ok(None);
    }
    let cutoff = t - TimeDelta::days(retention_days as i64);
    let pruned = prune(db, cutoff, t).await?;
    for (table, n) in pruned.counts() {
        metrics.pruned(table, n as u64);
    }
    tracing::info!(
        retention_days,
        cutoff = %cutoff,
        email_bodies = pruned.email_bodies,
        webhook_deliveries = pruned.webhook_deliveries,
        webhook_attempts = pruned.webhook_attempts,
        sign_in_tokens = pruned.sign_in_tokens,
        sessions = pruned.sessions,
        idempotency_records = pruned.idempotency_records,
        job_runs = pruned.job_runs,
        "housekeeping: pruned {} rows older than {retention_days} days",
        pruned.total()
    );
    Ok(Some(pruned))
}

/// Prunes everything older than `cutoff`, one batch per transaction, until a batch comes
/// back short.
pub async fn prune(db: &Db, cutoff: NaiveDateTime, t: NaiveDateTime) -> Result<Pruned, AppError> {
    let email_bodies = batches(db, move |c| {
        retention::prune_email_bodies(c, cutoff, BATCH, t)
    })
    .await?;
    let (mut webhook_deliveries, mut webhook_attempts) = (0, 0);
    loop {
        let (d, a) = db
            .write(move |c| retention::prune_webhook_deliveries(c, cutoff, BATCH))
            .await?;
        webhook_deliveries += d;
        webhook_attempts += a;
        if (d as i64) < BATCH {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(Pruned {
        email_bodies,
        webhook_deliveries,
        webhook_attempts,
        sign_in_tokens: batches(db, move |c| {
            retention::prune_sign_in_tokens(c, cutoff, BATCH)
        })
        .await?,
        sessions: batches(db, move |c| retention::prune_sessions(c, cutoff, BATCH)).await?,
        idempotency_records: batches(db, move |c| {
            retention::prune_idempotency_records(c, cutoff, BATCH)
        })
        .await?,
        job_runs: batches(db, move |c| retention::prune_job_runs(c, cutoff, BATCH)).await?,
    })
}

/// Runs `one` (a batch in its own transaction) until it prunes fewer than a batch; the total.
async fn batches<F>(db: &Db, one: F) -> Result<usize, AppError>
where
    F: Fn(&mut DbConnection) -> Result<usize, AppError> + Send + Clone + 'static,
{
    let mut total = 0;
    loop {
        let n = db.write(one.clone()).await?;
        total += n;
        if (n as i64) < BATCH {
            return Ok(total);
        }
        // Let waiting writers (answers on SQLite's one write connection) in between batches.
        tokio::task::yield_now().await;
    }
}
