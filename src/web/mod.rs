//! The front doors over HTTP: the JSON API (`api`), the customer pages (`pages`) and the
//! support-lead workspace (`app`). Handlers parse, authorize, call one use case and render.

pub mod api;
pub mod app;
pub mod error;
pub mod pages;

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use tracing::Instrument;

use crate::context::AppState;
use crate::error::AppError;

/// Unknown URLs: a JSON error under `/api`, a small HTML page elsewhere. A documented route
/// asked with a method it does not serve gets 405 with `Allow`.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    if let Some(allowed) = api::allowed_methods(req.path()) {
        return api::method_not_allowed(&req, &allowed);
    }
    if req.path().starts_with("/api") {
        HttpResponse::NotFound().json(error::body(&AppError::NotFound("route")))
    } else {
        HttpResponse::NotFound()
            .content_type("text/html; charset=utf-8")
            .body(pages::not_found_html())
    }
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Logs one line per request: method, route pattern (never the raw path, which may hold a
/// survey token), status, latency and a request id (taken from `X-Request-Id` when it is
/// short and printable, else generated), and echoes the id in the response.
pub async fn request_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| ulid::Ulid::new().to_string());
    let method = req.method().to_string();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut res = next.call(req).instrument(span).await?;
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if let Some(m) = metrics {
        m.record(&method, &route, status, elapsed.as_secs_f64());
    }
    tracing::info!(request_id = %request_id, method = %method, route = %route, status, latency_ms = format!("{latency_ms:.2}"), "request");
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID.clone(), v);
    }
    Ok(res)
}
