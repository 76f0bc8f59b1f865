//! `/u/{token}`: unsubscribe. GET explains, POST unsubscribes in one click (also the
//! RFC 8058 `List-Unsubscribe-Post` target: its body is ignored, it answers 200, never a
//! redirect, and repeating it is harmless).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{failure, not_found, render, Chrome};
use crate::context::AppState;
use crate::i18n::PageTexts;
use crate::store::models::SurveyRow;

#[derive(Template)]
#[template(path = "pages/unsubscribe.html")]
struct UnsubscribePage<'a> {
    lang: &'a str,
    title: &'a str,
    brand: &'a str,
    brand_css: &'a str,
    texts: &'a PageTexts,
    done: bool,
    body: &'a str,
    action: &'a str,
}

async fn survey_of(
    state: &AppState,
    req: &HttpRequest,
    token: &str,
    unsubscribe: bool,
) -> Result<SurveyRow, HttpResponse> {
    if !crate::domain::is_secret(token) {
        return Err(not_found(req));
    }
    let token = token.to_string();
    let found = state
        .db
        .write(move |conn| {
            let Some(invitation) = crate::store::invitations::find_by_token(conn, &token)? else {
                return Ok(None);
            };
            if unsubscribe {
                crate::store::contacts::unsubscribe(conn, &invitation.contact_id)?;
            }
            Ok(Some(crate::store::surveys::get(
                conn,
                &invitation.survey_id,
            )?))
        })
        .await;
    match found {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(not_found(req)),
        Err(e) => Err(failure(req, e)),
    }
}

fn page(survey: &SurveyRow, token: &str, done: bool) -> HttpResponse {
    let chrome = Chrome::for_survey(survey, "");
    let texts = chrome.texts;
    let body = if done {
        texts.unsubscribed_body.replace("{brand}", &chrome.brand)
    } else {
        texts.unsubscribe_body.replace("{brand}", &chrome.brand)
    };
    let action = format!("/u/{token}");
    let html = UnsubscribePage {
        lang: chrome.lang,
        title: if done {
            texts.unsubscribed_title
        } else {
            texts.unsubscribe_title
        },
        brand: &chrome.brand,
        brand_css: &chrome.brand_css,
        texts,
        done,
        body: &body,
        action: &action,
    }
    .render();
    render(StatusCode::OK, html, &chrome.brand_css)
}

pub async fn show(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> HttpResponse {
    match survey_of(&state, &req, &token, false).await {
        Ok(survey) => page(&survey, &token, false),
        Err(p) => p,
    }
}

pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> HttpResponse {
    match survey_of(&state, &req, &token, true).await {
        Ok(survey) => page(&survey, &token, true),
        Err(p) => p,
    }
}
