//! The backfill of segment snapshots: when a survey's `report_segments` gains a property,
//! its earlier answers get the value their contact has *now* (the value at answer time is not
//! known for them), in batches of [`BATCH`] answers, each its own short write transaction,
//! with a pause between batches so answers keep being recorded. It runs in the background
//! after the `PATCH` that queued it, and again at start-up for a backfill a restart cut
//! short (the queue is durable: `segment_backfills`). Until it is done, reports by that
//! property use the live join (`segment_source: "current"`).

use std::time::{Duration, Instant};

use crate::store::{segments, Db};

/// Answers per backfill transaction.
pub const BATCH: i64 = 2000;

/// Pause between two batches: SQLite's one writer (and PostgreSQL's rollup rows) stay
/// available to the answers being recorded meanwhile.
const PAUSE: Duration = Duration::from_millis(5);

/// Wait before the first batch. On PostgreSQL an answer whose transaction began before the
/// `PATCH` committed still snapshots the old list; waiting lets such transactions commit
/// first, so the backfill (which skips answers that have a value) sees and fills them.
/// SQLite has one writer, so it has no such window.
const START_DELAY: Duration = Duration::from_secs(1);

/// Runs every queued backfill to its end in the background.
pub fn spawn_backfill(db: Db) {
    tokio::spawn(async move {
        tokio::time::sleep(START_DELAY).await;
        if let Err(e) = backfill(&db).await {
            tracing::warn!(error = %e, "segment backfill stopped; it resumes at the next start or change");
        }
    });
}

/// Runs every queued backfill to its end; returns how many answers got values.
pub async fn backfill(db: &Db) -> Result<usize, crate::error::AppError> {
    let started = Instant::now();
    let mut filled = 0;
    let mut slowest = Duration::ZERO;
    loop {
        let t = Instant::now();
        let step = db
            .write(|conn| segments::backfill_step(conn, BATCH))
            .await?;
        slowest = slowest.max(t.elapsed());
        let Some(step) = step else { break };
        filled += step.filled;
        if step.finished {
            tracing::info!(
                survey_id = %step.survey_id,
                property = %step.name,
                "segment backfill done"
            );
        }
        tokio::time::sleep(PAUSE).await;
    }
    if filled > 0 {
        tracing::info!(
            answers = filled,
            seconds = started.elapsed().as_secs_f64(),
            slowest_batch_ms = slowest.as_secs_f64() * 1000.0,
            "segment backfills finished"
        );
    }
    Ok(filled)
}
