//! The `data` of each webhook event, with the context an integration needs so it does not
//! have to call back: the contact (id, email, name, external id, properties), the survey (id,
//! name, kind) and, for follow-ups, the task's page in `/app`.
//!
//! These types are the one serialisation of the payloads (the OpenAPI document shows them as
//! the `*Event` schemas), built here in the use-case layer from stored rows.
//!
//! **Erasure.** A payload is written when its event happens (the outbox rule) and kept in the
//! delivery log. Erasing a contact scrubs it: every delivery about the contact (each
//! remembers its `contact_id`), queued, sent or failed, has its `contact` replaced by the
//! erased form (`erased: true`, id only) and its `comment` and `note` blanked, in the erase
//! transaction. So a queued delivery that goes out, or is redelivered, after the erasure
//! carries no personal data. Only a request already in flight while the erasure commits can
//! still carry it.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::domain::utc;
use crate::error::AppError;
use crate::store::models::{ContactRow, FollowupRow, InvitationRow, ResponseRow, SurveyRow};
use crate::store::DbConnection;
use crate::views;

/// The contact an event is about. Receivers get personal data (email, name, properties):
/// they process it on the workspace's behalf. After the contact is erased, only `id` is left
/// and `erased` is true.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": "con_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2", "email": "ada@example.com", "name": "Ada Lovelace", "external_id": "cus_42", "properties": {"plan": "pro", "value": 12000}, "erased": false}))]
pub struct ContactContext {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// The caller's own customer id.
    pub external_id: Option<String>,
    /// The contact's properties (plan, segment, `value`, …); `{}` once erased.
    #[schema(value_type = Object)]
    pub properties: Value,
    /// True when the contact's personal data was erased.
    pub erased: bool,
}

impl From<&ContactRow> for ContactContext {
    fn from(c: &ContactRow) -> Self {
        if c.erased_at.is_some() {
            return ContactContext::erased(&c.id);
        }
        ContactContext {
            id: c.id.clone(),
            email: c.email.clone(),
            name: c.name.clone(),
            external_id: c.external_id.clone(),
            properties: serde_json::from_str::<Value>(&c.properties)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({})),
            erased: false,
        }
    }
}

impl ContactContext {
    /// What is left of an erased contact.
    pub fn erased(id: &str) -> Self {
        ContactContext {
            id: id.to_string(),
            email: None,
            name: None,
            external_id: None,
            properties: json!({}),
            erased: true,
        }
    }
}

/// The survey an event is about.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": "srv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2", "name": "Quarterly NPS", "kind": "nps"}))]
pub struct SurveyContext {
    pub id: String,
    pub name: String,
    /// `nps` or `csat`.
    pub kind: String,
}

impl From<&SurveyRow> for SurveyContext {
    fn from(s: &SurveyRow) -> Self {
        SurveyContext {
            id: s.id.clone(),
            name: s.name.clone(),
            kind: s.kind.clone(),
        }
    }
}

/// `data` of `response.created` and `response.updated`: the response as
/// `GET /api/v1/responses/{id}` shows it, with its contact and survey.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResponseEvent {
    #[serde(flatten)]
    pub response: views::Response,
    /// `response.updated` only: the score before the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_score: Option<i32>,
    /// Null for anonymous answers.
    pub contact: Option<ContactContext>,
    pub survey: SurveyContext,
}

/// `data` of `followup.created`, `followup.updated`, `followup.resolved` and
/// `followup.overdue`: the task as `GET /api/v1/followups/{id}` shows it, what happened, who
/// did it, the contact, the survey and the task's page.
#[derive(Debug, Serialize, ToSchema)]
pub struct FollowupEvent {
    #[serde(flatten)]
    pub followup: views::Followup,
    /// What happened, comma-separated: `created`, `status_changed`, `assigned`, `note`,
    /// `replied`, `answer_changed` (the customer changed the answer), `overdue`.
    #[schema(example = "status_changed")]
    pub change: String,
    /// `system`, `customer`, `user:<email>` or `api-key:<name>`.
    pub actor: String,
    /// The member's or API key's name, when the actor is one.
    pub actor_name: Option<String>,
    /// The note added with this change (closing a task may carry one); null when none.
    pub note: Option<String>,
    /// Null for anonymous answers.
    pub contact: Option<ContactContext>,
    pub survey: SurveyContext,
    /// The task's page in the workspace: `{PUBLIC_URL}/app/followups/{id}`.
    #[schema(
        example = "https://closeloop.example.com/app/followups/fup_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2"
    )]
    pub url: String,
}

/// `data` of `contact.unsubscribed`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactUnsubscribedEvent {
    pub contact: ContactContext,
    pub unsubscribed_at: DateTime<Utc>,
    /// `unsubscribe_page` (the customer, from an email's link or one-click header), `api`
    /// or `workspace`.
    #[schema(example = "unsubscribe_page")]
    pub via: String,
    /// `customer`, `user:<email>` or `api-key:<name>`.
    pub actor: String,
    /// The invitation whose unsubscribe link was used (`unsubscribe_page` only).
    pub invitation_id: Option<String>,
    /// That invitation's survey (`unsubscribe_page` only).
    pub survey: Option<SurveyContext>,
}

