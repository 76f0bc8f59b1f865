//! The JSON API under `/api/v1`, and the OpenAPI document built from the same registrations,
//! so the two cannot drift.

pub mod api_keys;
pub mod contacts;
pub mod extract;
pub mod followups;
pub mod invitations;
pub mod ops;
pub mod query;
pub mod reports;
pub mod responses;
pub mod surveys;
pub mod webhooks;

use serde::Deserialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as OpenApiDoc, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::{scope, AppExt};

/// The hand-written part of the document; paths and schemas are collected from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Closeloop API",
        description = "Self-hosted NPS and CSAT surveys with a closed feedback loop. \
Authenticate with `Authorization: Bearer <api key>` (create the first key with \
`closeloop api-key create --name NAME --role admin`). Roles: `admin` may do everything, \
`agent` may read and work follow-ups, `reader` may only read. Every error has the body \
`{\"error\": {\"code\", \"message\", \"fields\"?}}`. Lists are newest first and paginated with \
`limit` and `cursor` (pass the previous page's `next_cursor`). Times are UTC, RFC 3339.",
        license(name = "MIT")
    ),
    modifiers(&BearerAuth),
    components(schemas(
        crate::web::error::ErrorBody,
        crate::web::error::ErrorDetail,
        crate::webhooks::payload::ResponseEvent,
        crate::webhooks::payload::FollowupEvent,
        crate::webhooks::payload::ContactUnsubscribedEvent,
        crate::webhooks::payload::InvitationFailedEvent,
        crate::webhooks::payload::ContactContext,
        crate::webhooks::payload::SurveyContext
    )),
    tags(
        (name = "api-keys", description = "API keys and their roles (admin only)"),
        (name = "surveys", description = "NPS and CSAT surveys"),
        (name = "contacts", description = "The people who are surveyed"),
        (name = "invitations", description = "Surveys sent to contacts by email or link"),
        (name = "responses", description = "Answers: one per invitation, or anonymous"),
        (name = "followups", description = "The feedback loop: a task for every unhappy answer"),
        (name = "reports", description = "NPS and CSAT with confidence intervals, trends and segments"),
        (name = "webhooks", description = "Signed HTTP callbacks to other apps, with a delivery log (admin only). \
Each delivery is a Standard Webhooks v1 POST with the body `{\"type\", \"timestamp\", \"data\"}`. \
The `data` of each event has the schema named here: `response.created`, `response.updated` → `ResponseEvent`; \
`followup.created`, `followup.updated`, `followup.resolved` (a task was closed: status `resolved` or `dismissed`, \
with `outcome` and `note`; `followup.updated` is sent for the same change), `followup.overdue` (once per task, \
when an open task passes `due_at`) → `FollowupEvent`; `contact.unsubscribed` → `ContactUnsubscribedEvent`; \
`invitation.failed` → `InvitationFailedEvent`; `webhook.test` → `{webhook_id, message}`. Payloads carry personal \
data (the contact's `ContactContext`: email, name, external id, properties; comments and notes): the receiver \
processes it on your behalf. Erasing a contact scrubs it from queued and logged deliveries."),
        (name = "ops", description = "Health, readiness and metrics")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key, e.g. `cl_3q2…`"))
                    .build(),
            ),
        );
    }
}

/// Registers every `/api/v1` handler.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        scope::scope("/api/v1")
            .service(api_keys::create)
            .service(api_keys::list)
            .service(api_keys::revoke)
            .service(surveys::create)
            .service(surveys::list)
            .service(surveys::get)
            .service(surveys::update)
            .service(surveys::archive)
            .service(contacts::upsert)
            .service(contacts::list)
            .service(contacts::get)
            .service(contacts::update)
            .service(contacts::erase)
            .service(invitations::create)
            .service(invitations::list)
            .service(invitations::get)
            .service(invitations::cancel)
            .service(invitations::retry)
            .service(responses::list)
            .service(responses::get)
            .service(responses::create)
            .service(followups::list)
            .service(followups::get)
            .service(followups::update)
            .service(followups::add_note)
            .service(followups::reply)
            .service(reports::survey_report)
            .service(reports::kind_report)
            .service(reports::export_csv)
            .service(webhooks::create)
            .service(webhooks::list)
            .service(webhooks::get)
            .service(webhooks::update)
            .service(webhooks::remove)
            .service(webhooks::test)
            .service(webhooks::deliveries)
            .service(webhooks::redeliver)
            .service(webhooks::rotate_secret),
    )
    .service(ops::healthz)
    .service(ops::readyz)
    .service(ops::metrics);
}

