//! `/s/{token}`: the survey page of an invitation.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{
    check_form, failure, gone, invalid_link, not_found, render, see_other, AnswerForm, Chrome,
    MAX_COMMENT,
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
    /// The score the link chose, not sent yet.
    pub preselected: bool,
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
    /// A score chosen by the link (the email's buttons) and not sent yet: shown near the
    /// top, with Send right under the scale.
    pub pending: Option<i32>,
    /// "You answered 3 on …. You can change your answer until …." when changing an answer.
    pub previous: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/answered.html")]
pub struct AnsweredPage<'a> {
    pub lang: &'a str,
    pub title: &'a str,
    pub brand: &'a str,
    pub brand_css: &'a str,
    pub texts: &'a PageTexts,
    pub answered: &'a str,
    pub comment: Option<&'a str>,
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
    pub comment_saved: bool,
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
    /// The score the link asked for (`?score=N`), if any.
    pub preselect: Option<i64>,
    /// The answer recorded earlier, when the customer comes back to change it.
    pub recorded: Option<&'a ResponseRow>,
}

/// "You answered N on DATE." (and until when it can change, when it still can).
fn answered_sentence(locale: Locale, survey: &SurveyRow, r: &ResponseRow) -> String {
    let texts = locale.page();
    let mut s = texts
        .answered_on
        .replace("{score}", &r.score.to_string())
        .replace("{date}", &locale.datetime(r.updated_at));
    let until = crate::answers::editable_until(survey, r);
    if now() <= until {
        s.push(' ');
        s.push_str(
            &texts
                .change_until
                .replace("{date}", &locale.datetime(until)),
        );
    }
    s
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
    let recorded_score = state.recorded.map(|r| r.score as i64);
    let pending = state
        .preselect
        .filter(|p| (lo as i64..=hi as i64).contains(p) && Some(*p) != recorded_score)
        .map(|p| p as i32);
    let selected = state.selected.or(pending.map(i64::from)).or(recorded_score);
    let previous = state.recorded.map(|r| answered_sentence(locale, survey, r));
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
                checked: selected == Some(value as i64),
                preselected: pending == Some(value),
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
        pending,
        previous,
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
            // A NUL would not show; mark where it was so it can be removed.
            let typed = form
                .comment
                .clone()
                .unwrap_or_default()
                .replace('\0', "\u{FFFD}");
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
                    preselect: None,
                    recorded: None,
                },
            )))
        }
    }
}

/// The form again, as it was sent, when the answer could not be stored because the database
/// is briefly unavailable (503 with `Retry-After`): it says plainly that the answer was NOT
/// saved and to press Send again. Any other failure is the generic error page.
pub fn not_saved(
    req: &HttpRequest,
    e: AppError,
    survey: &SurveyRow,
    sent: (Score, Option<&str>),
    action: &str,
    submission_id: Option<&str>,
    honeypot: bool,
) -> HttpResponse {
    if !matches!(e, AppError::Unavailable(_)) {
        return failure(req, e);
    }
    tracing::warn!(error = %e, "answer not stored: storage unavailable");
    let locale = Locale::parse(&survey.locale).unwrap_or_default();
    let mut res = survey_page(
        StatusCode::SERVICE_UNAVAILABLE,
        survey,
        FormState {
            action,
            selected: Some(sent.0.value() as i64),
            comment: sent.1.unwrap_or(""),
            errors: vec![locale.page().not_saved_form.to_string()],
            score_error: false,
            comment_error: false,
            submission_id,
            honeypot,
            preselect: None,
            recorded: None,
        },
    );
    res.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        actix_web::http::header::HeaderValue::from_static(super::RETRY_AFTER_SECONDS),
    );
    res
}

pub fn thanks_page(
    survey: &SurveyRow,
    response: &ResponseRow,
    action: &str,
    change_url: &str,
    submission_id: Option<&str>,
) -> HttpResponse {
    let chrome = Chrome::for_survey(survey, "");
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
        editable: !closed(survey, response),
        action,
        change_url,
        max_comment: MAX_COMMENT,
        submission_id,
        comment_saved: response.comment.is_some(),
    };
    render(StatusCode::OK, page.render(), &chrome.brand_css)
}

/// The recorded answer once it can no longer change: what and when, without a form.
pub fn answered_page(survey: &SurveyRow, response: &ResponseRow) -> HttpResponse {
    let chrome = Chrome::for_survey(survey, "");
    let answered = answered_sentence(chrome.locale, survey, response);
    let page = AnsweredPage {
        lang: chrome.lang,
        title: chrome.texts.your_answer,
        brand: &chrome.brand,
        brand_css: &chrome.brand_css,
        texts: chrome.texts,
        answered: &answered,
        comment: response.comment.as_deref(),
    };
    render(StatusCode::OK, page.render(), &chrome.brand_css)
}

/// Whether the edit window of a recorded answer is over.
pub fn closed(survey: &SurveyRow, response: &ResponseRow) -> bool {
    now() > crate::answers::editable_until(survey, response)
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
            let Some((invitation, survey, erased_at)) =
                crate::store::invitations::with_survey_by_token(conn, &token)?
            else {
                return Ok(None);
            };
            if erased_at.is_some() {
                return Ok(Some(Err(survey)));
            }
            let response = if with_response {
                crate::store::responses::for_invitation(conn, &invitation.id)?
            } else {
                None
            };
            Ok(Some(Ok(Loaded {
                invitation,
                survey,
                response,
            })))
        })
        .await;
    match found {
        // Every link of an erased contact is dead, whatever its state.
        Ok(Some(Err(survey))) => Err(invalid_link(&survey)),
        Ok(Some(Ok(l)))
            if l.survey.status == "archived"
                || matches!(l.invitation.status.as_str(), "cancelled" | "expired") =>
        {
            Err(gone(&l.survey))
        }
        Ok(Some(Ok(l))) => Ok(l),
        Ok(None) => Err(not_found(req)),
        Err(e) => Err(failure(req, e)),
    }
}

#[derive(Debug, Deserialize)]
pub struct Preselect {
    score: Option<String>,
}

/// GET /s/{token}?score=N: the form, with N (from the email's buttons) or the recorded
/// answer preselected; once the edit window is over, the recorded answer without a form.
/// Records no answer; the first GET notes on the invitation that the page was opened.
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
    if req.method() == actix_web::http::Method::GET && l.invitation.opened_at.is_none() {
        let id = l.invitation.id.clone();
        let noted = state
            .db
            // With the answers of the moment (group commit): one write transaction for many.
            .write_grouped(id.clone(), move |conn, _| {
                crate::store::invitations::mark_opened(conn, &id, now())
            })
            .await;
        if let Err(e) = noted {
            // The page matters more than the note.
            tracing::warn!(error = %e, invitation = %l.invitation.id, "cannot note that the page was opened");
        }
    }
    if let Some(r) = l.response.as_ref().filter(|r| closed(&l.survey, r)) {
        return answered_page(&l.survey, r);
    }
    let preselect = query
        .score
        .as_deref()
        .and_then(|s| s.trim().parse::<i64>().ok());
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
            selected: None,
            comment: &comment,
            errors: Vec::new(),
            score_error: false,
            comment_error: false,
            submission_id: None,
            honeypot: false,
            preselect,
            recorded: l.response.as_ref(),
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
        comment: CommentChange::Set(comment.clone()),
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
        Err(AppError::Conflict {
            code: "contact_erased",
            ..
        }) => invalid_link(&l.survey),
        Err(e) => not_saved(
            &req,
            e,
            &l.survey,
            (score, comment.as_deref()),
            &action,
            None,
            false,
        ),
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
