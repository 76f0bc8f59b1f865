//! Team members of the `/app` workspace and how they sign in.
//!
//! - A member has an email (unique, normalised), a name, a role (`admin | agent | reader`,
//!   the API-key roles), an active flag and an optional password (argon2id).
//! - Sign-in by emailed link: a one-time token, valid 15 minutes (24 hours for the link made
//!   by `closeloop user create` or a team invitation). Asking for a link answers the same
//!   whether or not the address is a member; opening the link consumes nothing (mail
//!   scanners open links), only the POST of its "Sign in" button does.
//! - Sessions are rows, so any replica serves them and sign-out or deactivation ends them at
//!   once. Only a hash of the session id is stored. A session ends after
//!   `SESSION_IDLE_HOURS` without a request and `SESSION_MAX_DAYS` after sign-in.
//! - There is always an active admin: the last one cannot be deactivated or demoted.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{NaiveDateTime, TimeDelta};
use diesel::Connection;

use crate::config::Settings;
use crate::context::AppState;
use crate::domain::{hash_key, is_secret, new_id, new_secret, now, Email, IdPrefix, Role};
use crate::email::message::escape_html as esc;
use crate::error::AppError;
use crate::store::models::{SessionRow, UserRow};
use crate::store::users::{self, UserChanges};
use crate::store::DbConnection;

/// How long an emailed sign-in link is valid.
pub const LINK_MINUTES: i64 = 15;
/// How long the link of a new member (CLI or team invitation) is valid.
pub const FIRST_LINK_HOURS: i64 = 24;
/// Shortest and longest password accepted.
pub const PASSWORD_MIN: usize = 10;
pub const PASSWORD_MAX: usize = 256;
/// A session's last request is written at most this often (not on every request).
const TOUCH_EVERY_SECONDS: i64 = 60;

/// Who a member is, as pages show them.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub active: bool,
    pub has_password: bool,
    pub created_at: NaiveDateTime,
    pub last_sign_in_at: Option<NaiveDateTime>,
}

impl Member {
    /// The actor of what they do, in activity logs and webhooks.
    pub fn actor(&self) -> String {
        format!("user:{}", self.email)
    }
}

impl From<UserRow> for Member {
    fn from(r: UserRow) -> Self {
        Member {
            role: Role::parse(&r.role).unwrap_or(Role::Reader),
            has_password: r.password_hash.is_some(),
            id: r.id,
            email: r.email,
            name: r.name,
            active: r.active,
            created_at: r.created_at,
            last_sign_in_at: r.last_sign_in_at,
        }
    }
}

/// A signed-in member and their session's CSRF token.
#[derive(Debug, Clone)]
pub struct Session {
    pub member: Member,
    pub csrf_token: String,
}

/// A new session: the cookie value (never stored) and its absolute expiry.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub cookie: String,
    pub expires_at: NaiveDateTime,
}

/// What opening a sign-in link finds (nothing is consumed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    Valid { email: String },
    Expired,
    Used,
    Unknown,
}

/// Checks a new member's fields: 422 naming the field.
fn checked(email: &str, name: &str) -> Result<(String, String), AppError> {
    let mut errors = crate::error::FieldErrors::new();
    let email = match Email::parse(email) {
        Ok(e) => Some(e.as_str().to_string()),
        Err(why) => {
            errors.insert("email".into(), vec![why]);
            None
        }
    };
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        errors.insert(
            "name".into(),
            vec!["must be 1 to 100 characters long".into()],
        );
    } else if name.chars().any(char::is_control) {
        errors.insert(
            "name".into(),
            vec!["must not contain control characters".into()],
        );
    }
    match email {
        Some(email) if errors.is_empty() => Ok((email, name)),
        _ => Err(AppError::fields(errors)),
    }
}

/// `{PUBLIC_URL}/app/login/{token}`, with `?next=` (a workspace path to open after sign-in).
pub fn sign_in_link(settings: &Settings, token: &str, next: Option<&str>) -> String {
    let link = crate::domain::link(&settings.public_url, "app/login", token);
    match next {
        Some(n) => format!(
            "{link}?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("next", n)
                .finish()
        ),
        None => link,
    }
}

/// Creates a member with a one-time sign-in link valid `FIRST_LINK_HOURS`; returns the row and
/// the link (for the CLI, which prints it, and for team invitations, which email it).
pub fn create_in(
    conn: &mut DbConnection,
    settings: &Settings,
    email: &str,
    name: &str,
    role: Role,
) -> Result<(UserRow, String), AppError> {
    let (email, name) = checked(email, name)?;
    let t = now();
    let row = UserRow {
        id: new_id(IdPrefix::User),
        email,
        name,
        role: role.as_str().to_string(),
        active: true,
        password_hash: None,
        created_at: t,
        updated_at: t,
        last_sign_in_at: None,
    };
    users::insert(conn, &row)?;
    let token = new_secret("");
    users::insert_token(
        conn,
        &hash_key(&token),
        &row.id,
        t + TimeDelta::hours(FIRST_LINK_HOURS),
        t,
    )?;
    Ok((row, sign_in_link(settings, &token, None)))
}

