//! Queries of the workspace's `users`, their one-time `sign_in_tokens`, their `sessions` and
//! their `saved_views`. Tokens and session ids are stored only as a SHA-256 hash.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{SavedViewRow, SessionRow, UserRow};
use super::schema::{saved_views, sessions, sign_in_tokens, users};
use super::DbConnection;
use crate::error::AppError;

pub fn insert(conn: &mut DbConnection, row: &UserRow) -> Result<(), AppError> {
    diesel::insert_into(users::table)
        .values(row)
        .execute(conn)
        .map_err(|e| match AppError::from(e) {
            AppError::Conflict { .. } => {
                AppError::conflict("member_exists", "a member with this email already exists")
            }
            other => other,
        })?;
    Ok(())
}

pub fn get(conn: &mut DbConnection, id: &str) -> Result<UserRow, AppError> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("member"))
}

/// The member with this (normalised) email, active or not.
pub fn by_email(conn: &mut DbConnection, email: &str) -> Result<Option<UserRow>, AppError> {
    Ok(users::table
        .filter(users::email.eq(email))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

/// Every member, active first, then by name.
pub fn list(conn: &mut DbConnection) -> Result<Vec<UserRow>, AppError> {
    Ok(users::table
        .order((users::active.desc(), users::name.asc(), users::id.asc()))
        .select(UserRow::as_select())
        .load(conn)?)
}

/// The email addresses of the active admins, oldest member first.
pub fn active_admin_emails(conn: &mut DbConnection) -> Result<Vec<String>, AppError> {
    Ok(users::table
        .filter(users::active.eq(true))
        .filter(users::role.eq("admin"))
        .order((users::created_at.asc(), users::id.asc()))
        .select(users::email)
        .load(conn)?)
}

pub fn count_active_admins(conn: &mut DbConnection) -> Result<i64, AppError> {
    Ok(users::table
        .filter(users::active.eq(true))
        .filter(users::role.eq("admin"))
        .count()
        .get_result(conn)?)
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub name: Option<String>,
    pub role: Option<String>,
    pub active: Option<bool>,
    pub password_hash: Option<Option<String>>,
    pub last_sign_in_at: Option<Option<NaiveDateTime>>,
    pub updated_at: Option<NaiveDateTime>,
}

pub fn update(conn: &mut DbConnection, id: &str, changes: &UserChanges) -> Result<(), AppError> {
    diesel::update(users::table.find(id))
        .set(changes)
        .execute(conn)?;
    Ok(())
}

/// The display name of an activity's actor: a member's name for `user:<email>`, the key's
/// name for `api-key:<name>`; `None` for `system`, `rule`, `customer` and unknown members.
pub fn actor_name(conn: &mut DbConnection, actor: &str) -> Result<Option<String>, AppError> {
    if let Some(email) = actor.strip_prefix("user:") {
        return Ok(by_email(conn, email)?.map(|u| u.name));
    }
    Ok(actor.strip_prefix("api-key:").map(str::to_string))
}

pub fn insert_token(
    conn: &mut DbConnection,
    token_hash: &str,
    user_id: &str,
    expires_at: NaiveDateTime,
    t: NaiveDateTime,
) -> Result<(), AppError> {
    diesel::insert_into(sign_in_tokens::table)
        .values((
            sign_in_tokens::token_hash.eq(token_hash),
            sign_in_tokens::user_id.eq(user_id),
            sign_in_tokens::expires_at.eq(expires_at),
            sign_in_tokens::created_at.eq(t),
        ))
        .execute(conn)?;
    Ok(())
}

/// A sign-in token's member and expiry, and whether it was used.
pub fn find_token(
    conn: &mut DbConnection,
    token_hash: &str,
) -> Result<Option<(String, NaiveDateTime, Option<NaiveDateTime>)>, AppError> {
    Ok(sign_in_tokens::table
        .find(token_hash)
        .select((
            sign_in_tokens::user_id,
            sign_in_tokens::expires_at,
            sign_in_tokens::used_at,
        ))
        .first(conn)
        .optional()?)
}

/// Marks an unused token used; false when it was already used (a concurrent request won).
pub fn use_token(
    conn: &mut DbConnection,
    token_hash: &str,
    t: NaiveDateTime,
) -> Result<bool, AppError> {
    let n = diesel::update(
        sign_in_tokens::table
            .find(token_hash)
            .filter(sign_in_tokens::used_at.is_null()),
    )
    .set(sign_in_tokens::used_at.eq(t))
    .execute(conn)?;
    Ok(n == 1)
}

/// Deletes tokens that expired before `before` (used or not).
pub fn delete_expired_tokens(
    conn: &mut DbConnection,
    before: NaiveDateTime,
) -> Result<usize, AppError> {
    Ok(
        diesel::delete(sign_in_tokens::table.filter(sign_in_tokens::expires_at.lt(before)))
            .execute(conn)?,
    )
}

pub fn insert_session(conn: &mut DbConnection, row: &SessionRow) -> Result<(), AppError> {
    diesel::insert_into(sessions::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// A session and its member.
pub fn find_session(
    conn: &mut DbConnection,
    id_hash: &str,
) -> Result<Option<(SessionRow, UserRow)>, AppError> {
    Ok(sessions::table
        .inner_join(users::table)
        .filter(sessions::id_hash.eq(id_hash))
        .select((SessionRow::as_select(), UserRow::as_select()))
        .first(conn)
        .optional()?)
}

pub fn touch_session(
    conn: &mut DbConnection,
    id_hash: &str,
    t: NaiveDateTime,
) -> Result<(), AppError> {
    diesel::update(sessions::table.find(id_hash))
        .set(sessions::last_seen_at.eq(t))
        .execute(conn)?;
    Ok(())
}

pub fn delete_session(conn: &mut DbConnection, id_hash: &str) -> Result<(), AppError> {
    diesel::delete(sessions::table.find(id_hash)).execute(conn)?;
    Ok(())
}

/// Ends every session of a member (deactivated, or signed out everywhere).
pub fn delete_sessions_of(conn: &mut DbConnection, user_id: &str) -> Result<usize, AppError> {
    Ok(diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)?)
}

/// Deletes sessions past their absolute expiry or idle since before `idle_before`.
pub fn delete_stale_sessions(
    conn: &mut DbConnection,
    t: NaiveDateTime,
    idle_before: NaiveDateTime,
) -> Result<usize, AppError> {
    Ok(diesel::delete(
        sessions::table.filter(
            sessions::expires_at
                .lt(t)
                .or(sessions::last_seen_at.lt(idle_before)),
        ),
    )
    .execute(conn)?)
}

pub fn saved_views_of(
    conn: &mut DbConnection,
    user_id: &str,
) -> Result<Vec<SavedViewRow>, AppError> {
    Ok(saved_views::table
        .filter(saved_views::user_id.eq(user_id))
        .order((saved_views::name.asc(), saved_views::id.asc()))
        .select(SavedViewRow::as_select())
        .load(conn)?)
}

/// Saves a view, replacing the member's view of the same name.
pub fn save_view(conn: &mut DbConnection, row: &SavedViewRow) -> Result<(), AppError> {
    diesel::delete(
        saved_views::table
            .filter(saved_views::user_id.eq(&row.user_id))
            .filter(saved_views::name.eq(&row.name)),
    )
    .execute(conn)?;
    diesel::insert_into(saved_views::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Deletes one of the member's views; false when there was none.
pub fn delete_view(conn: &mut DbConnection, user_id: &str, id: &str) -> Result<bool, AppError> {
    Ok(diesel::delete(
        saved_views::table
            .filter(saved_views::user_id.eq(user_id))
            .filter(saved_views::id.eq(id)),
    )
    .execute(conn)?
        == 1)
}

/// Whether the table has any row (`closeloop demo` refuses a database with data).
pub fn any(conn: &mut DbConnection) -> Result<bool, AppError> {
    Ok(super::schema::users::table
        .select(super::schema::users::id)
        .first::<String>(conn)
        .optional()?
        .is_some())
}
