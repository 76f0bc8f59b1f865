//! What the dashboards read beside the report: the comments feed, the survey being shown,
//! the survey picker and the contact property names a segment can use.

use crate::context::AppState;
use crate::error::AppError;
use crate::store::models::SurveyRow;
use crate::store::responses::{CommentItem, ResponseFilter};

/// Answers with a comment matching `filter`, newest first: up to `limit` from `offset`.
pub async fn comments(
    state: &AppState,
    filter: ResponseFilter,
    offset: i64,
    limit: i64,
) -> Result<Vec<CommentItem>, AppError> {
    state
        .db
        .run_replica(move |conn| crate::store::responses::comments(conn, &filter, offset, limit))
        .await
}

/// One survey (404 when there is none).
pub async fn survey(state: &AppState, id: String) -> Result<SurveyRow, AppError> {
    state
        .db
        .run_replica(move |conn| crate::store::surveys::get(conn, &id))
        .await
}

/// Every survey's id, name and kind, by name.
pub async fn survey_names(state: &AppState) -> Result<Vec<(String, String, String)>, AppError> {
    state
        .db
        .run_replica(crate::store::followups::survey_names)
        .await
}

/// Contact property names in use (from the most recent contacts), alphabetical.
pub async fn property_keys(state: &AppState) -> Result<Vec<String>, AppError> {
    state
        .db
        .run_replica(crate::store::contacts::recent_property_keys)
        .await
}
