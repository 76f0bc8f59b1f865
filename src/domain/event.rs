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
}

impl Event {
    pub const ALL: [Event; 4] = [
        Event::ResponseCreated,
        Event::ResponseUpdated,
        Event::FollowupCreated,
        Event::FollowupUpdated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::ResponseCreated => "response.created",
            Event::ResponseUpdated => "response.updated",
            Event::FollowupCreated => "followup.created",
            Event::FollowupUpdated => "followup.updated",
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
