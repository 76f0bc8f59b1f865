//! The support-lead workspace under `/app`: sign-in, the team, the inbox of follow-up tasks,
//! the task page, the dashboards (`reports`), the surveys (list, editor, invitations, send
//! queue), contacts and (admins) settings: API keys and webhooks. Handlers call the same use
//! cases as the API.
//!
//! Rules:
//! - Every page but sign-in needs a session (`Signed`); without one, GET redirects to
//!   `/app/login?next=…` and comes back after sign-in.
//! - Every unsafe request needs the session's CSRF token (form field `csrf_token` or header
//!   `X-CSRF-Token`) and an `Origin` (or `Referer`) of this site: anything else is a 403 page.
//! - Pages work without JavaScript; `/app/static/app.js` adds keyboard shortcuts and live
//!   updates. CSP: `script-src 'self'`, no inline script or style.
//! - Readers see pages without action forms; their POSTs are refused (403).

mod auth;
mod charts;
mod contacts;
pub mod inbox;
pub mod page;
mod reports;
mod settings;
mod surveys;
mod task;
mod team;

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::context::AppState;
use crate::domain::Role;
use crate::error::AppError;
use crate::members::{Member, Session};

pub use page::PageError;

/// The session cookie.
pub const COOKIE: &str = "closeloop_session";

const JS: &str = include_str!("app.js");

/// Registers the workspace's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/app", web::get().to(home))
        .route("/app/", web::get().to(home))
        .route("/app/static/app.js", web::get().to(script))
        .route("/app/login", web::get().to(auth::login_form))
        .route("/app/login", web::post().to(auth::login))
        .route("/app/login/{token}", web::get().to(auth::link_page))
        .route("/app/login/{token}", web::post().to(auth::link_sign_in))
        .route("/app/logout", web::post().to(auth::logout))
        .route("/app/team", web::get().to(team::show))
        .route("/app/team", web::post().to(team::invite))
        .route("/app/team/{id}", web::post().to(team::update))
        .route("/app/profile", web::get().to(team::profile))
        .route("/app/profile", web::post().to(team::save_profile))
        .route("/app/followups", web::get().to(inbox::show))
        .route("/app/followups/bulk", web::post().to(inbox::bulk))
        .route("/app/followups/live", web::get().to(inbox::live))
        .route("/app/views", web::post().to(inbox::save_view))
        .route("/app/views/{id}/delete", web::post().to(inbox::delete_view))
        .route("/app/reports", web::get().to(reports::kind_page))
        .route("/app/reports/responses.csv", web::get().to(reports::csv))
        .configure(contacts::configure)
        .configure(settings::configure)
        .configure(surveys::configure)
        // The task page: `{id}` routes only, after the inbox's literal ones.
        .configure(task::configure)
        // A survey's dashboard: GET only, after every literal `/app/surveys/…` route.
        .route("/app/surveys/{id}", web::get().to(reports::survey_page));
}

/// `/app`: the inbox.
async fn home(_: Signed) -> HttpResponse {
    page::see_other("/app/followups")
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(JS)
}

/// The signed-in member of a request (and their CSRF token). Without a live session: a
/// redirect to sign-in (GET) or a 403 page (anything else).
pub struct Signed(pub Session);

impl Signed {
    pub fn member(&self) -> &Member {
        &self.0.member
    }

    pub fn can(&self, role: Role) -> bool {
        self.0.member.role >= role
    }

    /// 403 page unless the member has `role`.
    pub fn require(&self, role: Role) -> Result<(), PageError> {
        if self.can(role) {
            Ok(())
        } else {
            Err(PageError::Forbidden(format!(
                "This needs the {} role; you are {}.",
                role.as_str(),
                self.0.member.role.as_str()
            )))
        }
    }

