//! Customer-facing HTML pages: the survey page of an invitation (`/s/{token}`), the public
//! link (`/l/{slug}`) and unsubscribe (`/u/{token}`).
//!
//! Rules: GET never writes (mail scanners open every link); answers are recorded by POST and
//! followed by a redirect to a thank-you page (so a reload does not post again). Pages work
//! without JavaScript, carry a strict Content-Security-Policy (no script at all; the one
//! inline style block is allowed by its hash), `Cache-Control: no-store` and no referrer.
//! Texts follow the survey's locale; pages without a survey (404) follow Accept-Language.

mod public;
mod rate_limit;
pub mod survey;
mod unsubscribe;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::email::message::{on_white, text_on, DEFAULT_COLOR};
use crate::i18n::{Locale, PageTexts};
use crate::store::models::SurveyRow;

pub use rate_limit::{client_ip, Limiter};

/// The colour of pages that belong to no survey: a plain grey bar, no brand.
pub const NEUTRAL_COLOR: &str = "#d0d7de";

/// Longest comment a customer may leave, in characters.
pub const MAX_COMMENT: usize = 2000;

const CSS: &str = include_str!("closeloop.css");

/// Registers the customer pages (not part of the JSON API or its OpenAPI document).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/", web::head().to(home))
        .route("/assets/closeloop.css", web::get().to(css))
        .route("/s/{token}", web::get().to(survey::show))
        .route("/s/{token}", web::head().to(survey::show))
        .route("/s/{token}", web::post().to(survey::submit))
        .route("/s/{token}/thanks", web::get().to(survey::thanks))
        .route("/u/{token}", web::get().to(unsubscribe::show))
        .route("/u/{token}", web::head().to(unsubscribe::show))
        .route("/u/{token}", web::post().to(unsubscribe::submit))
        .route(
            "/u/{token}/resubscribe",
            web::post().to(unsubscribe::resubscribe),
        )
        .route("/l/{slug}", web::get().to(public::show))
        .route("/l/{slug}", web::head().to(public::show))
        .route("/l/{slug}", web::post().to(public::submit))
        .route("/l/{slug}/r/{submission}", web::get().to(public::thanks));
}

#[derive(Template)]
#[template(path = "pages/home.html")]
struct HomePage<'a> {
    lang: &'a str,
    title: &'a str,
    brand: &'a str,
    brand_css: &'a str,
}

/// `GET /`: a small landing page for whoever runs the service, pointing at the API docs.
async fn home() -> HttpResponse {
    let chrome = Chrome::new(Locale::En, "Closeloop".into(), None, "Closeloop");
    let page = HomePage {
        lang: chrome.lang,
        title: "Closeloop",
        brand: &chrome.brand,
        brand_css: &chrome.brand_css,
    };
    render(StatusCode::OK, page.render(), &chrome.brand_css)
}

async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(CSS)
}

/// What every page shows around its content.
pub struct Chrome {
    pub lang: &'static str,
    pub title: String,
    pub brand: String,
    pub brand_css: String,
    pub texts: &'static PageTexts,
    pub locale: Locale,
}

impl Chrome {
    pub fn for_survey(survey: &SurveyRow, title: &str) -> Chrome {
        let locale = Locale::parse(&survey.locale).unwrap_or_default();
        // No brand: no name in the header (never ours: the customer never heard of it).
        let brand = survey.brand.clone().unwrap_or_default();
        Chrome::new(locale, brand, survey.brand_color.as_deref(), title)
    }

    pub fn new(locale: Locale, brand: String, color: Option<&str>, title: &str) -> Chrome {
        let color = color.unwrap_or(DEFAULT_COLOR);
        Chrome {
            lang: locale.as_str(),
            title: title.to_string(),
            brand,
            brand_css: format!(
                ":root{{--brand:{color};--on-brand:{};--brand-ink:{}}}",
                text_on(color),
                on_white(color)
            ),
            texts: locale.page(),
            locale,
        }
    }

