//! Rows as stored. Handlers turn them into API views; nothing outside `db` builds them by hand.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{api_keys, contacts, saved_views, sessions, surveys, users};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub key_hash: String,
    pub key_prefix: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = surveys)]
pub struct SurveyRow {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub question: Option<String>,
    pub follow_up_question: Option<String>,
    pub brand: Option<String>,
    pub brand_color: Option<String>,
    pub topic: Option<String>,
    pub locale: String,
    pub status: String,
    pub public_slug: Option<String>,
    pub throttle_days: i32,
    pub reminder_after_days: Option<i32>,
    pub edit_window_hours: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub archived_at: Option<NaiveDateTime>,
    pub followup_assignee: Option<String>,
    /// Days after a resolved follow-up before its customer is asked again (none: never).
    pub resurvey_after_days: Option<i32>,
    /// Slack incoming webhook for this survey's new follow-ups (overrides `SLACK_WEBHOOK_URL`).
    pub slack_webhook_url: Option<String>,
    /// The contact properties this survey reports on, as a JSON array of names: their values
    /// are snapshotted onto each answer (see `store::segments`).
    pub report_segments: String,
}

/// Changes to a survey; `None` leaves a column as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = surveys)]
pub struct SurveyChanges {
    pub name: Option<String>,
    pub question: Option<Option<String>>,
    pub follow_up_question: Option<Option<String>>,
    pub brand: Option<Option<String>>,
    pub brand_color: Option<Option<String>>,
    pub topic: Option<Option<String>>,
    pub locale: Option<String>,
    pub status: Option<String>,
    pub public_slug: Option<Option<String>>,
    pub throttle_days: Option<i32>,
    pub reminder_after_days: Option<Option<i32>>,
    pub edit_window_hours: Option<i32>,
    pub updated_at: Option<NaiveDateTime>,
    pub archived_at: Option<Option<NaiveDateTime>>,
    pub followup_assignee: Option<Option<String>>,
    pub resurvey_after_days: Option<Option<i32>>,
    pub slack_webhook_url: Option<Option<String>>,
    pub report_segments: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = contacts)]
pub struct ContactRow {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub properties: String,
    pub value: Option<f64>,
    pub last_surveyed_at: Option<NaiveDateTime>,
    pub last_responded_at: Option<NaiveDateTime>,
    pub unsubscribed_at: Option<NaiveDateTime>,
    pub erased_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = super::schema::invitations)]
pub struct InvitationRow {
    pub id: String,
    pub survey_id: String,
    pub contact_id: String,
    pub channel: String,
    pub token: String,
    pub status: String,
    pub reason: Option<String>,
    pub send_at: NaiveDateTime,
    pub next_attempt_at: NaiveDateTime,
    pub claimed_until: Option<NaiveDateTime>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub message_id: Option<String>,
    pub sent_at: Option<NaiveDateTime>,
    pub responded_at: Option<NaiveDateTime>,
    pub reminder_sent_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// When the survey page was first opened (GET; not an answer).
    pub opened_at: Option<NaiveDateTime>,
    /// Why it was made: `api` (an invitation request) or `resurvey` (the re-survey of a
    /// resolved follow-up).
    pub origin: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = super::schema::responses)]
pub struct ResponseRow {
    pub id: String,
    pub survey_id: String,
    pub invitation_id: Option<String>,
    pub contact_id: Option<String>,
    pub score: i32,
    pub category: String,
    pub comment: Option<String>,
    pub channel: String,
    pub locale: Option<String>,
    pub submission_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = super::schema::followups)]
pub struct FollowupRow {
    pub id: String,
    pub response_id: String,
    pub survey_id: String,
    pub contact_id: Option<String>,
    pub score: i32,
    pub comment: Option<String>,
    pub status: String,
    pub contact_value: Option<f64>,
    pub assignee: Option<String>,
    pub outcome: Option<String>,
    pub due_at: NaiveDateTime,
    pub answered_at: NaiveDateTime,
    pub resolved_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The one invitation sent to re-survey the customer after the task was resolved.
    pub resurvey_invitation_id: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = super::schema::followup_activities)]
pub struct ActivityRow {
    pub id: String,
    pub followup_id: String,
    pub kind: String,
    pub actor: Option<String>,
    pub body: Option<String>,
    pub data: Option<String>,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = super::schema::emails)]
pub struct EmailRow {
    pub id: String,
    pub kind: String,
    pub to_address: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    pub in_reply_to: Option<String>,
    pub followup_id: Option<String>,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub claimed_until: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub message_id: Option<String>,
    pub sent_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub from_name: Option<String>,
    pub reply_to: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub active: bool,
    pub password_hash: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub last_sign_in_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id_hash: String,
    pub user_id: String,
    pub csrf_token: String,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = saved_views)]
pub struct SavedViewRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub query: String,
    pub created_at: NaiveDateTime,
}
