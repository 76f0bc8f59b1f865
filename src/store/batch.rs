//! Group commit: answers from concurrent requests are written by a few writer threads, many
//! to a transaction. A commit (its WAL write, and on PostgreSQL its WAL flush and round
//! trips) then serves a whole batch instead of one answer.
//!
//! - SQLite has one writer anyway: one thread on the one write connection.
//! - PostgreSQL gets a few writer threads ([`writers_for`]), each with a pooled connection for
//!   the length of a batch.
//!
//! A batch runs every job in one transaction, without savepoints. The jobs' counter
//! increments ([`Tally`]) are folded into one upsert per counter row, written in key order
//! just before the commit, so two batches always lock counter rows in the same order. When a
//! job fails, or the commit does, the batch is rolled back and each of its jobs runs again
//! in its own transaction, with the retries of [`super::Db::write`]: a job's failure then
//! reaches only its caller. Jobs must therefore be safe to run again after a rollback (they
//! only touch the database).

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use diesel::Connection;

use super::rollups::Tally;
use super::{retire_if_lost, write_retried, DbConnection, DbPool};
use crate::error::AppError;

/// Most jobs committed together.
const MAX_BATCH: usize = 128;

/// Writer threads for a pool of `pool_size` connections on PostgreSQL: half of the pool, at
/// most 4 (more batches in flight add lock waits on the counter rows, not throughput, on the
/// machines measured in BENCHMARKS.md), at least 1.
pub fn writers_for(pool_size: u32) -> usize {
    (pool_size as usize / 2).clamp(1, 4)
}

trait Job: Send {
    /// The key of the row the job locks first (an invitation's id, say): a batch runs its
    /// jobs in key order.
    fn key(&self) -> &str;
    /// Runs the job on `conn` (inside the caller's transaction), counting into `tally`. The
    /// job keeps its result; `Err(Failed::Job)` says it failed (see [`Job::error`]).
    fn run(&mut self, conn: &mut DbConnection, tally: &mut Tally) -> Result<(), Failed>;
    /// Takes the job's own error from its last run (see [`Failed::Job`]).
    fn take_error(&mut self) -> AppError;
    /// Hands the result of the last run to the caller, or `e` when its transaction failed.
    fn finish(self: Box<Self>, commit: Result<(), AppError>);
}

/// Why a batch's transaction was rolled back.
enum Failed {
    /// A job returned an error (the job keeps it).
    Job,
    /// A statement of the batch itself (the counters, the commit).
    Db(AppError),
}

impl From<diesel::result::Error> for Failed {
    fn from(e: diesel::result::Error) -> Failed {
        Failed::Db(e.into())
    }
}

struct Work<F, R> {
    key: String,
    f: F,
    result: Option<Result<R, AppError>>,
    tx: tokio::sync::oneshot::Sender<Result<R, AppError>>,
}

impl<F, R> Job for Work<F, R>
where
    F: FnMut(&mut DbConnection, &mut Tally) -> Result<R, AppError> + Send + 'static,
    R: Send + 'static,
{
    fn key(&self) -> &str {
        &self.key
    }

    fn run(&mut self, conn: &mut DbConnection, tally: &mut Tally) -> Result<(), Failed> {
        let r = (self.f)(conn, tally);
        let failed = r.is_err();
        self.result = Some(r);
        if failed {
            Err(Failed::Job)
        } else {
            Ok(())
        }
    }

    fn take_error(&mut self) -> AppError {
        self.result
            .take()
            .and_then(Result::err)
            .unwrap_or_else(|| AppError::internal(anyhow::anyhow!("a job failed without an error")))
    }

    fn finish(self: Box<Self>, commit: Result<(), AppError>) {
        let Work { result, tx, .. } = *self;
        let out = match (commit, result) {
            (Ok(()), Some(r)) => r,
            (Ok(()), None) => Err(AppError::internal(anyhow::anyhow!("a job did not run"))),
            (Err(e), _) => Err(e),
        };
        let _ = tx.send(out);
    }
}

