//! Public ids and secrets.
//!
//! Ids are a type prefix plus a ULID (`srv_01JD…`): unique, URL-safe and sortable by creation
//! time, which gives stable cursor pagination. They are not secrets. Secrets (invitation tokens,
//! API keys, webhook secrets) are 256 random bits from the operating system's CSPRNG.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::TryRngCore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdPrefix {
    ApiKey,
    Survey,
    Contact,
    Invitation,
    Response,
    Followup,
    Activity,
    Webhook,
    Delivery,
    Attempt,
    Email,
    User,
    SavedView,
}

impl IdPrefix {
    pub const fn as_str(self) -> &'static str {
        match self {
            IdPrefix::ApiKey => "key_",
            IdPrefix::Survey => "srv_",
            IdPrefix::Contact => "con_",
            IdPrefix::Invitation => "inv_",
            IdPrefix::Response => "rsp_",
            IdPrefix::Followup => "fup_",
            IdPrefix::Activity => "act_",
            IdPrefix::Webhook => "whk_",
            IdPrefix::Delivery => "dlv_",
            IdPrefix::Attempt => "att_",
            IdPrefix::Email => "eml_",
            IdPrefix::User => "usr_",
            IdPrefix::SavedView => "viw_",
        }
    }

    /// Whether `raw` has this prefix and a well-formed ULID after it (used to reject bad
    /// cursors and path ids early with a clear message).
    pub fn matches(self, raw: &str) -> bool {
        raw.strip_prefix(self.as_str())
            .is_some_and(|rest| ulid::Ulid::from_string(rest).is_ok())
    }
}

static IDS: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());

/// A new id with the given type prefix. Ids made by one process are strictly increasing
/// (a monotonic ULID generator), so "order by id" is creation order even within a millisecond.
pub fn new_id(prefix: IdPrefix) -> String {
    let ulid = IDS
        .lock()
        .ok()
        .and_then(|mut g| g.generate().ok())
        .unwrap_or_else(|| ulid::Ulid::from_datetime(std::time::SystemTime::now()));
    format!("{}{}", prefix.as_str(), ulid)
}

/// Whether `raw` has the shape of a secret made by `new_secret("")`: 43 URL-safe
/// characters (anything else cannot exist, so it is refused before any lookup).
pub fn is_secret(raw: &str) -> bool {
    raw.len() == 43
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// 256 bits from the OS CSPRNG, base64url without padding (43 characters), with a prefix.
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random number generator failed");
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_sort_by_time() {
        let a = new_id(IdPrefix::Survey);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id(IdPrefix::Survey);
        assert!(a.starts_with("srv_") && a.len() == 30, "{a}");
        assert!(a < b);
        assert!(IdPrefix::Survey.matches(&a));
        assert!(!IdPrefix::Contact.matches(&a));
        assert!(!IdPrefix::Survey.matches("srv_nope"));
    }

    #[test]
    fn ids_made_in_a_burst_keep_their_order() {
        let ids: Vec<String> = (0..1000).map(|_| new_id(IdPrefix::Activity)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn secrets_are_long_url_safe_and_distinct() {
        let a = new_secret("");
        let b = new_secret("");
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
