//! Queries of `job_runs`: one row per periodic job and period, so a job runs once across
//! replicas.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::job_runs;
use super::DbConnection;
use crate::error::AppError;

/// Records that `job` ran for `period`; false when it already had (inside the caller's
/// transaction).
pub fn claim_run(
    conn: &mut DbConnection,
    job: &str,
    period: &str,
    t: NaiveDateTime,
) -> Result<bool, AppError> {
    let done: i64 = job_runs::table
        .filter(job_runs::job.eq(job))
        .filter(job_runs::period.eq(period))
        .count()
        .get_result(conn)?;
    if done > 0 {
        return Ok(false);
    }
    diesel::insert_into(job_runs::table)
        .values((
            job_runs::job.eq(job),
            job_runs::period.eq(period),
            job_runs::created_at.eq(t),
        ))
        .execute(conn)?;
    Ok(true)
}