/// The handle requests use to queue writes for the writer threads.
#[derive(Clone)]
pub struct Batcher {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl Batcher {
    /// Starts `writers` writer threads over `pool` (the one-connection SQLite write pool, or
    /// the PostgreSQL pool); `checkout` is how long a writer waits for a connection.
    pub fn start(pool: DbPool, writers: usize, checkout: Duration) -> Batcher {
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..writers.max(1) {
            let (pool, queue) = (pool.clone(), queue.clone());
            std::thread::Builder::new()
                .name(format!("closeloop-write-{n}"))
                .spawn(move || writer(pool, queue, checkout))
                .expect("cannot start a writer thread");
        }
        Batcher { jobs }
    }

    /// Runs `f` in the next batch; the result is returned once the batch has committed.
    /// `key` names the row `f` locks first (see [`next_batch`]).
    pub async fn write<F, R>(&self, key: String, f: F) -> Result<R, AppError>
    where
        F: FnMut(&mut DbConnection, &mut Tally) -> Result<R, AppError> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(Work {
                key,
                f,
                result: None,
                tx,
            }))
            .map_err(|_| AppError::internal(anyhow::anyhow!("the writer threads have stopped")))?;
        rx.await
            .map_err(|_| AppError::internal(anyhow::anyhow!("a writer thread dropped a job")))?
    }
}

/// The next batch: waits for one job, then takes those already queued, in key order. With
/// several writers (PostgreSQL), two batches that touch the same rows (a page opened and the
/// answer to it, an answer and its invitation's send outcome) then lock them in the same
/// order instead of deadlocking (which PostgreSQL detects only after `deadlock_timeout`,
/// 1 s, and the jobs then run again one by one).
fn next_batch(queue: &Mutex<mpsc::Receiver<Box<dyn Job>>>) -> Option<Vec<Box<dyn Job>>> {
    let queue = queue.lock().unwrap_or_else(|e| e.into_inner());
    let first = queue.recv().ok()?;
    let mut jobs = vec![first];
    while jobs.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
    drop(queue);
    jobs.sort_by(|a, b| a.key().cmp(b.key()));
    Some(jobs)
}

fn writer(pool: DbPool, queue: Arc<Mutex<mpsc::Receiver<Box<dyn Job>>>>, checkout: Duration) {
    while let Some(jobs) = next_batch(&queue) {
        // A panicking job must not take the writer down with it: its batch is rolled back
        // (the callers get an error when the jobs are dropped), the thread goes on.
        let batch = std::panic::AssertUnwindSafe(|| write_batch(&pool, jobs, checkout));
        if std::panic::catch_unwind(batch).is_err() {
            tracing::error!("a batched write panicked; its batch was rolled back");
        }
    }
}

fn write_batch(pool: &DbPool, mut jobs: Vec<Box<dyn Job>>, checkout: Duration) {
    let mut conn = match pool.get_timeout(checkout) {
        Ok(c) => c,
        Err(e) => {
            let message = e.to_string();
            for job in jobs {
                job.finish(Err(AppError::Unavailable(anyhow::anyhow!(
                    "database pool: {message}"
                ))));
            }
            return;
        }
    };
    // The fast path: every job in one transaction, the folded counters last.
    let together = conn.transaction(|conn| {
        let mut total = Tally::default();
        for job in jobs.iter_mut() {
            let mut tally = Tally::default();
            job.run(conn, &mut tally)?;
            total.merge(tally);
        }
        total.flush(conn).map_err(Failed::Db)
    });
    match together {
        Ok(()) => jobs.into_iter().for_each(|job| job.finish(Ok(()))),
        Err(e) => {
            if let Failed::Db(e) = &e {
                retire_if_lost(&mut conn, e);
                tracing::debug!(error = %e, jobs = jobs.len(), "a batch was rolled back; its jobs run one by one");
            }
            drop(conn);
            for job in jobs {
                alone(pool, job, checkout);
            }
        }
    }
}

/// Runs `job` in its own transaction, with the retries of [`super::Db::write`]
/// ([`write_retried`]). Its own error (an answer refused, say) goes to its caller.
fn alone(pool: &DbPool, mut job: Box<dyn Job>, checkout: Duration) {
    let result = write_retried(pool, checkout, |conn| {
        conn.transaction(|conn| {
            let mut tally = Tally::default();
            job.run(conn, &mut tally)?;
            tally.flush(conn).map_err(Failed::Db)
        })
        .map_err(|e| match e {
            Failed::Db(e) => e,
            Failed::Job => job.take_error(),
        })
    });
    job.finish(result);
}