/// Invites a member (admin only): creates them and emails their sign-in link.
pub async fn invite(
    state: &AppState,
    by: &Member,
    email: &str,
    name: &str,
    role: Role,
) -> Result<Member, AppError> {
    require(by, Role::Admin)?;
    let settings = state.settings.clone();
    let (email, name, inviter) = (email.to_string(), name.to_string(), by.name.clone());
    let row = state
        .db
        .write(move |conn| {
            conn.transaction(|conn| {
                let (row, link) = create_in(conn, &settings, &email, &name, role)?;
                let subject = format!("{inviter} invited you to Closeloop");
                let text = format!(
                    "Hello {},\n\n{inviter} invited you to the Closeloop workspace as {}.\n\nSign in with this link (valid {FIRST_LINK_HOURS} hours, once):\n{link}\n\nAfterwards, ask for a new link at {}/app/login whenever you need one.\n",
                    row.name,
                    row.role,
                    settings.public_url.as_str().trim_end_matches('/')
                );
                queue_link_email(conn, &row.email, &subject, &text, &link)?;
                Ok(row)
            })
        })
        .await?;
    state.wake_dispatcher.notify_one();
    Ok(row.into())
}

/// Queues a sign-in email (text and HTML) through the outbox.
fn queue_link_email(
    conn: &mut DbConnection,
    to: &str,
    subject: &str,
    text: &str,
    link: &str,
) -> Result<(), AppError> {
    let paragraphs: String = text
        .split("\n\n")
        .filter(|p| !p.trim().is_empty() && !p.contains(link))
        .map(|p| format!("<p style=\"margin:0 0 12px\">{}</p>", esc(p.trim())))
        .collect();
    let button = format!(
        "<p style=\"margin:16px 0\"><a href=\"{href}\" style=\"display:inline-block;padding:10px 18px;background:#1f2328;color:#ffffff;border-radius:6px;text-decoration:none;font-weight:600\">Sign in to Closeloop</a></p>\
<p style=\"margin:0;color:#57606a;font-size:14px\">Or open {href}</p>",
        href = esc(link),
    );
    let html = crate::email::message::team_page(subject, &format!("{paragraphs}{button}"));
    crate::store::emails::enqueue(
        conn,
        crate::store::emails::NewEmail {
            kind: "sign_in",
            to,
            subject,
            body_text: text,
            in_reply_to: None,
            followup_id: None,
            from_name: Some("Closeloop"),
            reply_to: None,
            body_html: Some(&html),
            send_at: None,
        },
    )?;
    Ok(())
}

/// Emails a sign-in link to `email` when it is an active member; does nothing otherwise.
/// The answer is the same either way, so nobody learns who is a member. `next` (a checked
/// workspace path) is where the link leads after sign-in.
pub async fn request_link(
    state: &AppState,
    email: &str,
    next: Option<String>,
) -> Result<(), AppError> {
    let Ok(email) = Email::parse(email) else {
        return Ok(());
    };
    let settings = state.settings.clone();
    let email = email.as_str().to_string();
    let queued = state
        .db
        .write(move |conn| {
            conn.transaction(|conn| {
                sweep(conn, &settings)?;
                let Some(user) = users::by_email(conn, &email)?.filter(|u| u.active) else {
                    return Ok(false);
                };
                let t = now();
                let token = new_secret("");
                users::insert_token(
                    conn,
                    &hash_key(&token),
                    &user.id,
                    t + TimeDelta::minutes(LINK_MINUTES),
                    t,
                )?;
                let link = sign_in_link(&settings, &token, next.as_deref());
                let text = format!(
                    "Hello {},\n\nSign in to Closeloop with this link (valid {LINK_MINUTES} minutes, once):\n{link}\n\nIf you did not ask for it, ignore this email: nothing happens without the link.\n",
                    user.name
                );
                queue_link_email(conn, &user.email, "Your Closeloop sign-in link", &text, &link)?;
                Ok(true)
            })
        })
        .await?;
    if queued {
        state.wake_dispatcher.notify_one();
    }
    Ok(())
}

