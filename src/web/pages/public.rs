//! `/l/{slug}`: the anonymous public link of a survey. Rate-limited per client, with a
//! honeypot field. Each form carries a one-time `submission_id`, so a double submit updates
//! one response; the thank-you page is addressed by that id.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};

use super::survey::{
    answered_page, checked_answer, closed, edit_closed, survey_page, thanks_page, FormState,
};
use super::{failure, gone, not_found, see_other, AnswerForm};
use crate::answers::{Answer, CommentChange};
use crate::context::AppState;
use crate::domain::is_secret;
use crate::domain::new_secret;
use crate::error::AppError;
use crate::i18n::Locale;
use crate::store::models::SurveyRow;

async fn load(
    state: &AppState,
    req: &HttpRequest,
    slug: String,
) -> Result<SurveyRow, HttpResponse> {
    if slug.len() > 64 {
        return Err(not_found(req));
    }
    match state
        .db
        .run(move |conn| crate::store::surveys::find_by_slug(conn, &slug))
        .await
    {
        Ok(Some(s)) if s.status == "archived" => Err(gone(&s)),
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(not_found(req)),
        Err(e) => Err(failure(req, e)),
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct Resume {
    /// The submission to change (from the thank-you page's "Change your answer" link).
    s: Option<String>,
    /// A score to preselect (not sent yet), as on `/s/{token}?score=N`.
    score: Option<String>,
}

/// GET /l/{slug}: a fresh form (`?score=N` preselects N, not sent yet), or with
/// `?s={submission}` the form of an earlier answer (from its thank-you page) so changing it
/// updates that one response.
pub async fn show(
    req: HttpRequest,
    state: web::Data<AppState>,
    slug: web::Path<String>,
    query: web::Query<Resume>,
) -> HttpResponse {
    let slug = slug.into_inner();
    let survey = match load(&state, &req, slug.clone()).await {
        Ok(s) => s,
        Err(p) => return p,
    };
    let resumed = query.s.clone().filter(|s| is_secret(s));
    let earlier = match &resumed {
        Some(sub) => {
            let (survey_id, sub) = (survey.id.clone(), sub.clone());
            match state
                .db
                .run(move |conn| crate::store::responses::by_submission(conn, &survey_id, &sub))
                .await
            {
                Ok(r) => r,
                Err(e) => return failure(&req, e),
            }
        }
        None => None,
    };
    let submission = resumed.unwrap_or_else(|| new_secret(""));
    let comment = earlier
        .as_ref()
        .and_then(|r| r.comment.clone())
        .unwrap_or_default();
    if let Some(r) = earlier.as_ref().filter(|r| closed(&survey, r)) {
        return answered_page(&survey, r);
    }
    let action = format!("/l/{slug}");
    survey_page(
        StatusCode::OK,
        &survey,
        FormState {
            action: &action,
            selected: None,
            comment: &comment,
            errors: Vec::new(),
            score_error: false,
            comment_error: false,
            submission_id: Some(&submission),
            honeypot: true,
            preselect: query
                .score
                .as_deref()
                .and_then(|s| s.trim().parse::<i64>().ok()),
            recorded: earlier.as_ref(),
        },
    )
}

pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    slug: web::Path<String>,
    form: web::Form<AnswerForm>,
) -> HttpResponse {
    let slug = slug.into_inner();
    let survey = match load(&state, &req, slug.clone()).await {
        Ok(s) => s,
        Err(p) => return p,
    };
    let submission = form
        .submission_id
        .clone()
        .filter(|s| is_secret(s))
        .unwrap_or_else(|| new_secret(""));
    // A filled honeypot is a bot: answer as if all went well, record nothing.
    if form
        .website
        .as_deref()
        .is_some_and(|w| !w.trim().is_empty())
    {
        tracing::info!("public link honeypot filled; answer dropped");
        return see_other(&format!("/l/{slug}/r/{submission}"));
    }
    let locale = Locale::parse(&survey.locale).unwrap_or_default();
    let action = format!("/l/{slug}");
    let (score, comment) = match checked_answer(&survey, &form, &action, Some(&submission), true) {
        Ok(v) => v,
        Err(page) => return *page,
    };
    let answer = Answer {
        survey: survey.clone(),
        invitation: None,
        score,
        comment: CommentChange::Set(comment),
        channel: "public".into(),
        locale: Some(locale.as_str().into()),
        submission_id: Some(submission.clone()),
    };
    match crate::answers::record(&state, answer).await {
        Ok(_) => see_other(&format!("/l/{slug}/r/{submission}")),
        Err(AppError::Conflict {
            code: "edit_window_closed",
            ..
        }) => edit_closed(&survey),
        Err(e) => failure(&req, e),
    }
}

pub async fn thanks(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (slug, submission) = path.into_inner();
    let survey = match load(&state, &req, slug.clone()).await {
        Ok(s) => s,
        Err(p) => return p,
    };
    if !is_secret(&submission) {
        return not_found(&req);
    }
    let survey_id = survey.id.clone();
    let sub = submission.clone();
    let response = match state
        .db
        .run(move |conn| crate::store::responses::by_submission(conn, &survey_id, &sub))
        .await
    {
        Ok(r) => r,
        Err(e) => return failure(&req, e),
    };
    let action = format!("/l/{slug}");
    match response {
        Some(r) => {
            let change = format!("/l/{slug}?s={submission}");
            thanks_page(&survey, &r, &action, &change, Some(&submission))
        }
        // The honeypot path, or a lost submission: a plain thank-you.
        None => {
            let chrome = super::Chrome::for_survey(&survey, "");
            super::message(
                StatusCode::OK,
                &chrome,
                chrome.texts.thanks_title,
                chrome.texts.thanks_body,
            )
        }
    }
}

/// Around the rate limiter: a 429 on a public link is shown in the survey's brand and
/// language (the limiter itself knows no survey), keeping its `Retry-After`.
pub async fn brand_too_many(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let res = next.call(req).await?.map_into_boxed_body();
    if res.status() != StatusCode::TOO_MANY_REQUESTS {
        return Ok(res);
    }
    let slug = res.request().match_info().get("slug").map(str::to_string);
    let state = res.request().app_data::<web::Data<AppState>>().cloned();
    let survey = match (slug, state) {
        (Some(slug), Some(state)) if slug.len() <= 64 => state
            .db
            .run(move |conn| crate::store::surveys::find_by_slug(conn, &slug))
            .await
            .ok()
            .flatten(),
        _ => None,
    };
    let Some(survey) = survey else {
        return Ok(res);
    };
    let retry_after = res.headers().get(header::RETRY_AFTER).cloned();
    let (req, _) = res.into_parts();
    let mut page = super::too_many_requests(&req, Some(&survey));
    if let Some(v) = retry_after {
        page.headers_mut().insert(header::RETRY_AFTER, v);
    }
    Ok(ServiceResponse::new(req, page))
}
