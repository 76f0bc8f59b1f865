//! Group commit for SQLite: answers from concurrent requests are written by one thread, many
//! to a transaction (each in its own savepoint, so one failing answer does not undo the
//! others). SQLite has one writer anyway; batching turns a commit (and its WAL pages) per
//! answer into a commit per batch.

use std::sync::mpsc;

use diesel::Connection;

use super::{DbConnection, DbPool};
use crate::error::AppError;

/// Most jobs committed together.
const MAX_BATCH: usize = 128;

type Finish = Box<dyn FnOnce(Result<(), AppError>) + Send>;

trait Job: Send {
    /// Runs in a savepoint of the batch; returns what to do once the batch commits or fails.
    fn run(self: Box<Self>, conn: &mut DbConnection) -> Finish;
    fn fail(self: Box<Self>, e: AppError);
}

struct Work<F, R> {
    f: F,
    tx: tokio::sync::oneshot::Sender<Result<R, AppError>>,
}

impl<F, R> Job for Work<F, R>
where
    F: FnOnce(&mut DbConnection) -> Result<R, AppError> + Send + 'static,
    R: Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut DbConnection) -> Finish {
        let Work { f, tx } = *self;
        let result = conn.transaction(f);
        Box::new(move |commit| {
            let _ = tx.send(commit.and(result));
        })
    }

    fn fail(self: Box<Self>, e: AppError) {
        let _ = self.tx.send(Err(e));
    }
}

/// The handle requests use to queue writes for the writer thread.
#[derive(Clone)]
pub struct Batcher {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl Batcher {
    /// Starts the writer thread over `pool` (the one-connection SQLite write pool).
    pub fn start(pool: DbPool) -> Batcher {
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("closeloop-writer".into())
            .spawn(move || writer(pool, queue))
            .expect("cannot start the writer thread");
        Batcher { jobs }
    }

    /// Runs `f` in the next batch; the result is returned once the batch has committed.
    pub async fn write<F, R>(&self, f: F) -> Result<R, AppError>
    where
        F: FnOnce(&mut DbConnection) -> Result<R, AppError> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(Work { f, tx }))
            .map_err(|_| AppError::internal(anyhow::anyhow!("the writer thread has stopped")))?;
        rx.await
            .map_err(|_| AppError::internal(anyhow::anyhow!("the writer thread dropped a job")))?
    }
}

fn writer(pool: DbPool, queue: mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = queue.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // A panicking job must not take the writer down with it: its batch fails (the
        // callers get an error), the connection is discarded by the pool, the thread goes on.
        let batch = std::panic::AssertUnwindSafe(|| write_batch(&pool, jobs));
        if std::panic::catch_unwind(batch).is_err() {
            tracing::error!("a batched write panicked; its batch was rolled back");
        }
    }
}

fn write_batch(pool: &DbPool, jobs: Vec<Box<dyn Job>>) {
    let mut conn = match pool.get() {
        Ok(c) => c,
        Err(e) => {
            let message = e.to_string();
            for job in jobs {
                job.fail(AppError::Unavailable(anyhow::anyhow!(
                    "database pool: {message}"
                )));
            }
            return;
        }
    };
    let mut finishers = Vec::with_capacity(jobs.len());
    let committed = conn.transaction(|conn| {
        for job in jobs {
            finishers.push(job.run(conn));
        }
        Ok::<(), AppError>(())
    });
    match committed {
        Ok(()) => finishers.into_iter().for_each(|f| f(Ok(()))),
        Err(e) => {
            let message = e.to_string();
            for f in finishers {
                f(Err(AppError::Unavailable(anyhow::anyhow!(
                    "batch commit failed: {message}"
                ))));
            }
        }
    }
}