/// What a sign-in link is, without consuming it.
pub async fn peek_link(state: &AppState, token: &str) -> Result<LinkState, AppError> {
    if !is_secret(token) {
        return Ok(LinkState::Unknown);
    }
    let hash = hash_key(token);
    state
        .db
        .run(move |conn| {
            let Some((user_id, expires_at, used_at)) = users::find_token(conn, &hash)? else {
                return Ok(LinkState::Unknown);
            };
            if used_at.is_some() {
                return Ok(LinkState::Used);
            }
            if expires_at <= now() {
                return Ok(LinkState::Expired);
            }
            let user = users::get(conn, &user_id)?;
            if !user.active {
                return Ok(LinkState::Unknown);
            }
            Ok(LinkState::Valid { email: user.email })
        })
        .await
}

/// Consumes a sign-in link and starts a session. Err(state) says why not.
pub async fn sign_in_with_link(
    state: &AppState,
    token: &str,
) -> Result<Result<NewSession, LinkState>, AppError> {
    if !is_secret(token) {
        return Ok(Err(LinkState::Unknown));
    }
    let hash = hash_key(token);
    let max_days = state.settings.session_max_days;
    state
        .db
        .write(move |conn| {
            conn.transaction(|conn| {
                let Some((user_id, expires_at, used_at)) = users::find_token(conn, &hash)? else {
                    return Ok(Err(LinkState::Unknown));
                };
                if used_at.is_some() {
                    return Ok(Err(LinkState::Used));
                }
                let t = now();
                if expires_at <= t {
                    return Ok(Err(LinkState::Expired));
                }
                let user = users::get(conn, &user_id)?;
                if !user.active {
                    return Ok(Err(LinkState::Unknown));
                }
                if !users::use_token(conn, &hash, t)? {
                    return Ok(Err(LinkState::Used));
                }
                Ok(Ok(start_session(conn, &user.id, max_days, t)?))
            })
        })
        .await
}

fn start_session(
    conn: &mut DbConnection,
    user_id: &str,
    max_days: u32,
    t: NaiveDateTime,
) -> Result<NewSession, AppError> {
    let cookie = new_secret("");
    let expires_at = t + TimeDelta::days(max_days as i64);
    users::insert_session(
        conn,
        &SessionRow {
            id_hash: hash_key(&cookie),
            user_id: user_id.to_string(),
            csrf_token: new_secret(""),
            created_at: t,
            last_seen_at: t,
            expires_at,
        },
    )?;
    users::update(
        conn,
        user_id,
        &UserChanges {
            last_sign_in_at: Some(Some(t)),
            ..Default::default()
        },
    )?;
    Ok(NewSession { cookie, expires_at })
}

/// A hash that no password matches, verified for unknown addresses so that both answers
/// take as long.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&new_secret("")).unwrap_or_default())
}

fn hash_password(password: &str) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::internal(anyhow::anyhow!("cannot hash the password: {e}")))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Signs in with email and password; `None` when they do not match an active member with a
/// password (one answer for every reason).
pub async fn sign_in_with_password(
    state: &AppState,
    email: &str,
    password: &str,
) -> Result<Option<NewSession>, AppError> {
    let email = Email::parse(email).map(|e| e.as_str().to_string()).ok();
    let user = match email {
        Some(email) => {
            state
                .db
                .run(move |conn| users::by_email(conn, &email))
                .await?
        }
        None => None,
    };
    let hash = user
        .as_ref()
        .filter(|u| u.active)
        .and_then(|u| u.password_hash.clone());
    let password = password.to_string();
    let matched = tokio::task::spawn_blocking(move || match hash {
        Some(h) => verify_password(&password, &h),
        None => {
            verify_password(&password, decoy_hash());
            false
        }
    })
    .await
    .map_err(AppError::internal)?;
    let Some(user) = user.filter(|_| matched) else {
        return Ok(None);
    };
    let max_days = state.settings.session_max_days;
    let session = state
        .db
        .write(move |conn| conn.transaction(|conn| start_session(conn, &user.id, max_days, now())))
        .await?;
    Ok(Some(session))
}

/// The live session behind a cookie value: `None` when unknown, expired (idle or absolute)
/// or its member is deactivated. Stale sessions are deleted as they are found.
pub async fn session(state: &AppState, cookie: &str) -> Result<Option<Session>, AppError> {
    if !is_secret(cookie) {
        return Ok(None);
    }
    let hash = hash_key(cookie);
    let idle = TimeDelta::hours(state.settings.session_idle_hours as i64);
    let found = state
        .db
        .run({
            let hash = hash.clone();
            move |conn| users::find_session(conn, &hash)
        })
        .await?;
    let Some((session, user)) = found else {
        return Ok(None);
    };
    let t = now();
    if session.expires_at <= t || session.last_seen_at + idle <= t || !user.active {
        state
            .db
            .write(move |conn| users::delete_session(conn, &hash))
            .await?;
        return Ok(None);
    }
    if t - session.last_seen_at >= TimeDelta::seconds(TOUCH_EVERY_SECONDS) {
        state
            .db
            .write(move |conn| users::touch_session(conn, &hash, t))
            .await?;
    }
    Ok(Some(Session {
        member: user.into(),
        csrf_token: session.csrf_token,
    }))
}

