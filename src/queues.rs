//! The queue and follow-up backlog gauges of `/metrics`: a few counting queries, run at most
//! every 15 s (see [`crate::telemetry::SNAPSHOT_EVERY`]), never on every scrape.

use crate::domain::now;
use crate::error::AppError;
use crate::store::{self, Db, QueueState};
use crate::telemetry::{QueueDepth, QueueSnapshot};

fn depth(q: QueueState, t: chrono::NaiveDateTime) -> QueueDepth {
    QueueDepth {
        waiting: q.waiting,
        due: q.due,
        oldest_due_seconds: q
            .oldest_due
            .map_or(0.0, |at| (t - at).num_milliseconds().max(0) as f64 / 1000.0),
    }
}

/// Reads the invitation, email and webhook queues and the follow-up backlog now.
pub async fn snapshot(db: &Db) -> Result<QueueSnapshot, AppError> {
    db.run(|conn| {
        let t = now();
        let (open, in_progress, overdue) = store::followups::backlog(conn, t)?;
        Ok(QueueSnapshot {
            queues: vec![
                (
                    "invitations",
                    depth(store::invitations::queue_state(conn, t)?, t),
                ),
                ("emails", depth(store::emails::queue_state(conn, t)?, t)),
                ("webhooks", depth(store::webhooks::queue_state(conn, t)?, t)),
            ],
            followups_open: open,
            followups_in_progress: in_progress,
            followups_overdue: overdue,
        })
    })
    .await
}

/// Refreshes the metrics' snapshot when it is older than 15 s; a failed read keeps the last
/// values (and is logged).
pub async fn refresh(db: &Db, metrics: &crate::telemetry::Metrics) {
    if !metrics.claim_snapshot() {
        return;
    }
    match snapshot(db).await {
        Ok(s) => metrics.set_snapshot(&s),
        Err(e) => tracing::warn!(error = %e, "cannot read the queue gauges for /metrics"),
    }
}
