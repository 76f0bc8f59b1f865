//! What every workspace page shares: the layout around it, the security headers, the message
//! page and the errors a handler can end with.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use askama::Template;

use crate::error::AppError;

/// The Content-Security-Policy of every workspace page: our own script and stylesheet only;
/// frames from this site only (the survey editor's sandboxed previews).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the layout shows around a page: its title, and for a signed-in member the navigation.
pub struct Layout {
    pub title: String,
    pub nav: Option<Nav>,
}

/// The top bar of a signed-in member.
pub struct Nav {
    pub name: String,
    pub is_admin: bool,
    pub csrf: String,
    /// `inbox`, `contacts`, `team`, `settings` or `profile`: the current section.
    pub section: &'static str,
}

impl Layout {
    /// A page outside any session (sign-in, errors).
    pub fn bare(title: &str) -> Layout {
        Layout {
            title: title.to_string(),
            nav: None,
        }
    }

    /// A page of a signed-in member.
    pub fn signed(title: &str, signed: &super::Signed, section: &'static str) -> Layout {
        Layout {
            title: title.to_string(),
            nav: Some(Nav {
                name: signed.member().name.clone(),
                is_admin: signed.can(crate::domain::Role::Admin),
                csrf: signed.csrf().to_string(),
                section,
            }),
        }
    }
}

/// A rendered page with the workspace's security headers.
pub fn html(status: StatusCode, rendered: Result<String, askama::Error>) -> HttpResponse {
    let body = match rendered {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            return HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("Something went wrong. Please try again later.");
        }
    };
    let mut res = HttpResponse::build(status);
    res.insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "same-origin"));
    res.content_type("text/html; charset=utf-8").body(body)
}

/// 303 to `location`.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

#[derive(Template)]
#[template(path = "app/message.html")]
struct MessagePage<'a> {
    l: Layout,
    heading: &'a str,
    body: &'a str,
    link: Option<(&'a str, &'a str)>,
}

/// A page with a heading, a paragraph and optionally one link (`(href, text)`).
pub fn message(
    status: StatusCode,
    heading: &str,
    body: &str,
    link: Option<(&str, &str)>,
) -> HttpResponse {
    html(
        status,
        MessagePage {
            l: Layout::bare(heading),
            heading,
            body,
            link,
        }
        .render(),
    )
}

/// How a workspace request can fail, each with its page.
#[derive(Debug)]
pub enum PageError {
    /// No session on a GET: sign in, then come back here.
    SignIn(String),
    /// No (more) session on a POST.
    SessionEnded,
    /// A missing or wrong CSRF token, or a foreign `Origin`.
    Csrf,
    Forbidden(String),
    NotFound(&'static str),
    BadRequest(String),
    /// A well-formed request whose parameters cannot be used (e.g. a dashboard's period):
    /// 422 with a page that says which and how to fix it.
    Unprocessable(String),
    Conflict(String),
    TooMany(u64),
    Failure(AppError),
}

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NotFound(what) => PageError::NotFound(what),
            AppError::Forbidden(m) => PageError::Forbidden(m),
            AppError::Conflict { message, .. } => PageError::Conflict(message),
            AppError::BadRequest(m) => PageError::BadRequest(m),
            AppError::Validation { fields, .. } => PageError::BadRequest(
                fields
                    .iter()
                    .map(|(k, v)| format!("{k} {}", v.join("; ")))
                    .collect::<Vec<_>>()
                    .join(". "),
            ),
            AppError::TooManyRequests => PageError::TooMany(5),
            other => PageError::Failure(other),
        }
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl PageError {
    pub fn status(&self) -> StatusCode {
        match self {
            PageError::SignIn(_) => StatusCode::SEE_OTHER,
            PageError::SessionEnded | PageError::Csrf | PageError::Forbidden(_) => {
                StatusCode::FORBIDDEN
            }
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            PageError::Conflict(_) => StatusCode::CONFLICT,
            PageError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            PageError::Failure(AppError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            PageError::Failure(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn render(&self) -> HttpResponse {
        let status = self.status();
        match self {
            PageError::SignIn(next) => {
                let to: String = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", &super::safe_next(Some(next)))
                    .finish();
                see_other(&format!("/app/login?{to}"))
            }
            PageError::SessionEnded => message(
                status,
                "Your session has ended",
                "Nothing was changed. Sign in again, then repeat what you were doing.",
                Some(("/app/login", "Sign in")),
            ),
            PageError::Csrf => message(
                status,
                "This form has expired",
                "Nothing was changed: the request did not come from a page of this workspace, or the page is too old. Reload the page and try again.",
                Some(("/app/followups", "Back to the inbox")),
            ),
            PageError::Forbidden(m) => message(
                status,
                "Not allowed",
                m,
                Some(("/app/followups", "Back to the inbox")),
            ),
            PageError::NotFound(what) => message(
                status,
                "Not found",
                &format!("There is no such {what}. It may have been removed, or the link was copied incompletely."),
                Some(("/app/followups", "Back to the inbox")),
            ),
            PageError::BadRequest(m) => message(
                status,
                "That did not work",
                m,
                Some(("/app/followups", "Back to the inbox")),
            ),
            PageError::Unprocessable(m) => message(
                status,
                "Check the address",
                m,
                Some(("/app/reports", "Back to reports")),
            ),
            PageError::Conflict(m) => message(
                status,
                "That did not work",
                m,
                Some(("/app/followups", "Back to the inbox")),
            ),
            PageError::TooMany(wait) => super::too_many(*wait),
            PageError::Failure(e) => {
                let unavailable = matches!(e, AppError::Unavailable(_));
                if unavailable {
                    tracing::warn!(error = %e, "workspace page failed: storage unavailable");
                } else {
                    tracing::error!(error = ?e, "workspace page failed");
                }
                let mut res = message(
                    status,
                    if unavailable {
                        "Temporarily unavailable"
                    } else {
                        "Something went wrong"
                    },
                    "Nothing was changed. Please try again in a moment.",
                    None,
                );
                if unavailable {
                    res.headers_mut().insert(
                        header::RETRY_AFTER,
                        HeaderValue::from_static(crate::web::pages::RETRY_AFTER_SECONDS),
                    );
                }
                res
            }
        }
    }
}