    /// For pages without a survey: the visitor's language, no brand name.
    pub fn neutral(req: &HttpRequest, title_of: impl Fn(&PageTexts) -> &'static str) -> Chrome {
        let locale = Locale::from_accept_language(
            req.headers()
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
        )
        .unwrap_or_default();
        Chrome::new(
            locale,
            String::new(),
            Some(NEUTRAL_COLOR),
            title_of(locale.page()),
        )
    }
}

#[derive(Template)]
#[template(path = "pages/message.html")]
struct MessagePage<'a> {
    lang: &'a str,
    title: &'a str,
    brand: &'a str,
    brand_css: &'a str,
    heading: &'a str,
    body: &'a str,
}

/// A page with a heading and one paragraph (not found, gone, closed, too many requests).
pub fn message(status: StatusCode, chrome: &Chrome, heading: &str, body: &str) -> HttpResponse {
    let page = MessagePage {
        lang: chrome.lang,
        title: heading,
        brand: &chrome.brand,
        brand_css: &chrome.brand_css,
        heading,
        body,
    };
    render(status, page.render(), &chrome.brand_css)
}

pub fn not_found(req: &HttpRequest) -> HttpResponse {
    let chrome = Chrome::neutral(req, |t| t.not_found_title);
    message(
        StatusCode::NOT_FOUND,
        &chrome,
        chrome.texts.not_found_title,
        chrome.texts.not_found_body,
    )
}

/// The 429 page: in the survey's colours and language when the survey is known, else neutral.
pub fn too_many_requests(req: &HttpRequest, survey: Option<&SurveyRow>) -> HttpResponse {
    let chrome = match survey {
        Some(s) => Chrome::for_survey(s, ""),
        None => Chrome::neutral(req, |t| t.too_many_title),
    };
    message(
        StatusCode::TOO_MANY_REQUESTS,
        &chrome,
        chrome.texts.too_many_title,
        chrome.texts.too_many_body,
    )
}

/// 410 for a link that was valid once but no longer is (its contact was erased).
pub fn invalid_link(survey: &SurveyRow) -> HttpResponse {
    let chrome = Chrome::for_survey(survey, "");
    message(
        StatusCode::GONE,
        &chrome,
        chrome.texts.invalid_title,
        chrome.texts.invalid_body,
    )
}

pub fn gone(survey: &SurveyRow) -> HttpResponse {
    let chrome = Chrome::for_survey(survey, "");
    message(
        StatusCode::GONE,
        &chrome,
        chrome.texts.gone_title,
        chrome.texts.gone_body,
    )
}

/// The 404 page for unknown URLs outside the API, with the same security headers as every
/// other page.
pub fn unknown_url() -> HttpResponse {
    let chrome = Chrome::new(
        Locale::En,
        String::new(),
        Some(NEUTRAL_COLOR),
        "Page not found",
    );
    message(
        StatusCode::NOT_FOUND,
        &chrome,
        "Page not found",
        "This link does not lead anywhere. If it came from an email, it may have been copied incompletely.",
    )
}

/// A 400 page: the request cannot be understood (e.g. a NUL character in the URL).
pub fn bad_request(req: &HttpRequest, detail: &str) -> HttpResponse {
    let chrome = Chrome::neutral(req, |_| "Bad request");
    message(StatusCode::BAD_REQUEST, &chrome, "Bad request", detail)
}

/// An HTML answer with the page security headers. `inline_css` is the one `<style>` block
/// of the page, allowed by its hash.
pub fn render(
    status: StatusCode,
    html: Result<String, askama::Error>,
    inline_css: &str,
) -> HttpResponse {
    let html = match html {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            return HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("Something went wrong. Please try again later.");
        }
    };
    let mut res = HttpResponse::build(status);
    for (name, value) in security_headers(inline_css) {
        res.insert_header((name, value));
    }
    res.content_type("text/html; charset=utf-8").body(html)
}

