//! `/app/team` (every member sees it; admins invite members, change roles, deactivate and
//! reactivate) and `/app/profile` (a member's own name and password).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::page::{html, see_other, Layout, PageError};
use super::Signed;
use crate::context::AppState;
use crate::domain::Role;
use crate::error::AppError;
use crate::members::{self, Member};

/// A member as the team page lists them.
pub struct Row {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: &'static str,
    pub active: bool,
    pub last_sign_in: String,
    pub is_me: bool,
}

#[derive(Template)]
#[template(path = "app/team.html")]
struct TeamPage {
    l: Layout,
    csrf: String,
    is_admin: bool,
    rows: Vec<Row>,
    notice: Option<String>,
    error: Option<String>,
    email: String,
    name: String,
    role: String,
    roles: [&'static str; 3],
}

#[derive(Debug, Default, Deserialize)]
pub struct TeamQuery {
    notice: Option<String>,
}

fn when(t: Option<chrono::NaiveDateTime>) -> String {
    match t {
        Some(t) => t.format("%Y-%m-%d %H:%M UTC").to_string(),
        None => "never".into(),
    }
}

async fn team_page(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
    form: (String, String, String),
) -> Result<HttpResponse, PageError> {
    let me = signed.member().id.clone();
    let rows = members::list(state)
        .await?
        .into_iter()
        .map(|m: Member| Row {
            is_me: m.id == me,
            last_sign_in: when(m.last_sign_in_at),
            id: m.id,
            name: m.name,
            email: m.email,
            role: m.role.as_str(),
            active: m.active,
        })
        .collect();
    Ok(html(
        status,
        TeamPage {
            l: Layout::signed("Team", signed, "team"),
            csrf: signed.csrf().to_string(),
            is_admin: signed.can(Role::Admin),
            rows,
            notice,
            error,
            email: form.0,
            name: form.1,
            role: form.2,
            roles: ["agent", "reader", "admin"],
        }
        .render(),
    ))
}

/// `GET /app/team`.
pub async fn show(
    state: web::Data<AppState>,
    signed: Signed,
    query: web::Query<TeamQuery>,
) -> Result<HttpResponse, PageError> {
    let notice = query
        .notice
        .as_deref()
        .map(|n| n.chars().filter(|c| !c.is_control()).take(200).collect());
    team_page(
        &state,
        &signed,
        StatusCode::OK,
        notice,
        None,
        (String::new(), String::new(), "agent".into()),
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
pub struct InviteForm {
    csrf_token: Option<String>,
    email: Option<String>,
    name: Option<String>,
    role: Option<String>,
}

fn notice_url(text: &str) -> String {
    format!(
        "/app/team?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("notice", text)
            .finish()
    )
}

/// `POST /app/team`: invites a member (admin), who receives a sign-in email.
pub async fn invite(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    form: web::Form<InviteForm>,
) -> Result<HttpResponse, PageError> {
    signed.check_csrf(&req, form.csrf_token.as_deref())?;
    signed.require(Role::Admin)?;
    let form = form.into_inner();
    let email = form.email.unwrap_or_default();
    let name = form.name.unwrap_or_default();
    let role_raw = form.role.unwrap_or_default();
    let Some(role) = Role::parse(&role_raw) else {
        return team_page(
            &state,
            &signed,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("Choose a role: agent, reader or admin.".into()),
            (email, name, "agent".into()),
        )
        .await;
    };
    match members::invite(&state, signed.member(), &email, &name, role).await {
        Ok(m) => Ok(see_other(&notice_url(&format!(
            "Invited {} ({}). They will receive a sign-in email.",
            m.name, m.email
        )))),
        Err(e @ (AppError::Validation { .. } | AppError::Conflict { .. })) => {
            let why = PageError::from(e);
            let text = match &why {
                PageError::BadRequest(m) | PageError::Conflict(m) => m.clone(),
                other => other.to_string(),
            };
            team_page(
                &state,
                &signed,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(text),
                (email, name, role_raw),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct UpdateForm {
    csrf_token: Option<String>,
    role: Option<String>,
    /// `true` or `false`.
    active: Option<String>,
}

/// `POST /app/team/{id}`: changes a member's role or active flag (admin).
pub async fn update(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    id: web::Path<String>,
    form: web::Form<UpdateForm>,
) -> Result<HttpResponse, PageError> {
    signed.check_csrf(&req, form.csrf_token.as_deref())?;
    signed.require(Role::Admin)?;
    if !crate::domain::IdPrefix::User.matches(&id) {
        return Err(PageError::NotFound("member"));
    }
    let role = match form.role.as_deref() {
        None | Some("") => None,
        Some(r) => Some(Role::parse(r).ok_or_else(|| {
            PageError::BadRequest("Choose a role: agent, reader or admin.".into())
        })?),
    };
    let active = match form.active.as_deref() {
        None | Some("") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(PageError::BadRequest("active must be true or false".into())),
    };
    let m = members::update(&state, signed.member(), &id, role, active).await?;
    let what = match (role, active) {
        (_, Some(false)) => format!("{} is deactivated and signed out everywhere.", m.name),
        (_, Some(true)) => format!("{} is active again.", m.name),
        (Some(r), _) => format!("{} is now {}.", m.name, r.as_str()),
        _ => "Nothing changed.".into(),
    };
    Ok(see_other(&notice_url(&what)))
}

#[derive(Template)]
#[template(path = "app/profile.html")]
struct ProfilePage {
    l: Layout,
    csrf: String,
    name: String,
    email: String,
    role: &'static str,
    has_password: bool,
    notice: Option<&'static str>,
    error: Option<String>,
    password_min: usize,
}

#[derive(Debug, Default, Deserialize)]
pub struct ProfileQuery {
    saved: Option<String>,
}

fn profile_page(
    signed: &Signed,
    member: &Member,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
) -> HttpResponse {
    html(
        status,
        ProfilePage {
            l: Layout::signed("Your profile", signed, "profile"),
            csrf: signed.csrf().to_string(),
            name: member.name.clone(),
            email: member.email.clone(),
            role: member.role.as_str(),
            has_password: member.has_password,
            notice,
            error,
            password_min: members::PASSWORD_MIN,
        }
        .render(),
    )
}

/// `GET /app/profile`.
pub async fn profile(signed: Signed, query: web::Query<ProfileQuery>) -> HttpResponse {
    let member = signed.member().clone();
    profile_page(
        &signed,
        &member,
        StatusCode::OK,
        query.saved.is_some().then_some("Saved."),
        None,
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct ProfileForm {
    csrf_token: Option<String>,
    name: Option<String>,
    password: Option<String>,
    password_again: Option<String>,
    remove_password: Option<String>,
}

/// `POST /app/profile`: name, and setting, changing or removing the password.
pub async fn save_profile(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    form: web::Form<ProfileForm>,
) -> Result<HttpResponse, PageError> {
    signed.check_csrf(&req, form.csrf_token.as_deref())?;
    let form = form.into_inner();
    let name = form.name.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    let again = form.password_again.unwrap_or_default();
    let change = if form.remove_password.is_some() {
        Some("")
    } else if password.is_empty() && again.is_empty() {
        None
    } else if password != again {
        let member = signed.member().clone();
        return Ok(profile_page(
            &signed,
            &member,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("The two passwords are not the same.".into()),
        ));
    } else {
        Some(password.as_str())
    };
    match members::update_profile(&state, signed.member(), &name, change).await {
        Ok(_) => Ok(see_other("/app/profile?saved=1")),
        Err(e @ AppError::Validation { .. }) => {
            let text = match PageError::from(e) {
                PageError::BadRequest(m) => m,
                other => other.to_string(),
            };
            let member = signed.member().clone();
            Ok(profile_page(
                &signed,
                &member,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(text),
            ))
        }
        Err(e) => Err(e.into()),
    }
}
