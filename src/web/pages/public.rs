//! `/l/{slug}`: the anonymous public link of a survey. Rate-limited per client, with a
//! honeypot field. Each form carries a one-time `submission_id`, so a double submit updates
//! one response; the thank-you page is addressed by that id.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use super::survey::{
    answered_page, checked_answer, closed, edit_closed, not_saved, survey_page, thanks_page,
    FormState,
};
use super::{failure, gone, not_found, see_other, AnswerForm, Limiter};
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
    limiter: web::Data<Limiter>,
) -> HttpResponse {
    let slug = slug.into_inner();
    let survey = match load(&state, &req, slug.clone()).await {
        Ok(s) => s,
        Err(p) => return p,
    };
    if let Err(wait) = limiter.check(&req) {
        return too_many(&req, &survey, wait);
    }
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
        comment: CommentChange::Set(comment.clone()),
        channel: "public".into(),
        locale: Some(locale.as_str().into()),
        submission_id: Some(submission.clone()),
        contact: None,
    };
    match crate::answers::record(&state, answer).await {
        Ok(_) => see_other(&format!("/l/{slug}/r/{submission}")),
        Err(AppError::Conflict {
            code: "edit_window_closed",
            ..
        }) => edit_closed(&survey),
        Err(e) => not_saved(
            &req,
            e,
            &survey,
            (score, comment.as_deref()),
            &action,
            Some(&submission),
            true,
        ),
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

/// The 429 page of a public link, in the survey's brand and language, with `Retry-After`.
fn too_many(req: &HttpRequest, survey: &SurveyRow, wait_seconds: u64) -> HttpResponse {
    let mut res = super::too_many_requests(req, Some(survey));
    if let Ok(v) = header::HeaderValue::from_str(&wait_seconds.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}
