//! `Idempotency-Key` replay store: the first answer to a keyed request is kept and returned
//! again for a retry, so a retried batch never invites twice.

use diesel::prelude::*;

use super::schema::idempotency_keys;
use super::DbConnection;
use crate::domain::now;
use crate::error::AppError;

pub struct Stored {
    pub request_hash: String,
    pub status: u16,
    pub body: String,
}

pub fn find(
    conn: &mut DbConnection,
    api_key_id: &str,
    key: &str,
) -> Result<Option<Stored>, AppError> {
    let row: Option<(String, i32, String)> = idempotency_keys::table
        .find((api_key_id, key))
        .select((
            idempotency_keys::request_hash,
            idempotency_keys::response_status,
            idempotency_keys::response_body,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|(request_hash, status, body)| Stored {
        request_hash,
        status: status as u16,
        body,
    }))
}

/// Saves the answer. Run in the same transaction as the work, so a concurrent retry with
/// the same key waits on the primary key and then finds this answer.
pub fn save(
    conn: &mut DbConnection,
    api_key_id: &str,
    key: &str,
    hash: &str,
    status: u16,
    body: &str,
) -> Result<(), AppError> {
    diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::api_key_id.eq(api_key_id),
            idempotency_keys::idempotency_key.eq(key),
            idempotency_keys::request_hash.eq(hash),
            idempotency_keys::response_status.eq(status as i32),
            idempotency_keys::response_body.eq(body),
            idempotency_keys::created_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}