/// Builds the app's routes and the OpenAPI document together. The caller adds app data
/// and middleware to the returned app.
pub fn app_and_doc() -> (
    actix_web::App<
        impl actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
            InitError = (),
        >,
    >,
    OpenApiDoc,
) {
    let (app, mut doc) = actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(configure)
        .split_for_parts();
    add_standard_responses(&mut doc);
    (app, doc)
}

/// The OpenAPI document the server serves at `/api-docs/openapi.json` (and `closeloop
/// openapi` prints): the generated one with the rules of [`refine`].
pub fn openapi() -> serde_json::Value {
    refine(&app_and_doc().1)
}

/// Adds the error responses every operation shares, and bearer security on `/api/v1`.
fn add_standard_responses(doc: &mut OpenApiDoc) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let authed = path.starts_with("/api/v1/");
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            if authed {
                op.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
                    "bearer",
                    Vec::<String>::new(),
                )]);
                add_error(op, "401", "Missing, malformed, unknown or revoked API key");
                add_error(op, "403", "The key's role may not do this");
                add_error(
                    op,
                    "400",
                    "Malformed request (bad JSON syntax, query string or path)",
                );
            }
            if op.request_body.is_some() {
                add_error(op, "413", "The body is larger than MAX_BODY_BYTES");
                add_error(op, "415", "Content-Type is not application/json");
            }
            let has_query = op.parameters.iter().flatten().any(|p| {
                matches!(p, utoipa::openapi::RefOr::T(p)
                    if matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query))
            });
            if op.request_body.is_some() || has_query {
                add_error(
                    op,
                    "422",
                    "Invalid fields or query parameters; `error.fields` names each one",
                );
            }
            let has_path = op.parameters.iter().flatten().any(|p| {
                matches!(p, utoipa::openapi::RefOr::T(p)
                    if matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Path))
            });
            if has_path {
                add_error(op, "404", "No such resource (or the id is malformed)");
            }
            if authed {
                add_error(
                    op,
                    "503",
                    "The database is unreachable or overloaded; retry later",
                );
            }
        }
    }
}

/// The request bodies' schemas (their text fields refuse NUL).
const REQUEST_SCHEMAS: [&str; 12] = [
    "CreateApiKey",
    "CreateSurvey",
    "UpdateSurvey",
    "ContactFields",
    "BatchContact",
    "CreateResponse",
    "UpdateFollowup",
    "CreateNote",
    "CreateReply",
    "CreateWebhook",
    "UpdateWebhook",
    "CreateInvitations",
];

/// Control characters (`char::is_control`: C0 and C1), refused in one-line fields.
const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";

/// The white space that `str::trim` removes (Unicode `White_Space`), spelled out: the `\s` of
/// Python and ECMAScript regexes differs from it (e.g. U+001C, U+FEFF).
const WHITE_SPACE: &str =
    r"\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// Rules the derive macros cannot write, added to the generated document:
