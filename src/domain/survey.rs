//! Survey kinds and statuses, scores and their categories, and team roles.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Survey kind: NPS asks 0–10, CSAT asks 1–5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SurveyKind {
    Nps,
    Csat,
}

impl SurveyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SurveyKind::Nps => "nps",
            SurveyKind::Csat => "csat",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "nps" => Some(SurveyKind::Nps),
            "csat" => Some(SurveyKind::Csat),
            _ => None,
        }
    }

    /// The inclusive score range.
    pub fn range(self) -> (i32, i32) {
        match self {
            SurveyKind::Nps => (0, 10),
            SurveyKind::Csat => (1, 5),
        }
    }

    /// The question asked when the survey sets none. `{brand}` and `{topic}` are filled in.
    pub fn default_question(self) -> &'static str {
        match self {
            SurveyKind::Nps => "How likely are you to recommend {brand} to a friend or colleague?",
            SurveyKind::Csat => "How satisfied were you with {topic}?",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SurveyStatus {
    Active,
    Paused,
    Archived,
}

impl SurveyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SurveyStatus::Active => "active",
            SurveyStatus::Paused => "paused",
            SurveyStatus::Archived => "archived",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "active" => Some(SurveyStatus::Active),
            "paused" => Some(SurveyStatus::Paused),
            "archived" => Some(SurveyStatus::Archived),
            _ => None,
        }
    }
}

/// A score that is inside its survey kind's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Score {
    kind: SurveyKind,
    value: i32,
}

impl Score {
    pub fn parse(kind: SurveyKind, value: i64) -> Result<Self, String> {
        let (lo, hi) = kind.range();
        if value < lo as i64 || value > hi as i64 {
            return Err(format!("must be a whole number from {lo} to {hi}"));
        }
        Ok(Score {
            kind,
            value: value as i32,
        })
    }

    pub fn value(self) -> i32 {
        self.value
    }

    pub fn category(self) -> Category {
        match (self.kind, self.value) {
            (SurveyKind::Nps, 9..=10) => Category::Promoter,
            (SurveyKind::Nps, 7..=8) => Category::Passive,
            (SurveyKind::Nps, _) => Category::Detractor,
            (SurveyKind::Csat, 4..=5) => Category::Satisfied,
            (SurveyKind::Csat, 3) => Category::Neutral,
            (SurveyKind::Csat, _) => Category::Unsatisfied,
        }
    }
}

/// Where a score falls: NPS 9–10 promoter, 7–8 passive, 0–6 detractor;
/// CSAT 4–5 satisfied, 3 neutral, 1–2 unsatisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Promoter,
    Passive,
    Detractor,
    Satisfied,
    Neutral,
    Unsatisfied,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Promoter => "promoter",
            Category::Passive => "passive",
            Category::Detractor => "detractor",
            Category::Satisfied => "satisfied",
            Category::Neutral => "neutral",
            Category::Unsatisfied => "unsatisfied",
        }
    }

    /// Unhappy answers open a follow-up task.
    pub fn needs_followup(self) -> bool {
        matches!(self, Category::Detractor | Category::Unsatisfied)
    }
}

/// What an API key may do: `admin` everything, `agent` read and work follow-ups,
/// `reader` read only.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    ToSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Reader,
    Agent,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
            Role::Reader => "reader",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "admin" => Some(Role::Admin),
            "agent" => Some(Role::Agent),
            "reader" => Some(Role::Reader),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nps_scores_fall_into_their_categories() {
        let cat = |v| Score::parse(SurveyKind::Nps, v).unwrap().category();
        assert_eq!(cat(0), Category::Detractor);
        assert_eq!(cat(6), Category::Detractor);
        assert_eq!(cat(7), Category::Passive);
        assert_eq!(cat(8), Category::Passive);
        assert_eq!(cat(9), Category::Promoter);
        assert_eq!(cat(10), Category::Promoter);
        assert!(Score::parse(SurveyKind::Nps, 11).is_err());
        assert!(Score::parse(SurveyKind::Nps, -1).is_err());
    }

    #[test]
    fn csat_scores_fall_into_their_categories() {
        let cat = |v| Score::parse(SurveyKind::Csat, v).unwrap().category();
        assert_eq!(cat(1), Category::Unsatisfied);
        assert_eq!(cat(2), Category::Unsatisfied);
        assert_eq!(cat(3), Category::Neutral);
        assert_eq!(cat(4), Category::Satisfied);
        assert_eq!(cat(5), Category::Satisfied);
        assert!(Score::parse(SurveyKind::Csat, 0).is_err());
        assert!(Score::parse(SurveyKind::Csat, 6).is_err());
    }

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Admin > Role::Agent && Role::Agent > Role::Reader);
    }
}
