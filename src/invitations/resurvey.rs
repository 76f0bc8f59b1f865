//! Re-surveys: closing the loop, measured.
//!
//! A survey with `resurvey_after_days` = N asks a customer again N days after their follow-up
//! was resolved: one new email invitation to the same survey (`origin = "resurvey"`), made by
//! the same rules as any invitation (unsubscribed, no email or throttled → `suppressed` with
//! the reason, recorded, not dropped) and sent by the normal queue, which checks unsubscribes,
//! erasure, pauses and throttling again before sending. Tasks without a contact (anonymous
//! answers) and erased contacts are never re-surveyed; dismissed tasks neither.
//!
//! The dispatcher runs [`run_due`] at most every `RESURVEY_CHECK_SECONDS`. Each task gets its
//! invitation in one transaction that also links it (`followups.resurvey_invitation_id`,
//! unique, set only while empty), so a task resolved again, a second run or a second replica
//! never makes another one. A task is picked up from its due time until `GRACE` later, so a
//! survey that turns re-surveys on does not mail every customer resolved in the past year.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::Connection;

use super::{invite_contact, Origin};
use crate::error::AppError;
use crate::store::followups::{self, ResurveyCandidate};
use crate::store::invitations::Channel;
use crate::store::DbConnection;

/// How late after its due time a re-survey is still sent (downtime, a check interval).
pub const GRACE: TimeDelta = TimeDelta::days(7);
/// Tasks handled per run.
const BATCH: usize = 200;
/// The error that rolls back a task whose re-survey someone else made first.
const TAKEN: &str = "resurvey_taken";

/// Makes the re-survey invitations due at `t`; returns how many were queued for sending
/// (suppressed ones are made and recorded, and not counted).
pub fn run_due(conn: &mut DbConnection, t: NaiveDateTime) -> Result<usize, AppError> {
    let due = followups::resurveys_due(conn, t, GRACE, BATCH)?;
    let mut queued = 0;
    for candidate in due {
        match resurvey_one(conn, &candidate, t) {
            Ok(true) => queued += 1,
            Ok(false) => {}
            Err(AppError::Conflict { code: TAKEN, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(queued)
}

/// One task's re-survey, in one transaction; true when an email was queued.
fn resurvey_one(
    conn: &mut DbConnection,
    c: &ResurveyCandidate,
    t: NaiveDateTime,
) -> Result<bool, AppError> {
    conn.transaction(|conn| {
        let survey = crate::store::surveys::get(conn, &c.survey_id)?;
        let contact = crate::store::contacts::get(conn, &c.contact_id)?;
        let mut tally = crate::store::rollups::Tally::default();
        let (invitation, _) = invite_contact(
            conn,
            &survey,
            contact,
            Channel::Email,
            t,
            Origin::Resurvey,
            t,
            &mut tally,
        )?;
        if !followups::link_resurvey(conn, &c.followup_id, &invitation.id)? {
            return Err(AppError::conflict(TAKEN, "the task was re-surveyed already"));
        }
        tally.flush(conn)?;
        followups::log(
            conn,
            &c.followup_id,
            "resurveyed",
            "system",
            None,
            Some(serde_json::json!({
                "invitation_id": invitation.id,
                "status": invitation.status,
                "reason": invitation.reason,
            })),
        )?;
        tracing::info!(followup = %c.followup_id, invitation = %invitation.id, status = %invitation.status, "re-survey made");
        Ok(invitation.status == "scheduled")
    })
}
