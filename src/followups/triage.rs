//! Working a follow-up task: change its status or assignee, add a note, reply to the
//! customer. Each is one transaction that logs the activity and queues the
//! `followup.updated` webhook, then wakes the workers. Every front door calls these.

use diesel::prelude::*;
use serde_json::json;

use super::transitions;
use crate::context::AppState;
use crate::domain::now;
use crate::error::AppError;
use crate::store::followups::{self, FollowupChanges};
use crate::store::models::{ActivityRow, EmailRow, FollowupRow};
use crate::store::DbConnection;
use crate::webhooks;

/// Changes to a task. Absent fields stay; `assignee: Some(None)` unassigns.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// Along `open → in_progress → resolved | dismissed` (or `open → resolved | dismissed`
    /// at once); `open` again reopens.
    pub status: Option<String>,
    /// An assignee that is an email address is stored lowercased (as team members and
    /// survey rules name people); other text is stored trimmed.
    pub assignee: Option<Option<String>>,
    /// How it ended, with `resolved` or `dismissed`: one of `FOLLOWUP_OUTCOMES`.
    pub outcome: Option<String>,
    /// A note logged with the change (a `note` activity, in the same transaction).
    pub note: Option<String>,
}

impl Change {
    /// Field errors for a status that does not exist, an outcome without a closing status
    /// or not among `outcomes` (`Settings::followup_outcomes`), or a blank note.
    pub fn check(&self, outcomes: &[String]) -> Result<(), AppError> {
        if let Some(s) = &self.status {
            if !transitions::STATUSES.contains(&s.as_str()) {
                return Err(AppError::field(
                    "status",
                    format!("must be one of {}", transitions::STATUSES.join(", ")),
                ));
            }
        }
        if let Some(outcome) = &self.outcome {
            if !matches!(self.status.as_deref(), Some("resolved" | "dismissed")) {
                return Err(AppError::field(
                    "outcome",
                    "goes with status resolved or dismissed",
                ));
            }
            if !outcomes.iter().any(|o| o == outcome) {
                return Err(AppError::field(
                    "outcome",
                    format!("must be one of {}", outcomes.join(", ")),
                ));
            }
        }
        if self.note.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err(AppError::field("note", "must not be blank"));
        }
        Ok(())
    }
}

/// Applies `change` to task `id` as `actor`, after [`Change::check`] with
/// `Settings::followup_outcomes` (`user:<email>`, `api-key:<name>`…): a status
/// change must follow the transitions (409 `invalid_transition` says why), each change is
/// logged, and nothing is written when nothing changes. A task newly assigned to an email
/// address queues a `followup_assigned` email to it, unless the actor is that person
/// (`user:<same email>`).
pub async fn change(
    state: &AppState,
    id: &str,
    change: Change,
    actor: &str,
) -> Result<FollowupRow, AppError> {
    let rules = super::Rules::from_settings(&state.settings);
    let outcomes = state.settings.followup_outcomes.clone();
    let (id, actor) = (id.to_string(), actor.to_string());
    let (row, emailed) = state
        .db
        .write(move |conn| {
            conn.transaction(|conn| change_in_tx(conn, &rules, &outcomes, &id, &change, &actor))
        })
        .await?;
    state.wake_webhooks.notify_one();
    if emailed {
        state.wake_dispatcher.notify_one();
    }
    Ok(row)
}

/// The assignee as stored: an email address lowercased, other text trimmed.
fn normalize_assignee(raw: &str) -> String {
    match crate::domain::Email::parse(raw) {
        Ok(e) => e.as_str().to_string(),
        Err(_) => raw.trim().to_string(),
    }
}

/// Returns the task and whether an assignment email was queued.
fn change_in_tx(
    conn: &mut DbConnection,
    rules: &super::Rules,
    outcomes: &[String],
    id: &str,
    b: &Change,
    actor: &str,
) -> Result<(FollowupRow, bool), AppError> {
    // An unknown task is a 404 whatever the change (checked first).
    let task = followups::get(conn, id)?;
    b.check(outcomes)?;
    let t = now();
    let mut changes = FollowupChanges {
        updated_at: Some(t),
        ..Default::default()
    };
    let mut changed = false;
    if let Some(to) = &b.status {
        transitions::check(&task.status, to)
            .map_err(|why| AppError::conflict("invalid_transition", why))?;
        if *to != task.status {
            changed = true;
            changes.status = Some(to.clone());
            let closing = matches!(to.as_str(), "resolved" | "dismissed");
            changes.resolved_at = Some(closing.then_some(t));
            changes.outcome = Some(if closing { b.outcome.clone() } else { None });
            followups::log(
                conn,
                id,
                "status_changed",
                actor,
                None,
                Some(json!({"from": task.status, "to": to, "outcome": b.outcome})),
            )?;
        }
    }
    let mut newly_assigned = None;
    if let Some(assignee) = &b.assignee {
        let assignee = assignee.as_deref().map(normalize_assignee);
        if assignee != task.assignee {
            changed = true;
            followups::log(
                conn,
                id,
                "assigned",
                actor,
                None,
                Some(json!({"from": task.assignee, "to": assignee})),
            )?;
            newly_assigned.clone_from(&assignee);
            changes.assignee = Some(assignee);
        }
    }
    let note = b.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if let Some(text) = note {
        followups::log(conn, id, "note", actor, Some(text), None)?;
    }
    if !changed && note.is_none() {
        return Ok((task, false));
    }
    let mut what: Vec<&str> = Vec::new();
    if changes.status.is_some() {
        what.push("status_changed");
    }
    if changes.assignee.is_some() {
        what.push("assigned");
    }
    if note.is_some() {
        what.push("note");
    }
    let row = followups::update(conn, id, &changes)?;
    let how = webhooks::payload::TaskChange {
        change: &what.join(","),
        actor,
        note,
        public_url: &rules.public_url,
    };
    webhooks::enqueue_followup(conn, false, &task.status, &row, how)?;
    let mut emailed = false;
    if let Some(to) = newly_assigned {
        if to.parse::<lettre::Address>().is_ok() && actor != format!("user:{to}") {
            super::queue_assignment(conn, rules, &row.id, &to, actor)?;
            emailed = true;
        }
    }
    Ok((row, emailed))
}

