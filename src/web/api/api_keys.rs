//! `/api/v1/api-keys`: create (the key is shown once), list, revoke. Admin only.

use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::extract::{check_id, paginate, Caller, PageParams, ValidJson};
use super::query::Query;
use super::{not_blank, utc};
use crate::context::AppState;
use crate::domain::{IdPrefix, Role};
use crate::error::AppError;
use crate::store::models::ApiKeyRow;

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "helpdesk integration", "role": "agent"}))]
pub struct CreateApiKey {
    /// What the key is for.
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKey {
    #[schema(example = "key_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2")]
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The first characters of the key, to recognise it.
    #[schema(example = "cl_3q2x")]
    pub key_prefix: String,
    pub created_at: DateTime<Utc>,
    /// When the key last authenticated a request, to the minute: it is written at most
    /// once a minute per key. Absent for a key never used.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The secret key. It is shown only in this answer; only its hash is stored.
    #[schema(example = "cl_3q2xRk0v9F0mYj4wq1bT0yGz8b6x2nS5uD7cE1aP4hQ")]
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKey>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(row: ApiKeyRow) -> Self {
        ApiKey {
            role: Role::parse(&row.role).unwrap_or(Role::Reader),
            id: row.id,
            name: row.name,
            key_prefix: row.key_prefix,
            created_at: utc(row.created_at),
            last_used_at: row.last_used_at.map(utc),
            revoked_at: row.revoked_at.map(utc),
        }
    }
}

/// Create an API key
///
/// The answer holds the key itself, once; store it then.
#[utoipa::path(
    operation_id = "create_api_key",
    tag = "api-keys",
    request_body = CreateApiKey,
    responses((status = 201, description = "Key created", body = CreatedApiKey))
)]
#[post("/api-keys")]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: ValidJson<CreateApiKey>,
) -> Result<HttpResponse, AppError> {
    caller.require(Role::Admin)?;
    let CreateApiKey { name, role } = body.0;
    let name = name.trim().to_string();
    let (row, key) = state
        .db
        .write(move |conn| crate::store::api_keys::create(conn, &name, role))
        .await?;
    Ok(HttpResponse::Created().json(CreatedApiKey {
        api_key: row.into(),
        key,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApiKeyQuery {
    /// Items per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^key_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")]
    pub cursor: Option<String>,
}

/// List API keys
#[utoipa::path(
    operation_id = "list_api_keys",
    tag = "api-keys",
    params(ApiKeyQuery),
    responses((status = 200, description = "Keys, newest first", body = ApiKeyList))
)]
#[get("/api-keys")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    params: Query<ApiKeyQuery>,
) -> Result<web::Json<ApiKeyList>, AppError> {
    caller.require(Role::Admin)?;
    let q = params.into_inner();
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .check(IdPrefix::ApiKey)?;
    let rows = {
        let page = page.clone();
        state
            .db
            .run(move |conn| crate::store::api_keys::list(conn, &page))
            .await?
    };
    let (rows, next_cursor) = paginate(rows, &page, |r| &r.id);
    Ok(web::Json(ApiKeyList {
        items: rows.into_iter().map(ApiKey::from).collect(),
        next_cursor,
    }))
}

/// Revoke an API key
///
/// The key stops working at once. Revoking a revoked key is harmless. The last active admin
/// key cannot be revoked (409 `last_admin_key`): create another admin key first. A key cannot
/// revoke itself (409 `own_key`): revoke it with another admin key, so that a client cannot
/// lock itself out by mistake.
#[utoipa::path(
    operation_id = "revoke_api_key",
    tag = "api-keys",
    params(("id" = String, Path, description = "API key id", pattern = "^key_[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such key", body = crate::web::error::ErrorBody),
        (status = 409, description = "The last active admin key (`last_admin_key`), or the key revoking itself (`own_key`)", body = crate::web::error::ErrorBody)
    )
)]
#[delete("/api-keys/{id}")]
pub async fn revoke(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    caller.require(Role::Admin)?;
    let id = id.into_inner();
    check_id(&id, IdPrefix::ApiKey, "api key")?;
    let by = caller.key_id.clone();
    match state
        .db
        .write(move |conn| crate::store::api_keys::revoke(conn, &id, &by))
        .await?
    {
        Some(_) => Ok(HttpResponse::NoContent().finish()),
        None => Err(AppError::NotFound("api key")),
    }
}
