//! Types with rules. Request DTOs are parsed into these at the edge ("parse, don't validate"),
//! and storage code only accepts them.

mod backoff;
mod email;
mod event;
mod ids;
mod page;
pub mod stats;
mod survey;

pub use backoff::backoff;
pub use email::Email;
pub use event::Event;
pub use ids::{is_secret, new_id, new_secret, IdPrefix};
pub use page::{check_id, hash_key, link, paginate, utc, Page};
pub use survey::{Category, Role, Score, SurveyKind, SurveyStatus};

/// Current UTC time truncated to microseconds, the precision both engines store.
pub fn now() -> chrono::NaiveDateTime {
    let t = chrono::Utc::now().naive_utc();
    chrono::DurationRound::duration_trunc(t, chrono::TimeDelta::microseconds(1)).unwrap_or(t)
}