/// - `pattern: "\S"` (not blank) becomes the exact class of non-white-space characters;
/// - text in request bodies refuses NUL (`^[^\u0000]*$`), also anywhere inside free-form
///   `properties` (the recursive `NoNulJson` schema);
/// - `pattern: "ONE_LINE_NOT_BLANK"` / `"ONE_LINE"`: no control characters (and not blank);
/// - `pattern: "TEMPLATE_TEXT"` becomes the grammar of survey questions: not blank, and every
///   `{…}` is `{brand}` or `{topic}` (an unclosed `{` at the end is text);
/// - a contact names `email` or `external_id`, and its `properties` have 1 to 50 keys of 1 to
///   100 characters with `value` a number of at least 0;
/// - a webhook's events are distinct; a task's `outcome` comes with status `resolved` or
///   `dismissed`;
/// - a response names exactly one of `invitation_token` and `survey_id`, and `contact` only
///   with `survey_id`.
fn refine(doc: &OpenApiDoc) -> serde_json::Value {
    use serde_json::{json, Value};
    let one_line_not_blank = format!("^[^{CONTROL}]*[^{CONTROL}{WHITE_SPACE}][^{CONTROL}]*$");
    let not_blank = format!("^[^\\u0000]*[^\\u0000{WHITE_SPACE}][^\\u0000]*$");
    let template = format!(
        "^[{ws}]*(?:(?:[^{{\\u0000{ws}]|\\{{(?:brand|topic)\\}})(?:[^{{\\u0000]|\\{{(?:brand|topic)\\}})*(?:\\{{[^}}\\u0000]*)?|\\{{[^}}\\u0000]*)$",
        ws = WHITE_SPACE
    );
    let mut v = serde_json::to_value(doc).unwrap_or_default();
    fn walk(v: &mut Value, f: &dyn Fn(&mut serde_json::Map<String, Value>)) {
        match v {
            Value::Object(m) => {
                f(m);
                m.values_mut().for_each(|x| walk(x, f));
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, f)),
            _ => {}
        }
    }
    walk(&mut v, &|m| {
        let replacement = match m.get("pattern").and_then(Value::as_str) {
            Some("\\S") => Some(not_blank.clone()),
            Some("TEMPLATE_TEXT") => Some(template.clone()),
            Some("ONE_LINE_NOT_BLANK") => Some(one_line_not_blank.clone()),
            Some("ONE_LINE") => Some(format!("^[^{CONTROL}]*$")),
            _ => None,
        };
        if let Some(r) = replacement {
            m.insert("pattern".into(), Value::String(r));
        }
    });
    let schemas = &mut v["components"]["schemas"];
    // Request text is refused with NUL (see `query::refuse_nul_in_json`): say so.
    for name in REQUEST_SCHEMAS {
        if let Some(props) = schemas
            .pointer_mut(&format!("/{name}/properties"))
            .and_then(Value::as_object_mut)
        {
            for (field, schema) in props.iter_mut() {
                let is_text = match &schema["type"] {
                    Value::String(t) => t == "string",
                    Value::Array(ts) => ts.contains(&json!("string")),
                    _ => false,
                };
                if is_text && field != "properties" && schema.get("pattern").is_none() {
                    schema["pattern"] = json!("^[^\\u0000]*$");
                }
            }
        }
    }
    if let Some(contact) = schemas
        .get_mut("ContactFields")
        .and_then(Value::as_object_mut)
    {
        contact.insert(
            "anyOf".into(),
            json!([
                {"required": ["email"], "properties": {"email": {"type": "string"}}},
                {"required": ["external_id"], "properties": {"external_id": {"type": "string"}}}
            ]),
        );
        contact["properties"]["properties"] = json!({
            "type": ["object", "null"],
            "description": "Free-form attributes, merged key by key into the stored ones \
        (`null` removes a key); at most 50 keys of 1 to 100 characters and 8 KiB of JSON. `value` (a \
        number: yearly revenue or lifetime value) ranks follow-ups.",
            "maxProperties": 50,
            "propertyNames": {"minLength": 1, "maxLength": 100, "pattern": "^[^\\u0000]*$"},
            "properties": {"value": {"type": ["number", "null"], "minimum": 0}},
            "additionalProperties": {"$ref": "#/components/schemas/NoNulJson"}
        });
    }
    if let Some(props) = schemas.pointer_mut("/BatchContact/properties/properties") {
        props["propertyNames"] = json!({"pattern": "^[^\\u0000]*$"});
        props["additionalProperties"] = json!({"$ref": "#/components/schemas/NoNulJson"});
    }
    // Any JSON value without a NUL character in a string or key (PostgreSQL can neither store
    // it in text nor cast JSON text holding it to jsonb).
    schemas["NoNulJson"] = json!({
        "description": "Any JSON value without a NUL (\\u0000) character in a string or key.",
        "anyOf": [
            {"type": "string", "pattern": "^[^\\u0000]*$"},
            {"type": ["number", "boolean", "null"]},
            {"type": "array", "items": {"$ref": "#/components/schemas/NoNulJson"}},
            {
                "type": "object",
                "propertyNames": {"pattern": "^[^\\u0000]*$"},
                "additionalProperties": {"$ref": "#/components/schemas/NoNulJson"}
            }
        ]
    });
    for body in ["CreateWebhook", "UpdateWebhook"] {
        if let Some(events) = schemas.pointer_mut(&format!("/{body}/properties/events")) {
            events["uniqueItems"] = json!(true);
        }
    }
    if let Some(update) = schemas
        .get_mut("UpdateFollowup")
        .and_then(Value::as_object_mut)
    {
        update.insert("if".into(), json!({"required": ["outcome"]}));
        update.insert(
            "then".into(),
            json!({"required": ["status"], "properties": {"status": {"enum": ["resolved", "dismissed"]}}}),
        );
    }
    if let Some(response) = schemas
        .get_mut("CreateResponse")
        .and_then(Value::as_object_mut)
    {
        response.insert(
            "oneOf".into(),
            json!([
                {"required": ["invitation_token"], "properties": {
                    "invitation_token": {"type": "string"},
                    "survey_id": {"type": "null"},
                    "contact": {"type": "null"}
                }},
                {"required": ["survey_id"], "properties": {
                    "survey_id": {"type": "string"},
                    "invitation_token": {"type": "null"}
                }}
            ]),
        );
    }
    v
}

