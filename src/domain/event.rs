//! The events other apps can subscribe to with a webhook.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Event {
    /// A new answer was recorded.
    #[serde(rename = "response.created")]
    ResponseCreated,
    /// An answer was changed (score or comment), within the survey's edit window.
    #[serde(rename = "response.updated")]
    ResponseUpdated,
    /// A follow-up task was opened for an unhappy answer.
    #[serde(rename = "followup.created")]
    FollowupCreated,
    /// A follow-up task changed (status, assignee, score).
    #[serde(rename = "followup.updated")]
    FollowupUpdated,
    /// A follow-up task was closed (status `resolved` or `dismissed`), with its `outcome`
    /// and the closing note, if any. `followup.updated` is sent for the same change too.
    #[serde(rename = "followup.resolved")]
    FollowupResolved,
    /// An open or in-progress task passed its due time (sent once per task).
    #[serde(rename = "followup.overdue")]
    FollowupOverdue,
    /// A contact unsubscribed (the unsubscribe page, the API or the workspace); once per
    /// change, not on a repeat.
    #[serde(rename = "contact.unsubscribed")]
    ContactUnsubscribed,
    /// An email invitation failed for good (a permanent SMTP error, or out of attempts).
    #[serde(rename = "invitation.failed")]
    InvitationFailed,
}

impl Event {
    pub const ALL: [Event; 8] = [
        Event::ResponseCreated,
        Event::ResponseUpdated,
        Event::FollowupCreated,
        Event::FollowupUpdated,
        Event::FollowupResolved,
        Event::FollowupOverdue,
        Event::ContactUnsubscribed,
        Event::InvitationFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::ResponseCreated => "response.created",
            Event::ResponseUpdated => "response.updated",
            Event::FollowupCreated => "followup.created",
            Event::FollowupUpdated => "followup.updated",
            Event::FollowupResolved => "followup.resolved",
            Event::FollowupOverdue => "followup.overdue",
            Event::ContactUnsubscribed => "contact.unsubscribed",
            Event::InvitationFailed => "invitation.failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == raw)
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