pub fn security_headers(inline_css: &str) -> Vec<(header::HeaderName, HeaderValue)> {
    let hash =
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(inline_css.as_bytes()));
    let csp = format!(
        "default-src 'none'; style-src 'self' 'sha256-{hash}'; img-src 'self' data:; form-action 'self'; \
frame-ancestors 'none'; base-uri 'none'"
    );
    vec![
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static("default-src 'none'")),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ]
}

/// 303 to `location` (after a successful POST).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// Seconds a client is asked to wait after a 503.
pub const RETRY_AFTER_SECONDS: &str = "5";

/// A 503 page (with `Retry-After`) when the database is unavailable, else a generic 500
/// page. After a POST it says plainly that nothing was saved and to send again.
pub fn failure(req: &HttpRequest, e: crate::error::AppError) -> HttpResponse {
    let unavailable = matches!(e, crate::error::AppError::Unavailable(_));
    if unavailable {
        tracing::warn!(error = %e, "page failed: storage unavailable");
    } else {
        tracing::error!(error = ?e, "page failed");
    }
    let chrome = Chrome::neutral(req, |t| t.unavailable_title);
    let texts = chrome.texts;
    if unavailable {
        let body = if req.method() == actix_web::http::Method::POST {
            texts.not_saved_body
        } else {
            texts.unavailable_body
        };
        let mut res = message(
            StatusCode::SERVICE_UNAVAILABLE,
            &chrome,
            texts.unavailable_title,
            body,
        );
        res.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
        res
    } else {
        message(
            StatusCode::INTERNAL_SERVER_ERROR,
            &chrome,
            "Something went wrong",
            "Please try again later.",
        )
    }
}

/// The fields a survey form posts.
#[derive(Debug, Default, serde::Deserialize)]
pub struct AnswerForm {
    pub score: Option<String>,
    pub comment: Option<String>,
    pub submission_id: Option<String>,
    /// Honeypot: people never see it, bots fill it.
    pub website: Option<String>,
}

/// A checked form: the score (if valid) and the comment, or what to fix.
pub struct CheckedForm {
    pub score: Option<i64>,
    pub comment: Option<String>,
    pub score_error: bool,
    pub comment_error: bool,
    pub errors: Vec<String>,
}

pub fn check_form(
    form: &AnswerForm,
    kind: crate::domain::SurveyKind,
    texts: &PageTexts,
) -> CheckedForm {
    let (lo, hi) = kind.range();
    let score = form
        .score
        .as_deref()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|s| (lo as i64..=hi as i64).contains(s));
    let comment = form
        .comment
        .as_deref()
        .map(|c| c.replace("\r\n", "\n").trim().to_string())
        .filter(|c| !c.is_empty());
    let too_long = comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_COMMENT);
    // NUL cannot be stored by PostgreSQL; both engines refuse it alike.
    let nul = comment.as_ref().is_some_and(|c| c.contains('\0'));
    let comment_error = too_long || nul;
    let mut errors = Vec::new();
    if score.is_none() {
        errors.push(texts.choose_score.to_string());
    }
    if too_long {
        errors.push(
            texts
                .comment_too_long
                .replace("{max}", &MAX_COMMENT.to_string()),
        );
    }
    if nul {
        errors.push(texts.comment_invalid.to_string());
    }
    CheckedForm {
        score_error: score.is_none(),
        score,
        comment,
        comment_error,
        errors,
    }
}

/// Form bodies are small; anything else is refused with a page, not a stack trace.
pub fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(64 * 1024)
        .error_handler(|err, req| {
            let chrome = Chrome::neutral(req, |t| t.error_title);
            let unreadable = "The form could not be read. Please go back and try again.";
            let (status, body) = match &err {
                actix_web::error::UrlencodedError::Overflow { .. } => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The form is too large. Please shorten your comment.",
                ),
                actix_web::error::UrlencodedError::ContentType => {
                    (StatusCode::UNSUPPORTED_MEDIA_TYPE, unreadable)
                }
                _ => (StatusCode::BAD_REQUEST, unreadable),
            };
            let res = message(status, &chrome, "The form could not be read", body);
            actix_web::error::InternalError::from_response(err, res).into()
        })
}
