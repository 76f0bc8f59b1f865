//! Query strings of the JSON API. Every parameter is parsed on its own, so an error names the
//! parameter and the format it expects: a 422 with `error.fields` such as
//! `{"from": ["must be a date (2026-11-23) or an RFC 3339 time (…)"]}`.
//!
//! Times (`from`, `to`, `since`, `until`) accept a date, which means the start of that day in
//! UTC, or an RFC 3339 time with `Z` or an offset. An offset's `+` that was not percent-encoded
//! arrives as a space (`09:30:00 01:00`) and is read as `+`.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::domain::IdPrefix;
use crate::error::AppError;

/// A parsed query string; errors are 422 naming the parameter.
pub struct Query<T>(pub T);

impl<T> Query<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Query<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse_query(req.query_string()).map(Query))
    }
}

/// Parses a raw query string into `T`, naming the parameter in any error.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, AppError> {
    // Text with NUL cannot be stored or matched on PostgreSQL: refused on both engines.
    if let Some((name, _)) =
        url::form_urlencoded::parse(query.as_bytes()).find(|(_, v)| v.contains('\0'))
    {
        return Err(AppError::field(&name, "must not contain NUL characters"));
    }
    let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        let named = |prefix: &str| {
            message
                .strip_prefix(prefix)
                .and_then(|rest| rest.split('`').next())
                .map(str::to_string)
        };
        if let Some(field) = named("duplicate field `") {
            return AppError::field(&field, "is given more than once; give it once");
        }
        if let Some(field) = named("missing field `") {
            return AppError::field(&field, "is required");
        }
        let field = if path.is_empty() || path == "." {
            "query".to_string()
        } else {
            path
        };
        AppError::field(&field, explain(&message))
    })
}

/// Turns serde's wording into "must be …".
fn explain(message: &str) -> String {
    if let Some(rest) = message.split_once(", expected ").map(|(_, e)| e) {
        if message.starts_with("unknown variant") {
            return format!("must be {}", rest.replace('`', ""));
        }
    }
    if message.contains("provided string was not `true` or `false`") {
        return "must be true or false".into();
    }
    if message.starts_with("invalid digit") || message.contains("number too large") {
        return "must be an integer".into();
    }
    message.to_string()
}

/// What a time parameter accepts, for error messages.
pub const TIME_FORMAT: &str = "must be a date (2026-11-23, the start of that day in UTC) or an \
RFC 3339 time (2026-11-23T09:30:00Z, 2026-11-23T09:30:00+01:00), in 1970 or later";

/// What the document states of a time parameter besides its format: a year from 1970.
const YEAR_PATTERN: &str = "^(19[7-9][0-9]|[2-9][0-9]{3})-";

/// Parses a time parameter: a date (its start, UTC) or an RFC 3339 time with `Z` or an
/// offset, where a space before the offset stands for an unencoded `+`.
pub fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim_start();
    // Years before 1970 (and so the negative years of a previous period) are refused.
    let year = raw.get(..4).and_then(|y| y.parse::<u32>().ok());
    if year.is_none_or(|y| y < 1970) {
        return None;
    }
    if raw.len() == 10 {
        return NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc());
    }
    // `…T09:30:00 01:00`: the `+` of the offset became a space.
    let fixed;
    let text = match raw.rfind(' ') {
        Some(i) if i > 10 && raw[i + 1..].len() == 5 && raw.as_bytes()[i + 3] == b':' => {
            fixed = format!("{}+{}", &raw[..i], &raw[i + 1..]);
            fixed.as_str()
        }
        _ => raw,
    };
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A time in a query string (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryTime(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for QueryTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        parse_time(&raw)
            .map(QueryTime)
            .ok_or_else(|| serde::de::Error::custom(TIME_FORMAT))
    }
}

impl PartialSchema for QueryTime {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Date,
                    )))
                    .pattern(Some(YEAR_PATTERN))
                    .description(Some(
                        "A date (in 1970 or later): the start of that day in UTC",
                    )),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::DateTime,
                    )))
                    .pattern(Some(YEAR_PATTERN))
                    .description(Some(
                        "An RFC 3339 time with `Z` or an offset (in 1970 or later)",
                    )),
            )
            .into()
    }
}

impl ToSchema for QueryTime {}

