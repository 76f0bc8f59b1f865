//! JSON views of stored rows that more than one layer shows: the API returns them and the
//! webhook payloads carry them, so an integration sees one shape everywhere.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{now, utc, Category};
use crate::store::followups::{TaskListItem, OPEN_STATUSES};
use crate::store::models::{ActivityRow, FollowupRow, ResponseRow};

#[derive(Debug, Serialize, ToSchema)]
pub struct Response {
    #[schema(example = "rsp_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2")]
    pub id: String,
    pub survey_id: String,
    /// Absent for anonymous answers (public link, or API capture by survey id).
    pub invitation_id: Option<String>,
    pub contact_id: Option<String>,
    pub score: i32,
    pub category: Category,
    pub comment: Option<String>,
    /// `email`, `link`, `public` or `api`.
    pub channel: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ResponseRow> for Response {
    fn from(r: ResponseRow) -> Self {
        Response {
            category: serde_json::from_value(serde_json::Value::String(r.category.clone()))
                .unwrap_or(Category::Passive),
            id: r.id,
            survey_id: r.survey_id,
            invitation_id: r.invitation_id,
            contact_id: r.contact_id,
            score: r.score,
            comment: r.comment,
            channel: r.channel,
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Followup {
    #[schema(example = "fup_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2")]
    pub id: String,
    pub response_id: String,
    pub survey_id: String,
    pub contact_id: Option<String>,
    pub score: i32,
    pub comment: Option<String>,
    /// `open`, `in_progress`, `resolved` or `dismissed`.
    pub status: String,
    /// The contact's value (`properties.value`, 0 when unknown): the first key of the
    /// priority order (value, then lower score, then older answer).
    pub priority: f64,
    pub assignee: Option<String>,
    /// How a closed task ended: one of `FOLLOWUP_OUTCOMES` (default `resolved_issue`,
    /// `explained`, `compensated`, `feature_request`, `no_action_needed`,
    /// `could_not_reach`), or `score_raised` when the customer raised the score.
    pub outcome: Option<String>,
    pub due_at: DateTime<Utc>,
    /// Open or in progress and past `due_at`.
    pub overdue: bool,
    pub answered_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The one invitation that re-surveyed the customer after the task was resolved (the
    /// survey's `resurvey_after_days`); `null` until then.
    #[schema(example = "inv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2")]
    pub resurvey_invitation_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<FollowupRow> for Followup {
    fn from(r: FollowupRow) -> Self {
        Followup {
            overdue: OPEN_STATUSES.contains(&r.status.as_str()) && r.due_at < now(),
            id: r.id,
            response_id: r.response_id,
            survey_id: r.survey_id,
            contact_id: r.contact_id,
            score: r.score,
            comment: r.comment,
            status: r.status,
            priority: r.contact_value.unwrap_or(0.0),
            assignee: r.assignee,
            outcome: r.outcome,
            due_at: utc(r.due_at),
            answered_at: utc(r.answered_at),
            resolved_at: r.resolved_at.map(utc),
            resurvey_invitation_id: r.resurvey_invitation_id,
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
        }
    }
}

/// A task as lists show it: the task with its customer and survey by name. The contact
/// fields are null for anonymous answers and erased contacts.
#[derive(Debug, Serialize, ToSchema)]
pub struct FollowupItem {
    #[serde(flatten)]
    pub followup: Followup,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    /// The contact's `company` property, when present.
    pub company: Option<String>,
    pub survey_name: String,
}

impl From<TaskListItem> for FollowupItem {
    fn from(i: TaskListItem) -> Self {
        FollowupItem {
            followup: i.task.into(),
            contact_name: i.contact_name,
            contact_email: i.contact_email,
            company: i.company,
            survey_name: i.survey_name,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Activity {
    pub id: String,
    /// `created`, `assigned`, `status_changed`, `note`, `replied`, `score_changed`,
    /// `comment_changed`, `resurveyed` (the re-survey invitation was made; `data` has its
    /// `invitation_id`, `status` and `reason`).
    pub kind: String,
    /// `system`, `rule`, `customer`, `user:<email>` (a workspace member) or `api-key:<name>`.
    pub actor: Option<String>,
    /// The member's name for `user:<email>`, the key's name for `api-key:<name>`.
    pub actor_name: Option<String>,
    pub body: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

impl From<ActivityRow> for Activity {
    fn from(r: ActivityRow) -> Self {
        Activity {
            id: r.id,
            kind: r.kind,
            actor_name: r
                .actor
                .as_deref()
                .and_then(|a| a.strip_prefix("api-key:").map(str::to_string)),
            actor: r.actor,
            body: r.body,
            data: r.data.and_then(|d| serde_json::from_str(&d).ok()),
            created_at: utc(r.created_at),
        }
    }
}
