//! The JSON API under `/api/v1`, and the OpenAPI document built from the same registrations,
//! so the two cannot drift.

pub mod api_keys;
pub mod contacts;
pub mod extract;
pub mod followups;
pub mod invitations;
pub mod ops;
pub mod reports;
pub mod responses;
pub mod surveys;
pub mod webhooks;

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
    components(schemas(crate::web::error::ErrorBody, crate::web::error::ErrorDetail)),
    tags(
        (name = "api-keys", description = "API keys and their roles (admin only)"),
        (name = "surveys", description = "NPS and CSAT surveys"),
        (name = "contacts", description = "The people who are surveyed"),
        (name = "invitations", description = "Surveys sent to contacts by email or link"),
        (name = "responses", description = "Answers: one per invitation, or anonymous"),
        (name = "followups", description = "The feedback loop: a task for every unhappy answer"),
        (name = "reports", description = "NPS and CSAT with confidence intervals, trends and segments"),
        (name = "webhooks", description = "Signed HTTP callbacks to other apps, with a delivery log (admin only)"),
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
            .service(followups::note)
            .service(followups::reply)
            .service(reports::survey_report)
            .service(reports::kind_report)
            .service(reports::export_csv)
            .service(webhooks::create)
            .service(webhooks::list)
            .service(webhooks::get)
            .service(webhooks::remove)
            .service(webhooks::deliveries),
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

/// The OpenAPI document the server serves at `/api-docs/openapi.json`.
pub fn openapi() -> OpenApiDoc {
    app_and_doc().1
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
                add_error(op, "422", "Invalid fields; `error.fields` names each one");
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
