//! Request extractors of the JSON API: checked JSON bodies, bearer-key authentication and
//! pagination parameters.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::IntoParams;
use validator::Validate;

use crate::context::AppState;
pub use crate::domain::{check_id, paginate, Page};
use crate::domain::{hash_key, IdPrefix, Role};
use crate::error::AppError;

/// A JSON body that was checked in three steps: `Content-Type` is JSON, the body is at most
/// `MAX_BODY_BYTES`, and it deserialises (unknown fields rejected, errors reported per field)
/// and passes the DTO's validator rules.
pub struct ValidJson<T>(pub T);

impl<T> FromRequest for ValidJson<T>
where
    T: DeserializeOwned + Validate + 'static,
{
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

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
                return Err(AppError::UnsupportedMediaType(
                    "Content-Type must be application/json".into(),
                ));
            }
            if declared_len.is_some_and(|n| n > limit) {
                return Err(AppError::PayloadTooLarge(limit));
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    AppError::BadRequest(format!("cannot read the request body: {e}"))
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(AppError::PayloadTooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            super::query::refuse_nul_in_json(&body)?;
            let value = parse_json::<T>(&body)?;
            value.validate()?;
            Ok(ValidJson(value))
        })
    }
}

/// Deserialises `body`, telling syntax errors (400) from data errors on a field (422).
///
/// Before the DTO sees it, the document is read with two rules of its own: a key given twice
/// in one object is a 400 naming the key (serde would keep the last one silently), and a NUL
/// character in any string or key is a 422 on that field (PostgreSQL cannot store it, and
/// both engines must answer alike). Nesting deeper than 128 levels is a 400 (serde_json's
/// recursion limit).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AppError::BadRequest(
            "the request body is empty; send a JSON object".into(),
        ));
    }
    // Syntax first, so a broken document is always a 400 whatever its fields are.
    let value = strict::parse(body)?;
    // Every request body is a JSON object (serde would read a struct from an array: `[]` was
    // accepted as an empty PATCH; found by Schemathesis).
    if !value.is_object() {
        return Err(AppError::BadRequest(
            "the request body must be a JSON object".into(),
        ));
    }
    strict::refuse_nul(&value, &mut String::new())?;
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
                return Err(AppError::field(&at, "is not a known field"));
            }
            if let Some(field) = between(&message, "missing field `", "`") {
                let at = if top {
                    field
                } else {
                    format!("{path}.{field}")
                };
                return Err(AppError::field(&at, "is required"));
            }
            if top {
                return Err(AppError::BadRequest(format!(
                    "invalid JSON body: {message}"
                )));
            }
            Err(AppError::field(&path, message))
        }
    }
}

/// Reading JSON with no duplicate keys and no NUL characters.
mod strict {
    use std::fmt;

    use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};

    use super::strip_position;
    use crate::error::AppError;

    /// What `parse` reports for a key given twice, to tell it from syntax errors.
    const DUPLICATE: &str = "duplicate key `";

    /// A JSON value whose objects never repeat a key.
    struct Strict(Value);

    impl<'de> de::Deserialize<'de> for Strict {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(StrictVisitor).map(Strict)
        }
    }

    struct StrictVisitor;

    impl<'de> Visitor<'de> for StrictVisitor {
        type Value = Value;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_string()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::new();
            while let Some(Strict(v)) = seq.next_element()? {
                items.push(v);
            }
            Ok(Value::Array(items))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(de::Error::custom(format!("{DUPLICATE}{key}`")));
                }
                let Strict(v) = map.next_value()?;
                out.insert(key, v);
            }
            Ok(Value::Object(out))
        }
    }

    /// The document, or a 400: malformed, too deeply nested, or with a key given twice
    /// (named with where it is, e.g. `contacts[2].email`).
    pub fn parse(body: &[u8]) -> Result<Value, AppError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let value = match serde_path_to_error::deserialize::<_, Strict>(&mut de) {
            Ok(Strict(v)) => v,
            Err(err) => {
                let path = err.path().to_string();
                let message = strip_position(&err.into_inner().to_string());
                if let Some(key) = super::between(&message, DUPLICATE, "`") {
                    let at = if path == "." || path.is_empty() {
                        key
                    } else {
                        format!("{path}.{key}")
                    };
                    return Err(AppError::BadRequest(format!(
                        "duplicate key `{at}` in the JSON body: give each key once"
                    )));
                }
                return Err(AppError::BadRequest(format!("malformed JSON: {message}")));
            }
        };
        de.end()
            .map_err(|e| AppError::BadRequest(format!("malformed JSON: {e}")))?;
        Ok(value)
    }

    /// A 422 on the first string (or key) holding a NUL character.
    pub fn refuse_nul(value: &Value, path: &mut String) -> Result<(), AppError> {
        let field = |p: &str| {
            if p.is_empty() {
                "body".to_string()
            } else {
                p.to_string()
            }
        };
        match value {
            Value::String(s) if s.contains('\0') => Err(AppError::field(
                &field(path),
                "must not contain NUL (\\u0000) characters",
            )),
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    refuse_nul(v, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            Value::Object(map) => {
                for (k, v) in map {
                    if k.contains('\0') {
                        return Err(AppError::field(
                            &field(path),
                            "has a key with a NUL (\\u0000) character",
                        ));
                    }
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                    refuse_nul(v, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            _ => Ok(()),
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
    pub fn require(&self, role: Role) -> Result<(), AppError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
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

impl FromRequest for Caller {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_string));
        Box::pin(async move {
            let state = state.ok_or_else(|| AppError::internal(anyhow::anyhow!("no app state")))?;
            let key = match header {
                None => {
                    return Err(AppError::Unauthorized(
                        "missing Authorization header; send `Authorization: Bearer <api key>`"
                            .into(),
                    ))
                }
                Some(Err(_)) => {
                    return Err(AppError::Unauthorized(
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
                        return Err(AppError::Unauthorized(
                            "the Authorization header must be `Bearer <api key>`".into(),
                        ))
                    }
                },
            };
            let hash = hash_key(&key);
            let found = state
                .db
                .run(move |conn| crate::store::api_keys::find_active_by_hash(conn, &hash))
                .await?;
            // `last_used_at`: the row just read says whether it is a minute old, so only
            // about one request per key and minute writes (a conditional UPDATE, which keeps
            // concurrent requests and replicas to one write). A failed write only logs.
            if let Some(row) = &found {
                let t = crate::domain::now();
                if crate::store::api_keys::last_used_is_stale(row, t) {
                    let id = row.id.clone();
                    if let Err(e) = state
                        .db
                        .write(move |conn| crate::store::api_keys::touch_last_used(conn, &id, t))
                        .await
                    {
                        tracing::warn!(error = %e, "cannot record when the API key was last used");
                    }
                }
            }
            match found {
                Some(row) => Ok(Caller {
                    role: Role::parse(&row.role).unwrap_or(Role::Reader),
                    key_id: row.id,
                    name: row.name,
                }),
                None => Err(AppError::Unauthorized(
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

impl PageParams {
    pub fn check(&self, prefix: IdPrefix) -> Result<Page, AppError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=100).contains(&limit) {
            return Err(AppError::field("limit", "must be from 1 to 100"));
        }
        if let Some(c) = &self.cursor {
            if !prefix.matches(c) {
                return Err(AppError::field(
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