/// `data` of `invitation.failed`: an email invitation that will not be sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationFailedEvent {
    #[schema(example = "inv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2")]
    pub id: String,
    pub survey_id: String,
    pub contact_id: String,
    /// `email`.
    pub channel: String,
    /// `failed`.
    pub status: String,
    /// `send_failed`.
    pub reason: String,
    /// The last error: the SMTP server's answer, or `gave up after N attempts: …`.
    #[schema(example = "550 5.1.1 mailbox unavailable")]
    pub error: String,
    /// Sending attempts made.
    pub attempts: i32,
    pub failed_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub contact: ContactContext,
    pub survey: SurveyContext,
}

/// The contact with id `id` as a payload shows it (`None` for no id, or an unknown one).
pub fn contact(
    conn: &mut DbConnection,
    id: Option<&str>,
) -> Result<Option<ContactContext>, AppError> {
    let Some(id) = id else { return Ok(None) };
    Ok(crate::store::contacts::find_any(conn, id)?
        .as_ref()
        .map(ContactContext::from))
}

pub fn survey(conn: &mut DbConnection, id: &str) -> Result<SurveyContext, AppError> {
    Ok(SurveyContext::from(&crate::store::surveys::get(conn, id)?))
}

/// The task page of `id` under `public_url`.
pub fn task_url(public_url: &str, id: &str) -> String {
    format!("{}/app/followups/{id}", public_url.trim_end_matches('/'))
}

pub fn response_event(
    conn: &mut DbConnection,
    row: &ResponseRow,
    previous_score: Option<i32>,
) -> Result<ResponseEvent, AppError> {
    Ok(ResponseEvent {
        contact: contact(conn, row.contact_id.as_deref())?,
        survey: survey(conn, &row.survey_id)?,
        response: views::Response::from(row.clone()),
        previous_score,
    })
}

/// What a follow-up event says beside the task.
#[derive(Debug, Clone, Copy)]
pub struct TaskChange<'a> {
    pub change: &'a str,
    pub actor: &'a str,
    pub note: Option<&'a str>,
    /// `PUBLIC_URL`, for the task's link.
    pub public_url: &'a str,
}

pub fn followup_event(
    conn: &mut DbConnection,
    task: &FollowupRow,
    how: TaskChange<'_>,
) -> Result<FollowupEvent, AppError> {
    Ok(FollowupEvent {
        change: how.change.to_string(),
        actor: how.actor.to_string(),
        actor_name: crate::store::users::actor_name(conn, how.actor)?,
        note: how.note.map(str::to_string),
        contact: contact(conn, task.contact_id.as_deref())?,
        survey: survey(conn, &task.survey_id)?,
        url: task_url(how.public_url, &task.id),
        followup: views::Followup::from(task.clone()),
    })
}

pub fn invitation_failed_event(
    conn: &mut DbConnection,
    inv: &InvitationRow,
    error: &str,
    at: NaiveDateTime,
) -> Result<InvitationFailedEvent, AppError> {
    let contact = contact(conn, Some(&inv.contact_id))?
        .unwrap_or_else(|| ContactContext::erased(&inv.contact_id));
    Ok(InvitationFailedEvent {
        id: inv.id.clone(),
        survey_id: inv.survey_id.clone(),
        contact_id: inv.contact_id.clone(),
        channel: inv.channel.clone(),
        status: "failed".into(),
        reason: "send_failed".into(),
        error: error.to_string(),
        attempts: inv.attempts,
        failed_at: utc(at),
        created_at: utc(inv.created_at),
        contact,
        survey: survey(conn, &inv.survey_id)?,
    })
}

/// A payload (`{"type", "timestamp", "data"}`) with the personal data of an erased contact
/// taken out: `data.contact` becomes the erased form, `data.comment` and `data.note` null.
/// A Slack message (`blocks`/`text`, no `data`) is replaced whole by a line saying it was
/// erased. `None` when there is nothing to change (or the payload is not an object).
pub fn scrubbed(payload: &str, contact_id: &str) -> Option<String> {
    let mut v: Value = serde_json::from_str(payload).ok()?;
    if v.get("data").is_none() && (v.get("blocks").is_some() || v.get("text").is_some()) {
        let erased = json!({"text": "(removed: the customer this message was about was erased)"});
        return (v != erased).then(|| erased.to_string());
    }
    let data: &mut Map<String, Value> = v.get_mut("data")?.as_object_mut()?;
    let before = data.clone();
    if data.contains_key("contact") {
        data.insert(
            "contact".into(),
            serde_json::to_value(ContactContext::erased(contact_id)).ok()?,
        );
    }
    for key in ["comment", "note"] {
        if data.contains_key(key) {
            data.insert(key.into(), Value::Null);
        }
    }
    (*data != before).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbing_takes_out_the_contact_comment_and_note() {
        let payload = json!({"type": "followup.updated", "timestamp": "2026-01-01T00:00:00Z", "data": {
            "id": "fup_1", "comment": "Ada here, call me", "note": "called Ada", "score": 2,
            "contact": {"id": "con_1", "email": "ada@example.com", "name": "Ada", "external_id": "c42",
                "properties": {"plan": "pro"}, "erased": false}}})
        .to_string();
        let out: Value = serde_json::from_str(&scrubbed(&payload, "con_1").unwrap()).unwrap();
        assert_eq!(out["data"]["comment"], Value::Null);
        assert_eq!(out["data"]["note"], Value::Null);
        assert_eq!(out["data"]["score"], 2);
        assert_eq!(
            out["data"]["contact"],
            json!({"id": "con_1", "email": null, "name": null, "external_id": null, "properties": {}, "erased": true})
        );
        assert!(!out.to_string().contains("ada"), "{out}");
        // Scrubbing again changes nothing.
        assert_eq!(scrubbed(&out.to_string(), "con_1"), None);
    }
}
