//! `/u/{token}`: unsubscribe. GET explains, POST unsubscribes in one click (also the
//! RFC 8058 `List-Unsubscribe-Post` target: its body is ignored, it answers 200, never a
//! redirect, and repeating it is harmless). The page names the address (masked) and, for
//! `RESUBSCRIBE_DAYS` after unsubscribing, offers to undo it: `POST /u/{token}/resubscribe`.
//! The rules are in `crate::contacts`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{failure, invalid_link, not_found, render, Chrome};
use crate::contacts::{self, Subscription, SubscriptionChange};
use crate::context::AppState;
use crate::error::AppError;
use crate::i18n::{Locale, PageTexts};

#[derive(Template)]
#[template(path = "pages/unsubscribe.html")]
struct UnsubscribePage<'a> {
    lang: &'a str,
    title: &'a str,
    brand: &'a str,
    brand_css: &'a str,
    texts: &'a PageTexts,
    /// `unsubscribe` (the question), `unsubscribed` or `resubscribed`.
    state: &'a str,
    body: &'a str,
    address: Option<&'a str>,
    /// "Changed your mind? You can re-subscribe until …" when it is offered.
    resubscribe_hint: Option<String>,
    action: &'a str,
    resubscribe_action: &'a str,
}

fn page(
    status: StatusCode,
    sub: &Subscription,
    token: &str,
    just_resubscribed: bool,
) -> HttpResponse {
    let chrome = Chrome::for_survey(&sub.survey, "");
    let texts = chrome.texts;
    let locale = Locale::parse(&sub.survey.locale).unwrap_or_default();
    // An unbranded survey says "us" rather than a name the customer never saw.
    let brand = locale.fill("{brand}", sub.survey.brand.as_deref(), None);
    let (state, title, body) = if just_resubscribed {
        (
            "resubscribed",
            texts.resubscribed_title,
            texts.resubscribed_body,
        )
    } else if sub.unsubscribed_at.is_some() {
        (
            "unsubscribed",
            texts.unsubscribed_title,
            texts.unsubscribed_body,
        )
    } else {
        (
            "unsubscribe",
            texts.unsubscribe_title,
            texts.unsubscribe_body,
        )
    };
    let body = body.replace("{brand}", &brand);
    let action = format!("/u/{token}");
    let resubscribe_action = format!("/u/{token}/resubscribe");
    let html = UnsubscribePage {
        lang: chrome.lang,
        title,
        brand: &chrome.brand,
        brand_css: &chrome.brand_css,
        texts,
        state,
        body: &body,
        address: sub.masked_email.as_deref(),
        resubscribe_hint: sub
            .resubscribe_until
            .filter(|_| state == "unsubscribed")
            .map(|until| {
                texts
                    .resubscribe_hint
                    .replace("{date}", &locale.date(until.date()))
            }),
        action: &action,
        resubscribe_action: &resubscribe_action,
    }
    .render();
    render(status, html, &chrome.brand_css)
}

async fn answer(
    req: &HttpRequest,
    state: &AppState,
    token: &str,
    change: SubscriptionChange,
) -> HttpResponse {
    if !crate::domain::is_secret(token) {
        return not_found(req);
    }
    match contacts::by_token(state, token, change).await {
        Ok(Some(sub)) => page(
            StatusCode::OK,
            &sub,
            token,
            change == SubscriptionChange::Resubscribe,
        ),
        Ok(None) => not_found(req),
        Err(AppError::Conflict {
            code: "resubscribe_window_closed",
            ..
        }) => match contacts::by_token(state, token, SubscriptionChange::None).await {
            Ok(Some(sub)) => page(StatusCode::CONFLICT, &sub, token, false),
            Ok(None) => not_found(req),
            Err(e) => failure(req, e),
        },
        Err(AppError::Conflict {
            code: "contact_erased",
            ..
        }) => match contacts::by_token(state, token, SubscriptionChange::None).await {
            Ok(Some(sub)) => invalid_link(&sub.survey),
            Ok(None) => not_found(req),
            Err(e) => failure(req, e),
        },
        Err(e) => failure(req, e),
    }
}

pub async fn show(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> HttpResponse {
    answer(&req, &state, &token, SubscriptionChange::None).await
}

pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> HttpResponse {
    answer(&req, &state, &token, SubscriptionChange::Unsubscribe).await
}

/// POST /u/{token}/resubscribe: undoes the unsubscribe, for `RESUBSCRIBE_DAYS` after it.
pub async fn resubscribe(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> HttpResponse {
    answer(&req, &state, &token, SubscriptionChange::Resubscribe).await
}
