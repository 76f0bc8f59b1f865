//! Sign-in and sign-out: `/app/login` (emailed link or password), `/app/login/{token}` (a
//! page with one "Sign in" button: opening the link consumes nothing) and `/app/logout`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::page::{html, message, see_other, Layout, PageError};
use super::{removal_cookie, safe_next, same_origin, session_cookie, SignInLimits, Signed};
use crate::context::AppState;
use crate::members::{self, LinkState};

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

#[derive(Template)]
#[template(path = "app/login.html")]
struct LoginPage {
    l: Layout,
    email: String,
    next: String,
    error: Option<String>,
    password_error: Option<String>,
    notice: Option<&'static str>,
    link_minutes: i64,
}

/// `GET /app/login`: the email form (and the password form).
pub async fn login_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, PageError> {
    let next = safe_next(query.next.as_deref());
    if let Some(c) = req.cookie(super::COOKIE) {
        if members::session(&state, c.value()).await?.is_some() {
            return Ok(see_other(&next));
        }
    }
    Ok(login_page(
        StatusCode::OK,
        String::new(),
        next,
        None,
        None,
        query.signed_out.is_some().then_some("You are signed out."),
    ))
}

fn login_page(
    status: StatusCode,
    email: String,
    next: String,
    error: Option<String>,
    password_error: Option<String>,
    notice: Option<&'static str>,
) -> HttpResponse {
    html(
        status,
        LoginPage {
            l: Layout::bare("Sign in"),
            email,
            next,
            error,
            password_error,
            notice,
            link_minutes: members::LINK_MINUTES,
        }
        .render(),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginForm {
    email: Option<String>,
    password: Option<String>,
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "app/check_email.html")]
struct CheckEmailPage {
    l: Layout,
    email: String,
    link_minutes: i64,
}

/// `POST /app/login`: with a password, signs in; without, emails a sign-in link to an active
/// member and answers the same page whoever asked.
pub async fn login(
    state: web::Data<AppState>,
    limits: web::Data<SignInLimits>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, PageError> {
    same_origin(&req)?;
    let form = form.into_inner();
    let email = form.email.unwrap_or_default().trim().to_string();
    let next = safe_next(form.next.as_deref());
    let password = form.password.unwrap_or_default();
    let with_password = !password.is_empty();
    if crate::domain::Email::parse(&email).is_err() {
        let why = "Enter your work email address, such as ann@example.com.".to_string();
        let (e, p) = if with_password {
            (None, Some(why))
        } else {
            (Some(why), None)
        };
        return Ok(login_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            email,
            next,
            e,
            p,
            None,
        ));
    }
    if let Err(wait) = limits.check(&req, &email) {
        return Ok(super::too_many(wait));
    }
    if with_password {
        return match members::sign_in_with_password(&state, &email, &password).await? {
            Some(session) => Ok(signed_in(&state, &session.cookie, &next)),
            None => Ok(login_page(
                StatusCode::UNAUTHORIZED,
                email,
                next,
                None,
                Some(
                    "The email or the password is not right. You can also ask for a sign-in link."
                        .into(),
                ),
                None,
            )),
        };
    }
    members::request_link(&state, &email, Some(next).filter(|n| n != "/app/followups")).await?;
    Ok(html(
        StatusCode::OK,
        CheckEmailPage {
            l: Layout::bare("Check your email"),
            email,
            link_minutes: members::LINK_MINUTES,
        }
        .render(),
    ))
}

fn signed_in(state: &AppState, cookie: &str, next: &str) -> HttpResponse {
    let mut res = see_other(next);
    let _ = res.add_cookie(&session_cookie(state, cookie));
    res
}

#[derive(Template)]
#[template(path = "app/link.html")]
struct LinkPage {
    l: Layout,
    email: String,
    next: String,
}

/// The page of a link that cannot sign anyone in.
fn link_refused(why: &LinkState) -> HttpResponse {
    let (status, heading, body) = match why {
        LinkState::Expired => (
            StatusCode::GONE,
            "This sign-in link has expired",
            "Sign-in links work for a short time only. Ask for a new one.",
        ),
        LinkState::Used => (
            StatusCode::GONE,
            "This sign-in link was already used",
            "Each link signs in once. Ask for a new one.",
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "This sign-in link is not valid",
            "It may have been copied incompletely. Ask for a new one.",
        ),
    };
    message(
        status,
        heading,
        body,
        Some(("/app/login", "Get a new link")),
    )
}

/// `GET /app/login/{token}`: one "Sign in" button; nothing is consumed.
pub async fn link_page(
    state: web::Data<AppState>,
    token: web::Path<String>,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, PageError> {
    match members::peek_link(&state, &token).await? {
        LinkState::Valid { email } => Ok(html(
            StatusCode::OK,
            LinkPage {
                l: Layout::bare("Sign in"),
                email,
                next: safe_next(query.next.as_deref()),
            }
            .render(),
        )),
        other => Ok(link_refused(&other)),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct NextForm {
    next: Option<String>,
}

/// `POST /app/login/{token}`: consumes the link and starts the session.
pub async fn link_sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    form: web::Form<NextForm>,
) -> Result<HttpResponse, PageError> {
    same_origin(&req)?;
    match members::sign_in_with_link(&state, &token).await? {
        Ok(session) => Ok(signed_in(
            &state,
            &session.cookie,
            &safe_next(form.next.as_deref()),
        )),
        Err(why) => Ok(link_refused(&why)),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct CsrfForm {
    csrf_token: Option<String>,
}

/// `POST /app/logout`: ends the session.
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: Signed,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    signed.check_csrf(&req, form.csrf_token.as_deref())?;
    if let Some(c) = req.cookie(super::COOKIE) {
        members::sign_out(&state, c.value()).await?;
    }
    let mut res = see_other("/app/login?signed_out=1");
    let _ = res.add_cookie(&removal_cookie(&state));
    Ok(res)
}
