//! `/s/{token}`: the survey page of an invitation.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{
    check_form, failure, gone, not_found, render, see_other, AnswerForm, Chrome, MAX_COMMENT,
};
use crate::answers::{self, Answer, CommentChange};
use crate::context::AppState;
use crate::domain::{now, Score, SurveyKind};
use crate::error::AppError;
use crate::i18n::{Locale, PageTexts};
use crate::store::models::{InvitationRow, ResponseRow, SurveyRow};

pub struct ScaleOption {
    pub value: i32,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "pages/survey.html")]
pub struct SurveyPage<'a> {
    pub lang: &'a str,
    pub title: &'a str,
    pub brand: &'a str,
    pub brand_css: &'a str,
    pub texts: &'a PageTexts,
    pub action: &'a str,
    pub question: &'a str,
    pub follow_up: &'a str,
    pub options: Vec<ScaleOption>,
    pub low: &'a str,
    pub high: &'a str,
    pub low_value: i32,
    pub high_value: i32,
    pub comment: &'a str,
    pub max_comment: usize,
    pub errors: Vec<String>,
    pub score_error: bool,
    pub comment_error: bool,
    pub submission_id: Option<&'a str>,
    pub honeypot: bool,
}

#[derive(Template)]
#[template(path = "pages/thanks.html")]
pub struct ThanksPage<'a> {
    pub lang: &'a str,
    pub title: &'a str,
    pub brand: &'a str,
    pub brand_css: &'a str,
    pub texts: &'a PageTexts,
    pub saved: bool,
    pub score: i32,
    pub comment: &'a str,
    pub editable: bool,
    pub action: &'a str,
    pub change_url: &'a str,
    pub max_comment: usize,
    pub submission_id: Option<&'a str>,
}

/// What the survey page of one survey shows, whatever link led to it.
pub struct FormState<'a> {
    pub action: &'a str,
    pub selected: Option<i64>,
    pub comment: &'a str,
    pub errors: Vec<String>,
    pub score_error: bool,
    pub comment_error: bool,
    pub submission_id: Option<&'a str>,
    pub honeypot: bool,
}

pub fn survey_page(status: StatusCode, survey: &SurveyRow, state: FormState<'_>) -> HttpResponse {
    let kind = SurveyKind::parse(&survey.kind).unwrap_or(SurveyKind::Nps);
    let locale = Locale::parse(&survey.locale).unwrap_or_default();
    let template = survey
        .question
        .as_deref()
        .unwrap_or_else(|| locale.default_question(kind));
    let question = locale.fill(template, survey.brand.as_deref(), survey.topic.as_deref());
    let follow_up = survey
        .follow_up_question
        .as_deref()
        .map(|q| locale.fill(q, survey.brand.as_deref(), survey.topic.as_deref()))
        .unwrap_or_else(|| locale.default_follow_up().to_string());
    let chrome = Chrome::for_survey(survey, &question);
    let email = locale.email();
    let (low, high) = match kind {
        SurveyKind::Nps => (email.nps_low, email.nps_high),
        SurveyKind::Csat => (email.csat_low, email.csat_high),
    };
    let (lo, hi) = kind.range();
    let page = SurveyPage {
        lang: chrome.lang,
        title: &chrome.title,
        brand: &chrome.brand,
        brand_css: &chrome.brand_css,
        texts: chrome.texts,
        action: state.action,
        question: &question,
        follow_up: &follow_up,
        options: (lo..=hi)
            .map(|value| ScaleOption {
                value,
                checked: state.selected == Some(value as i64),
            })
            .collect(),
        low,
        high,
        low_value: lo,
        high_value: hi,
        comment: state.comment,
        max_comment: MAX_COMMENT,
        errors: state.errors,
        score_error: state.score_error,
        comment_error: state.comment_error,
        submission_id: state.submission_id,
        honeypot: state.honeypot,
    };
    render(status, page.render(), &chrome.brand_css)
}

/// A valid score and comment from a posted form, or the 422 page that says what to fix
/// and keeps what was typed.
pub fn checked_answer(
    survey: &SurveyRow,
    form: &AnswerForm,
    action: &str,
    submission_id: Option<&str>,
    honeypot: bool,
) -> Result<(Score, Option<String>), Box<HttpResponse>> {
    let kind = SurveyKind::parse(&survey.kind).unwrap_or(SurveyKind::Nps);
    let locale = Locale::parse(&survey.locale).unwrap_or_default();
    let checked = check_form(form, kind, locale.page());
    let score = match (checked.score, checked.comment_error) {
        (Some(s), false) => Score::parse(kind, s).ok(),
        _ => None,
    };
    match score {
        Some(score) => Ok((score, checked.comment)),
        None => {
            let typed = form.comment.clone().unwrap_or_default();
            Err(Box::new(survey_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                survey,
                FormState {
                    action,
                    selected: checked.score,
                    comment: &typed,
                    errors: checked.errors,
                    score_error: checked.score_error,
                    comment_error: checked.comment_error,
                    submission_id,
                    honeypot,
                },
            )))
        }
    }
}

