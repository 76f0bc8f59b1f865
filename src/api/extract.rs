//! Request extractors: checked JSON bodies, bearer-key authentication and pagination.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::IntoParams;
use validator::Validate;

use super::error::ApiError;
use crate::domain::{IdPrefix, Role};
use crate::startup::AppState;

/// A JSON body that was checked in three steps: `Content-Type` is JSON, the body is at most
/// `MAX_BODY_BYTES`, and it deserialises (unknown fields rejected, errors reported per field)
/// and passes the DTO's validator rules.
pub struct ValidJson<T>(pub T);

impl<T> FromRequest for ValidJson<T>
where
    T: DeserializeOwned + Validate + 'static,
{
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.settings.max_body_bytes)
            .unwrap_or(1024 * 1024);
        let content_type_ok = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|m| m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON));
        let declared_len = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !content_type_ok {
                return Err(ApiError::UnsupportedMediaType(
                    "Content-Type must be application/json".into(),
                ));
            }
            if declared_len.is_some_and(|n| n > limit) {
                return Err(ApiError::PayloadTooLarge(limit));
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::BadRequest(format!("cannot read the request body: {e}"))
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            let value = parse_json::<T>(&body)?;
            value.validate()?;
            Ok(ValidJson(value))
        })
    }
}

/// Deserialises `body`, telling syntax errors (400) from data errors on a field (422).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "the request body is empty; send a JSON object".into(),
        ));
    }
    // Syntax first, so a broken document is always a 400 whatever its fields are.
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Ok(v),
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let message = strip_position(&inner.to_string());
            let top = path == "." || path.is_empty();
            // serde_path_to_error's path already ends at an unknown field, and stops at the
            // parent object for a missing one.
            if let Some(field) = between(&message, "unknown field `", "`") {
                let at = if top { field } else { path };
                return Err(ApiError::field(&at, "is not a known field"));
            }
            if let Some(field) = between(&message, "missing field `", "`") {
                let at = if top {
                    field
                } else {
                    format!("{path}.{field}")
                };
                return Err(ApiError::field(&at, "is required"));
            }
            if top {
                return Err(ApiError::BadRequest(format!(
                    "invalid JSON body: {message}"
                )));
            }
            Err(ApiError::field(&path, message))
        }
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(text[from..from + len].to_string())
}

/// The caller, authenticated by `Authorization: Bearer <api key>`.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// 403 unless the caller's role is at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this action needs the {} role; this key has the {} role",
                role.as_str(),
                self.role.as_str()
            )))
        }
    }

    /// Who did something, for activity logs.
    pub fn actor(&self) -> String {
        format!("api-key:{}", self.name)
    }
}

/// The stored form of an API key: hex SHA-256. Keys are 256 random bits, so a fast hash is
/// enough (no password stretching is needed for high-entropy secrets).
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_string));
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("no app state")))?;
            let key = match header {
                None => {
                    return Err(ApiError::Unauthorized(
                        "missing Authorization header; send `Authorization: Bearer <api key>`"
                            .into(),
                    ))
                }
                Some(Err(_)) => {
                    return Err(ApiError::Unauthorized(
                        "invalid Authorization header".into(),
                    ))
                }
                Some(Ok(v)) => match v.split_once(' ') {
                    Some((scheme, key))
                        if scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty() =>
                    {
                        key.trim().to_string()
                    }
                    _ => {
                        return Err(ApiError::Unauthorized(
                            "the Authorization header must be `Bearer <api key>`".into(),
                        ))
                    }
                },
            };
            let hash = hash_key(&key);
            let found = state
                .db
                .run(move |conn| crate::db::api_keys::find_active_by_hash(conn, &hash))
                .await?;
            match found {
                Some(row) => Ok(Caller {
                    role: Role::parse(&row.role).unwrap_or(Role::Reader),
                    key_id: row.id,
                    name: row.name,
                }),
                None => Err(ApiError::Unauthorized(
                    "the API key is unknown or revoked".into(),
                )),
            }
        })
    }
}

/// `?limit=&cursor=` on every list. Items come newest first; `next_cursor` from one page is the
/// `cursor` of the next, and is absent on the last page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100, example = 50)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Checked pagination parameters.
#[derive(Debug, Clone)]
pub struct Page {
    pub limit: i64,
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn check(&self, prefix: IdPrefix) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::field("limit", "must be from 1 to 100"));
        }
        if let Some(c) = &self.cursor {
            if !prefix.matches(c) {
                return Err(ApiError::field(
                    "cursor",
                    "is not a cursor returned by this list",
                ));
            }
        }
        Ok(Page {
            limit,
            cursor: self.cursor.clone(),
        })
    }
}

/// Splits one extra fetched row off into `next_cursor`.
pub fn paginate<T>(
    mut rows: Vec<T>,
    page: &Page,
    id: impl Fn(&T) -> &str,
) -> (Vec<T>, Option<String>) {
    if rows.len() as i64 > page.limit {
        rows.truncate(page.limit as usize);
        let next = rows.last().map(|r| id(r).to_string());
        (rows, next)
    } else {
        (rows, None)
    }
}

/// 404 early for a path id that cannot exist (wrong prefix or shape).
pub fn check_id(raw: &str, prefix: IdPrefix, what: &'static str) -> Result<(), ApiError> {
    if prefix.matches(raw) {
        Ok(())
    } else {
        Err(ApiError::NotFound(what))
    }
}