fn add_error(op: &mut Operation, status: &str, description: &str) {
    if op.responses.responses.contains_key(status) {
        return;
    }
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    op.responses
        .responses
        .insert(status.to_string(), response.into());
}

/// The methods served at `path` when it is one of the documented routes (`/api/v1/…`,
/// `/healthz`, …), for `405 Method Not Allowed` with an `Allow` header instead of a 404.
pub fn allowed_methods(path: &str) -> Option<Vec<&'static str>> {
    type Route = (Vec<String>, Vec<&'static str>);
    static ROUTES: std::sync::OnceLock<Vec<Route>> = std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        app_and_doc()
            .1
            .paths
            .paths
            .iter()
            .map(|(template, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ]
                .into_iter()
                .filter_map(|(m, present)| present.then_some(m))
                .collect();
                (template.split('/').map(str::to_string).collect(), methods)
            })
            .collect()
    });
    let segments: Vec<&str> = path.split('/').collect();
    let mut allowed: Vec<&'static str> = Vec::new();
    for (template, methods) in routes {
        let fits = template.len() == segments.len()
            && template.iter().zip(&segments).all(|(t, s)| {
                if t.starts_with('{') && t.ends_with('}') {
                    !s.is_empty()
                } else {
                    t == s
                }
            });
        if fits {
            for m in methods {
                if !allowed.contains(m) {
                    allowed.push(m);
                }
            }
        }
    }
    (!allowed.is_empty()).then_some(allowed)
}

/// The answer to a method a documented route does not serve: `OPTIONS` gets 204 with the
/// `Allow` header, anything else 405 `method_not_allowed` with it.
pub fn method_not_allowed(
    req: &actix_web::HttpRequest,
    allowed: &[&str],
) -> actix_web::HttpResponse {
    use actix_web::http::{header, Method};
    let allow = format!("{}, OPTIONS", allowed.join(", "));
    if req.method() == Method::OPTIONS {
        return actix_web::HttpResponse::NoContent()
            .insert_header((header::ALLOW, allow))
            .finish();
    }
    actix_web::HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, allow.clone()))
        .json(crate::web::error::ErrorBody {
            error: crate::web::error::ErrorDetail {
                code: "method_not_allowed".into(),
                message: format!("{} is not served here; use {allow}", req.method()),
                fields: None,
            },
        })
}

pub use crate::domain::utc;

/// Deserialises a present-but-null field as `Some(None)` and an absent one as `None`.
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}

/// For optional fields that cannot be cleared: absent is `None`, an explicit `null` is an error
/// ("invalid type: null") instead of silently meaning "unchanged".
pub fn no_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// An integer from JSON. JSON Schema counts `5.0` as the integer 5, so an integral number
/// written with a fraction or exponent is accepted too.
fn integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    use serde::de::Error;
    let n = serde_json::Number::deserialize(d)?;
    let value = match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => Some(i),
        (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => Some(f as i64),
        _ => None,
    };
    value
        .and_then(|i| i32::try_from(i).ok())
        .ok_or_else(|| D::Error::custom(format!("invalid value: {n}, expected an integer")))
}

/// An optional integer (`null` is absent).
pub fn opt_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Wrap(#[serde(deserialize_with = "integer")] i32);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

/// An integer that may be absent but not `null` (see [`no_null`]).
pub fn some_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    integer(d).map(Some)
}

/// An integer that `null` clears (see [`double_option`]).
pub fn double_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i32>>, D::Error> {
    opt_int(d).map(Some)
}

/// A required integer.
pub fn int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    integer(d)
}

/// Rejects control characters (line breaks, tabs, NUL, …) in one-line fields that end up in
/// email headers (a brand is the sender name, a contact's name the recipient name).
pub fn single_line(value: &str) -> Result<(), validator::ValidationError> {
    if value.chars().any(char::is_control) {
        let mut e = validator::ValidationError::new("control_characters");
        e.message =
            Some("must be one line, without control characters (line breaks, tabs, NUL)".into());
        return Err(e);
    }
    Ok(())
}

/// Rejects strings that are only white space.
pub fn not_blank(value: &str) -> Result<(), validator::ValidationError> {
    if value.trim().is_empty() {
        let mut e = validator::ValidationError::new("blank");
        e.message = Some("must not be blank".into());
        return Err(e);
    }
    Ok(())
}