pub fn thanks_page(
    survey: &SurveyRow,
    response: &ResponseRow,
    action: &str,
    change_url: &str,
    submission_id: Option<&str>,
) -> HttpResponse {
    let chrome = Chrome::for_survey(survey, survey.brand.as_deref().unwrap_or("Closeloop"));
    let title = chrome.texts.thanks_title;
    let page = ThanksPage {
        lang: chrome.lang,
        title,
        brand: &chrome.brand,
        brand_css: &chrome.brand_css,
        texts: chrome.texts,
        saved: false,
        score: response.score,
        comment: response.comment.as_deref().unwrap_or(""),
        editable: now() <= crate::answers::editable_until(survey, response),
        action,
        change_url,
        max_comment: MAX_COMMENT,
        submission_id,
    };
    render(StatusCode::OK, page.render(), &chrome.brand_css)
}

pub fn edit_closed(survey: &SurveyRow) -> HttpResponse {
    let chrome = Chrome::for_survey(survey, "");
    super::message(
        StatusCode::CONFLICT,
        &chrome,
        chrome.texts.closed_title,
        chrome.texts.closed_body,
    )
}

/// An invitation with its survey and current response, or the page to show instead.
struct Loaded {
    invitation: InvitationRow,
    survey: SurveyRow,
    response: Option<ResponseRow>,
}

/// The invitation of `token` with its survey (one query), and its current response when
/// the page shows it (`with_response`; a POST does not need it: recording reads it again in
/// its transaction).
async fn load(
    state: &AppState,
    req: &HttpRequest,
    token: String,
    with_response: bool,
) -> Result<Loaded, HttpResponse> {
    // Tokens are 43 URL-safe characters; anything else cannot exist.
    if !crate::domain::is_secret(&token) {
        return Err(not_found(req));
    }
    let found = state
        .db
        .run(move |conn| {
            let Some((invitation, survey)) =
                crate::store::invitations::with_survey_by_token(conn, &token)?
            else {
                return Ok(None);
            };
            let response = if with_response {
                crate::store::responses::for_invitation(conn, &invitation.id)?
            } else {
                None
            };
            Ok(Some(Loaded {
                invitation,
                survey,
                response,
            }))
        })
        .await;
    match found {
        Ok(Some(l))
            if l.survey.status == "archived"
                || matches!(l.invitation.status.as_str(), "cancelled" | "expired") =>
        {
            Err(gone(&l.survey))
        }
        Ok(Some(l)) => Ok(l),
        Ok(None) => Err(not_found(req)),
        Err(e) => Err(failure(req, e)),
    }
}

#[derive(Debug, Deserialize)]
pub struct Preselect {
    score: Option<String>,
}

/// GET /s/{token}?score=N: the form, with N (from the email's buttons) or the recorded
/// answer preselected. Records nothing.
pub async fn show(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Path<String>,
    query: web::Query<Preselect>,
) -> HttpResponse {
    let token = token.into_inner();
    let l = match load(&state, &req, token.clone(), true).await {
        Ok(l) => l,
        Err(page) => return page,
    };
    let preselect = query.score.as_deref().and_then(|s| s.parse::<i64>().ok());
    let selected = preselect.or(l.response.as_ref().map(|r| r.score as i64));
    let comment = l
        .response
        .as_ref()
        .and_then(|r| r.comment.clone())
        .unwrap_or_default();
    let action = format!("/s/{token}");
    survey_page(
        StatusCode::OK,
        &l.survey,
        FormState {
            action: &action,
            selected,
            comment: &comment,
            errors: Vec::new(),
            score_error: false,
            comment_error: false,
            submission_id: None,
            honeypot: false,
        },
    )
}

/// POST /s/{token}: records (or updates) the answer, then redirects to the thank-you page.
pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Path<String>,
    form: web::Form<AnswerForm>,
) -> HttpResponse {
    let token = token.into_inner();
    let l = match load(&state, &req, token.clone(), false).await {
        Ok(l) => l,
        Err(page) => return page,
    };
    let locale = Locale::parse(&l.survey.locale).unwrap_or_default();
    let action = format!("/s/{token}");
    let (score, comment) = match checked_answer(&l.survey, &form, &action, None, false) {
        Ok(v) => v,
        Err(page) => return *page,
    };
    let answer = Answer {
        channel: l.invitation.channel.clone(),
        survey: l.survey.clone(),
        invitation: Some(l.invitation),
        score,
        comment: CommentChange::Set(comment),
        locale: Some(locale.as_str().into()),
        submission_id: None,
        contact: None,
    };
    match answers::record(&state, answer).await {
        Ok(_) => see_other(&format!("/s/{token}/thanks")),
        Err(AppError::Conflict {
            code: "edit_window_closed",
            ..
        }) => edit_closed(&l.survey),
        Err(e) => failure(&req, e),
    }
}

/// GET /s/{token}/thanks: the recorded answer, with a form to add or change the comment.
pub async fn thanks(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> HttpResponse {
    let token = token.into_inner();
    let l = match load(&state, &req, token.clone(), true).await {
        Ok(l) => l,
        Err(page) => return page,
    };
    let Some(response) = l.response else {
        return see_other(&format!("/s/{token}"));
    };
    let action = format!("/s/{token}");
    thanks_page(&l.survey, &response, &action, &action, None)
}
