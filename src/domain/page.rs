//! Pagination, id shapes and other small rules every layer shares (no I/O).

use sha2::{Digest, Sha256};

use super::IdPrefix;
use crate::error::AppError;

/// Checked pagination parameters.
#[derive(Debug, Clone)]
pub struct Page {
    pub limit: i64,
    pub cursor: Option<String>,
}

/// Splits one extra fetched row off into `next_cursor`.
pub fn paginate<T>(
    mut rows: Vec<T>,
    page: &Page,
    id: impl Fn(&T) -> &str,
) -> (Vec<T>, Option<String>) {
    if rows.len() as i64 > page.limit {
        rows.truncate(page.limit as usize);
        let next = rows.last().map(|r| id(r).to_string());
        (rows, next)
    } else {
        (rows, None)
    }
}

/// 404 early for a path id that cannot exist (wrong prefix or shape).
pub fn check_id(raw: &str, prefix: IdPrefix, what: &'static str) -> Result<(), AppError> {
    if prefix.matches(raw) {
        Ok(())
    } else {
        Err(AppError::NotFound(what))
    }
}

/// The stored form of an API key: hex SHA-256. Keys are 256 random bits, so a fast hash is
/// enough (no password stretching is needed for high-entropy secrets).
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// `{PUBLIC_URL}/{section}/{value}`, keeping any path prefix of `PUBLIC_URL`.
pub fn link(base: &url::Url, section: &str, value: &str) -> String {
    format!("{}/{section}/{value}", base.as_str().trim_end_matches('/'))
}

/// A stored UTC time as it appears in JSON.
pub fn utc(t: chrono::NaiveDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_naive_utc_and_offset(t, chrono::Utc)
}