    /// Checks an unsafe request: the session's CSRF token (form field, else the
    /// `X-CSRF-Token` header) and a same-site `Origin`/`Referer`.
    pub fn check_csrf(&self, req: &HttpRequest, form_token: Option<&str>) -> Result<(), PageError> {
        same_origin(req)?;
        let token = form_token.map(str::to_string).or_else(|| {
            req.headers()
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
        let expected = self.0.csrf_token.as_bytes();
        match token {
            Some(t) if constant_time_eq(t.as_bytes(), expected) => Ok(()),
            _ => Err(PageError::Csrf),
        }
    }

    pub fn csrf(&self) -> &str {
        &self.0.csrf_token
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses a request whose `Origin` (else `Referer`) is not this site: `PUBLIC_URL`, or the
/// scheme and host the request was sent to. Neither header: refused too.
pub fn same_origin(req: &HttpRequest) -> Result<(), PageError> {
    let origin_of = |raw: &str| {
        url::Url::parse(raw)
            .ok()
            .map(|u| u.origin().ascii_serialization())
    };
    let claimed = match req.headers().get(header::ORIGIN) {
        Some(v) => v.to_str().ok().and_then(origin_of),
        None => req
            .headers()
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(origin_of),
    };
    let Some(claimed) = claimed else {
        return Err(PageError::Csrf);
    };
    let mut allowed = Vec::with_capacity(2);
    if let Some(state) = req.app_data::<web::Data<AppState>>() {
        allowed.push(state.settings.public_url.origin().ascii_serialization());
    }
    let info = req.connection_info();
    allowed.push(format!("{}://{}", info.scheme(), info.host()));
    if allowed.contains(&claimed) {
        Ok(())
    } else {
        Err(PageError::Csrf)
    }
}

/// Where to go after sign-in: a path inside `/app`, never another site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/app" || n.starts_with("/app/") || n.starts_with("/app?"))
                && !n.contains("//")
                && !n.contains("/.")
                && !n.contains('\\')
                && !n.chars().any(char::is_control)
                && !n.starts_with("/app/login")
                && n.len() <= 2000 =>
        {
            n.to_string()
        }
        _ => "/app/followups".to_string(),
    }
}

impl FromRequest for Signed {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let cookie = req.cookie(COOKIE).map(|c| c.value().to_string());
        let get = req.method() == actix_web::http::Method::GET
            || req.method() == actix_web::http::Method::HEAD;
        let here = match req.query_string() {
            "" => req.path().to_string(),
            q => format!("{}?{q}", req.path()),
        };
        Box::pin(async move {
            let state = state.ok_or_else(|| {
                PageError::Failure(AppError::internal(anyhow::anyhow!("no state")))
            })?;
            let session = match cookie {
                Some(c) => crate::members::session(&state, &c).await?,
                None => None,
            };
            match session {
                Some(s) => Ok(Signed(s)),
                None if get => Err(PageError::SignIn(here)),
                None => Err(PageError::SessionEnded),
            }
        })
    }
}

/// The session cookie for a new session (`Secure` when `PUBLIC_URL` is https).
pub fn session_cookie(state: &AppState, value: &str) -> Cookie<'static> {
    Cookie::build(COOKIE, value.to_string())
        .path("/app")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.settings.public_url.scheme() == "https")
        .max_age(actix_web::cookie::time::Duration::days(
            state.settings.session_max_days as i64,
        ))
        .finish()
}

/// A cookie that removes the session cookie.
pub fn removal_cookie(state: &AppState) -> Cookie<'static> {
    let mut c = session_cookie(state, "");
    c.make_removal();
    c
}

/// Sign-in attempts: per client address, and per email address.
pub struct SignInLimits {
    ip: crate::web::pages::Limiter,
    email: DefaultKeyedRateLimiter<String>,
}

/// Sign-in requests per minute per client address (bursts of `IP_BURST`).
pub const IP_PER_MINUTE: u32 = 10;
pub const IP_BURST: u32 = 10;
/// Sign-in requests per email address: bursts of `EMAIL_BURST`, then one per
/// `EMAIL_PERIOD_SECONDS`.
pub const EMAIL_BURST: u32 = 5;
pub const EMAIL_PERIOD_SECONDS: u64 = 60;

impl SignInLimits {
    pub fn new(trusted: Vec<ipnet::IpNet>) -> SignInLimits {
        let burst = NonZeroU32::new(EMAIL_BURST).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(Duration::from_secs(EMAIL_PERIOD_SECONDS))
            .map(|q| q.allow_burst(burst))
            .unwrap_or_else(|| Quota::per_minute(burst));
        SignInLimits {
            ip: crate::web::pages::Limiter::new(IP_PER_MINUTE, IP_BURST, trusted),
            email: RateLimiter::keyed(quota),
        }
    }

    /// Counts one attempt; `Err(seconds)` to wait when over either limit.
    pub fn check(&self, req: &HttpRequest, email: &str) -> Result<(), u64> {
        self.ip.check(req)?;
        let key = email.trim().to_lowercase();
        self.email.check_key(&key).map_err(|not_until| {
            use governor::clock::{Clock, DefaultClock};
            not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                .max(1)
        })
    }
}

/// The 429 page with `Retry-After`.
pub fn too_many(wait: u64) -> HttpResponse {
    let mut res = page::message(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        &format!("Please wait {wait} seconds and try again."),
        None,
    );
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.render()
    }
}