/// Adds a note to task `id` as `actor`.
pub async fn add_note(
    state: &AppState,
    id: &str,
    text: &str,
    actor: &str,
) -> Result<ActivityRow, AppError> {
    let (id, text, actor) = (id.to_string(), text.to_string(), actor.to_string());
    let public_url = super::Rules::from_settings(&state.settings).public_url;
    let row = state
        .db
        .write(move |conn| {
            conn.transaction(|conn| {
                followups::get(conn, &id)?;
                followups::touch(conn, &id, now())?;
                let note = followups::log(conn, &id, "note", &actor, Some(&text), None)?;
                let task = followups::get(conn, &id)?;
                let how = webhooks::payload::TaskChange {
                    change: "note",
                    actor: &actor,
                    note: Some(&text),
                    public_url: &public_url,
                };
                webhooks::enqueue_followup(conn, false, &task.status, &task, how)?;
                Ok(note)
            })
        })
        .await?;
    state.wake_webhooks.notify_one();
    Ok(row)
}

/// Queues an email reply to the customer of task `id`, under the survey's brand, threaded
/// to the survey email (`In-Reply-To`), with `Reply-To` the task's assignee or
/// `TEAM_EMAIL`, and logs it. 409 `no_email` when the contact has no email address
/// (anonymous or erased). The subject defaults to `Re: ` and the survey email's subject.
pub async fn reply(
    state: &AppState,
    id: &str,
    subject: Option<&str>,
    body: &str,
    actor: &str,
) -> Result<(EmailRow, ActivityRow), AppError> {
    let team = state
        .settings
        .team_email
        .as_ref()
        .map(|m| m.email.to_string());
    let (id, actor) = (id.to_string(), actor.to_string());
    let public_url = super::Rules::from_settings(&state.settings).public_url;
    let subject = subject.map(|s| s.trim().to_string());
    let body = body.trim().to_string();
    let queued = state
        .db
        .write(move |conn| {
            conn.transaction(|conn| {
                let task = followups::get(conn, &id)?;
                let contact = match &task.contact_id {
                    Some(c) => crate::store::contacts::get(conn, c).ok(),
                    None => None,
                };
                let Some(to) = contact.as_ref().and_then(|c| c.email.clone()) else {
                    return Err(AppError::conflict(
                        "no_email",
                        "this answer has no email address to reply to (anonymous or erased)",
                    ));
                };
                let survey = crate::store::surveys::get(conn, &task.survey_id)?;
                let response = crate::store::responses::get(conn, &task.response_id)?;
                let parent = match &response.invitation_id {
                    Some(inv) => crate::store::invitations::get(conn, inv)?.message_id,
                    None => None,
                };
                let locale = crate::i18n::Locale::parse(&survey.locale).unwrap_or_default();
                let brand = survey.brand.clone();
                let subject = subject.clone().unwrap_or_else(|| {
                    let original = locale
                        .email()
                        .subject
                        .replace("{brand}", brand.as_deref().unwrap_or("us"));
                    format!("Re: {original}")
                });
                let reply_to = task
                    .assignee
                    .clone()
                    .filter(|a| a.parse::<lettre::Address>().is_ok())
                    .or(team.clone());
                let email = crate::store::emails::enqueue(
                    conn,
                    crate::store::emails::NewEmail {
                        kind: "followup_reply",
                        to: &to,
                        subject: &subject,
                        body_text: &body,
                        in_reply_to: parent.as_deref(),
                        followup_id: Some(&id),
                        from_name: brand.as_deref(),
                        reply_to: reply_to.as_deref(),
                        body_html: None,
                        send_at: None,
                    },
                )?;
                followups::touch(conn, &id, now())?;
                let activity = followups::log(
                    conn,
                    &id,
                    "replied",
                    &actor,
                    Some(&body),
                    Some(json!({"email_id": email.id, "subject": subject, "to": to})),
                )?;
                let task = followups::get(conn, &id)?;
                let how = webhooks::payload::TaskChange {
                    change: "replied",
                    actor: &actor,
                    note: None,
                    public_url: &public_url,
                };
                webhooks::enqueue_followup(conn, false, &task.status, &task, how)?;
                Ok((email, activity))
            })
        })
        .await?;
    state.wake_dispatcher.notify_one();
    state.wake_webhooks.notify_one();
    Ok(queued)
}
