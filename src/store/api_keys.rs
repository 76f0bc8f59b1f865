//! Queries of the `api_keys` table (keys are stored only as a hash).

use diesel::prelude::*;

use super::models::ApiKeyRow;
use super::schema::api_keys;
use super::DbConnection;
use crate::domain::{hash_key, Page};
use crate::domain::{new_id, new_secret, now, IdPrefix, Role};
use crate::error::AppError;

/// Creates a key; returns the row and the key itself, which is stored only as a hash.
pub fn create(
    conn: &mut DbConnection,
    name: &str,
    role: Role,
) -> Result<(ApiKeyRow, String), AppError> {
    let key = new_secret("cl_");
    let row = ApiKeyRow {
        id: new_id(IdPrefix::ApiKey),
        name: name.to_string(),
        role: role.as_str().to_string(),
        key_hash: hash_key(&key),
        key_prefix: key.chars().take(7).collect(),
        created_at: now(),
        last_used_at: None,
        revoked_at: None,
    };
    diesel::insert_into(api_keys::table)
        .values(&row)
        .execute(conn)?;
    Ok((row, key))
}

/// A key, revoked or not.
pub fn get(conn: &mut DbConnection, id: &str) -> Result<Option<ApiKeyRow>, AppError> {
    Ok(api_keys::table
        .find(id)
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn find_active_by_hash(
    conn: &mut DbConnection,
    hash: &str,
) -> Result<Option<ApiKeyRow>, AppError> {
    Ok(api_keys::table
        .filter(api_keys::key_hash.eq(hash))
        .filter(api_keys::revoked_at.is_null())
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()?)
}

/// How often `last_used_at` is written per key: at most once in this many seconds.
pub const LAST_USED_EVERY_SECS: i64 = 60;

/// Whether a key read at `t` needs its `last_used_at` written: never used, or last written
/// at least [`LAST_USED_EVERY_SECS`] ago.
pub fn last_used_is_stale(row: &ApiKeyRow, t: chrono::NaiveDateTime) -> bool {
    row.last_used_at
        .is_none_or(|at| at <= t - chrono::TimeDelta::seconds(LAST_USED_EVERY_SECS))
}

/// Records that key `id` was used at `t`, unless it was already recorded less than
/// [`LAST_USED_EVERY_SECS`] before (a conditional `UPDATE`, so concurrent requests and
/// replicas write it once). Returns whether the row was written.
pub fn touch_last_used(
    conn: &mut DbConnection,
    id: &str,
    t: chrono::NaiveDateTime,
) -> Result<bool, AppError> {
    let before = t - chrono::TimeDelta::seconds(LAST_USED_EVERY_SECS);
    let n = diesel::update(
        api_keys::table.find(id).filter(
            api_keys::last_used_at
                .is_null()
                .or(api_keys::last_used_at.le(before)),
        ),
    )
    .set(api_keys::last_used_at.eq(Some(t)))
    .execute(conn)?;
    Ok(n > 0)
}

pub fn list(conn: &mut DbConnection, page: &Page) -> Result<Vec<ApiKeyRow>, AppError> {
    let mut q = api_keys::table
        .select(ApiKeyRow::as_select())
        .order(api_keys::id.desc())
        .into_boxed();
    if let Some(c) = &page.cursor {
        q = q.filter(api_keys::id.lt(c.clone()));
    }
    Ok(q.limit(page.limit + 1).load(conn)?)
}

/// Revokes a key on behalf of key `by`; revoking twice is harmless. `None` when the key does
/// not exist; 409 `last_admin_key` for the last active admin key (nobody could manage keys
/// after it), else 409 `own_key` when a key would revoke itself.
pub fn revoke(conn: &mut DbConnection, id: &str, by: &str) -> Result<Option<ApiKeyRow>, AppError> {
    conn.transaction(|conn| {
        let Some(row) = api_keys::table
            .find(id)
            .select(ApiKeyRow::as_select())
            .first(conn)
            .optional()?
        else {
            return Ok(None);
        };
        if row.revoked_at.is_none() && row.role == "admin" {
            // Lock the active admin keys (PostgreSQL), so two concurrent revocations cannot
            // both see the other key still active.
            let active = api_keys::table
                .filter(api_keys::role.eq("admin"))
                .filter(api_keys::revoked_at.is_null())
                .select(api_keys::id);
            let admins: Vec<String> = match conn {
                DbConnection::Postgres(pg) => active.order(api_keys::id).for_update().load(pg)?,
                DbConnection::Sqlite(lite) => active.load(lite)?,
            };
            if admins.iter().all(|a| a == id) {
                return Err(AppError::conflict(
                    "last_admin_key",
                    "this is the last active admin key; create another admin key before revoking it",
                ));
            }
        }
        if id == by {
            return Err(AppError::conflict(
                "own_key",
                "a key cannot revoke itself; revoke it with another admin key",
            ));
        }
        if row.revoked_at.is_none() {
            diesel::update(api_keys::table.find(id))
                .set(api_keys::revoked_at.eq(Some(now())))
                .execute(conn)?;
        }
        Ok(Some(row))
    })
}