/// Ends the session behind a cookie value (nothing when there is none).
pub async fn sign_out(state: &AppState, cookie: &str) -> Result<(), AppError> {
    if !is_secret(cookie) {
        return Ok(());
    }
    let hash = hash_key(cookie);
    state
        .db
        .write(move |conn| users::delete_session(conn, &hash))
        .await
}

/// Deletes expired sign-in links and sessions (run whenever a link is asked for, so the
/// tables stay as small as the live set).
pub fn sweep(conn: &mut DbConnection, settings: &Settings) -> Result<usize, AppError> {
    let t = now();
    let idle = TimeDelta::hours(settings.session_idle_hours as i64);
    Ok(users::delete_expired_tokens(conn, t - TimeDelta::days(1))?
        + users::delete_stale_sessions(conn, t, t - idle)?)
}

/// 403 unless `member` has at least `role`.
pub fn require(member: &Member, role: Role) -> Result<(), AppError> {
    if member.role >= role {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "this needs the {} role; you have the {} role",
            role.as_str(),
            member.role.as_str()
        )))
    }
}

pub async fn list(state: &AppState) -> Result<Vec<Member>, AppError> {
    Ok(state
        .db
        .run(users::list)
        .await?
        .into_iter()
        .map(Member::from)
        .collect())
}

/// Active members, for assignee pickers.
pub async fn active(state: &AppState) -> Result<Vec<Member>, AppError> {
    Ok(list(state)
        .await?
        .into_iter()
        .filter(|m| m.active)
        .collect())
}

/// Changes a member's role or active flag (admin only). Deactivating ends their sessions at
/// once. 409 `last_admin` when no active admin would be left.
pub async fn update(
    state: &AppState,
    by: &Member,
    id: &str,
    role: Option<Role>,
    active: Option<bool>,
) -> Result<Member, AppError> {
    require(by, Role::Admin)?;
    let id = id.to_string();
    let row = state
        .db
        .write(move |conn| {
            conn.transaction(|conn| {
                let user = users::get(conn, &id)?;
                let was_admin = user.active && user.role == "admin";
                let stays_admin = active.unwrap_or(user.active)
                    && role.map(Role::as_str).unwrap_or(&user.role) == "admin";
                if was_admin && !stays_admin && users::count_active_admins(conn)? <= 1 {
                    return Err(AppError::conflict(
                        "last_admin",
                        "the workspace needs an active admin: make someone else admin first",
                    ));
                }
                users::update(
                    conn,
                    &id,
                    &UserChanges {
                        role: role.map(|r| r.as_str().to_string()),
                        active,
                        updated_at: Some(now()),
                        ..Default::default()
                    },
                )?;
                if active == Some(false) {
                    users::delete_sessions_of(conn, &id)?;
                }
                users::get(conn, &id)
            })
        })
        .await?;
    Ok(row.into())
}

/// A member changes their own name and, optionally, password (`Some("")` removes it).
pub async fn update_profile(
    state: &AppState,
    me: &Member,
    name: &str,
    password: Option<&str>,
) -> Result<Member, AppError> {
    let (_, name) = checked(&me.email, name)?;
    let hash = match password {
        None => None,
        Some("") => Some(None),
        Some(p) => {
            let n = p.chars().count();
            if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&n) {
                return Err(AppError::field(
                    "password",
                    format!("must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long"),
                ));
            }
            let p = p.to_string();
            Some(Some(
                tokio::task::spawn_blocking(move || hash_password(&p))
                    .await
                    .map_err(AppError::internal)??,
            ))
        }
    };
    let id = me.id.clone();
    let row = state
        .db
        .write(move |conn| {
            users::update(
                conn,
                &id,
                &UserChanges {
                    name: Some(name.clone()),
                    password_hash: hash.clone(),
                    updated_at: Some(now()),
                    ..Default::default()
                },
            )?;
            users::get(conn, &id)
        })
        .await?;
    Ok(row.into())
}

/// Names of members by actor (`user:<email>`), for activity logs.
pub fn names(team: &[Member]) -> std::collections::HashMap<String, String> {
    team.iter().map(|m| (m.actor(), m.name.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong horse battery", &h));
        assert!(!verify_password("anything", "not a hash"));
    }

    #[test]
    fn new_members_are_checked() {
        assert!(checked("Ann@Example.com ", "Ann").is_ok());
        assert_eq!(
            checked("Ann@Example.com", "Ann").unwrap().0,
            "ann@example.com"
        );
        assert!(checked("nope", "Ann").is_err());
        assert!(checked("a@b.co", " ").is_err());
        assert!(checked("a@b.co", "A\nB").is_err());
    }
}
