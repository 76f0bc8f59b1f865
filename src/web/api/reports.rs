//! Reports and the CSV export of responses.

use actix_web::http::header;
use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{check_id, Caller};
use super::query::{enum_name, Query, QueryTime};
use super::responses::ExportQuery;
use crate::context::AppState;
use crate::domain::{IdPrefix, Role, SurveyKind};
use crate::error::AppError;
use crate::reports::{self, Range};
pub use crate::reports::{Backlog, Change, Period, Report, SegmentRow, SeriesPoint, Summary};

/// The bucket size of a report's series.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IntervalName {
    Day,
    Week,
    Month,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Start (inclusive): a date (its start, UTC) or an RFC 3339 time. Default: 30 days
    /// before `to`. Must be before `to`.
    #[param(inline)]
    pub from: Option<QueryTime>,
    /// End (exclusive): a date (its start, UTC) or an RFC 3339 time. Default: now.
    #[param(inline)]
    pub to: Option<QueryTime>,
    /// Default: `day` up to 31 days, `week` up to 26 weeks, else `month`. A range and
    /// interval giving more than 1000 buckets is refused (422).
    #[param(inline)]
    pub interval: Option<IntervalName>,
    /// A contact property to break the answers down by, e.g. `plan`.
    #[param(pattern = "^[A-Za-z0-9_-]{1,100}$")]
    pub segment: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KindReportQuery {
    pub kind: SurveyKind,
    /// Start (inclusive): a date (its start, UTC) or an RFC 3339 time. Default: 30 days
    /// before `to`. Must be before `to`.
    #[param(inline)]
    pub from: Option<QueryTime>,
    /// End (exclusive): a date (its start, UTC) or an RFC 3339 time. Default: now.
    #[param(inline)]
    pub to: Option<QueryTime>,
    /// Default: `day` up to 31 days, `week` up to 26 weeks, else `month`. A range and
    /// interval giving more than 1000 buckets is refused (422).
    #[param(inline)]
    pub interval: Option<IntervalName>,
    /// A contact property to break the answers down by, e.g. `plan`.
    #[param(pattern = "^[A-Za-z0-9_-]{1,100}$")]
    pub segment: Option<String>,
}

fn range(
    from: Option<QueryTime>,
    to: Option<QueryTime>,
    interval: Option<IntervalName>,
    segment: Option<&str>,
) -> Result<Range, AppError> {
    let interval = interval.map(|i| enum_name(&i));
    Range::check(
        from.map(|t| t.0),
        to.map(|t| t.0),
        interval.as_deref(),
        segment,
    )
}

/// Survey report
///
/// NPS or CSAT with 95 % intervals, counts per score, a series per interval, a breakdown
/// by a contact property, response rate, median time to answer, the change against the
/// previous period of the same length, and the follow-up backlog. Aggregated in the
/// database; buckets are UTC. Every ratio (`csat`, `response_rate`, their intervals and
/// changes) is a percentage from 0 to 100; the NPS is from −100 to 100. `counts` lists every
/// score of the scale in order. `nps_ci95` is an adjusted-Wald interval, honestly wide at
/// small n.
#[utoipa::path(
    operation_id = "survey_report",
    tag = "reports",
    params(("id" = String, Path, description = "Survey id", pattern = "^srv_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$"), ReportQuery),
    responses(
        (status = 200, description = "The report", body = Report),
        (status = 404, description = "No such survey", body = crate::web::error::ErrorBody),
        (status = 422, description = "Invalid range, interval or segment", body = crate::web::error::ErrorBody)
    )
)]
#[get("/surveys/{id}/report")]
pub async fn survey_report(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    query: Query<ReportQuery>,
) -> Result<web::Json<Report>, AppError> {
    caller.require(Role::Reader)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Survey, "survey")?;
    let q = query.into_inner();
    let range = range(q.from, q.to, q.interval, q.segment.as_deref())?;
    Ok(web::Json(reports::survey_report(&state, id, range).await?))
}

/// Report across surveys
///
/// The same report over every survey of one kind.
#[utoipa::path(
    operation_id = "kind_report",
    tag = "reports",
    params(KindReportQuery),
    responses(
        (status = 200, description = "The report", body = Report),
        (status = 422, description = "Invalid kind, range, interval or segment", body = crate::web::error::ErrorBody)
    )
)]
#[get("/reports")]
pub async fn kind_report(
    state: web::Data<AppState>,
    caller: Caller,
    query: Query<KindReportQuery>,
) -> Result<web::Json<Report>, AppError> {
    caller.require(Role::Reader)?;
    let q = query.into_inner();
    let range = range(q.from, q.to, q.interval, q.segment.as_deref())?;
    Ok(web::Json(
        reports::kind_report(&state, q.kind, range).await?,
    ))
}

/// Export responses as CSV
///
/// All of a survey's responses (oldest first) with the same filters as the response list,
/// streamed: RFC 4180 quoting, UTF-8 with a byte-order mark (so spreadsheets detect it),
/// and cells that a spreadsheet would treat as a formula prefixed with `'`.
#[utoipa::path(
    operation_id = "export_responses_csv",
    tag = "responses",
    params(("id" = String, Path, description = "Survey id", pattern = "^srv_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$"), ExportQuery),
    responses(
        (status = 200, description = "CSV", content_type = "text/csv", body = String),
        (status = 404, description = "No such survey", body = crate::web::error::ErrorBody)
    )
)]
#[get("/surveys/{id}/responses.csv")]
pub async fn export_csv(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    query: Query<ExportQuery>,
) -> Result<HttpResponse, AppError> {
    caller.require(Role::Reader)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::Survey, "survey")?;
    let filter = query.filter(id.clone())?;
    {
        let id = id.clone();
        state
            .db
            .run(move |conn| crate::store::surveys::get(conn, &id))
            .await?;
    }
    let rx = reports::export_csv(&state, filter);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, actix_web::Error>(chunk), rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"responses-{id}.csv\""),
        ))
        .streaming(body))
}