/// Refuses a JSON body with a NUL character in a string (422 naming the field): PostgreSQL
/// cannot store NUL in text (nor cast JSON text holding `\u0000` to `jsonb`, as the segment
/// report does with `properties`), so both engines refuse it everywhere, `properties` included.
pub fn refuse_nul_in_json(body: &[u8]) -> Result<(), AppError> {
    // A NUL can only be written `\u0000` in JSON (a raw one is a syntax error).
    if !body.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(()); // the parser reports the syntax error
    };
    fn find(v: &serde_json::Value, path: &str) -> Option<String> {
        match v {
            serde_json::Value::String(s) if s.contains('\0') => Some(path.to_string()),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, x)| find(x, &format!("{path}[{i}]"))),
            serde_json::Value::Object(map) => map.iter().find_map(|(k, x)| {
                let at = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if k.contains('\0') {
                    Some(at)
                } else {
                    find(x, &at)
                }
            }),
            _ => None,
        }
    }
    match find(&value, "") {
        Some(path) => Err(AppError::field(
            if path.is_empty() { "body" } else { &path },
            "must not contain NUL characters",
        )),
        None => Ok(()),
    }
}

/// The wire name of a unit enum variant (`InvitationStatus::Sent` → `sent`).
pub fn enum_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A pattern for an id with the given prefix (a ULID after it, in either case).
pub fn id_pattern(prefix: IdPrefix) -> String {
    format!("^{}[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{{26}}$", prefix.as_str())
}

/// A filter by id: 422 when `raw` is not an id of that kind (no such row can exist).
pub fn check_filter_id(
    raw: &Option<String>,
    field: &str,
    prefix: IdPrefix,
) -> Result<(), AppError> {
    match raw {
        Some(v) if !prefix.matches(v) => Err(AppError::field(
            field,
            format!(
                "must be an id such as {}01JDQ7Z3M4X5Y6Z7A8B9C0D1E2",
                prefix.as_str()
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Q {
        from: Option<QueryTime>,
        limit: Option<i64>,
        kind: Option<crate::domain::SurveyKind>,
        overdue: Option<bool>,
    }

    fn field(e: AppError) -> (String, String) {
        match e {
            AppError::Validation { fields, .. } => {
                let (k, v) = fields.into_iter().next().unwrap();
                (k, v[0].clone())
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn times_accept_dates_offsets_and_an_unencoded_plus() {
        let t = |s: &str| parse_time(s).map(|t| t.to_rfc3339());
        assert_eq!(t("2026-11-23").unwrap(), "2026-11-23T00:00:00+00:00");
        assert_eq!(
            t("2026-11-23T09:30:00+01:00").unwrap(),
            "2026-11-23T08:30:00+00:00"
        );
        assert_eq!(
            t("2026-11-23T09:30:00 01:00").unwrap(),
            "2026-11-23T08:30:00+00:00"
        );
        assert_eq!(
            t("2026-11-23T09:30:00Z").unwrap(),
            "2026-11-23T09:30:00+00:00"
        );
        assert!(t("2026-11-23T09:30:00").is_none());
        assert!(t("2026-02-30").is_none());
        assert!(t("1969-12-31").is_none());
        assert!(t("0001-01-01T00:00:00Z").is_none());
        assert!(t("1970-01-01T00:30:00+01:00").is_some());
        assert!(t("yesterday").is_none());
    }

    #[test]
    fn errors_name_the_parameter_and_the_format() {
        let (f, m) = field(parse_query::<Q>("from=2026-11").unwrap_err());
        assert_eq!(f, "from");
        assert!(m.contains("RFC 3339"), "{m}");
        let (f, m) = field(parse_query::<Q>("limit=ten").unwrap_err());
        assert_eq!((f.as_str(), m.as_str()), ("limit", "must be an integer"));
        let (f, m) = field(parse_query::<Q>("kind=x").unwrap_err());
        assert_eq!(f, "kind");
        assert!(m.contains("nps"), "{m}");
        let (f, m) = field(parse_query::<Q>("overdue=yes").unwrap_err());
        assert_eq!(
            (f.as_str(), m.as_str()),
            ("overdue", "must be true or false")
        );
        let (f, _) = field(parse_query::<Q>("limit=1&limit=2").unwrap_err());
        assert_eq!(f, "limit");
        let q = parse_query::<Q>("from=2026-11-23T09:30:00+01:00&kind=csat").unwrap();
        assert!(q.from.is_some() && q.kind.is_some());
    }
}
