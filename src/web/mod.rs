//! The front doors over HTTP: the JSON API (`api`), the customer pages (`pages`) and the
//! support-lead workspace (`app`). Handlers parse, authorize, call one use case and render.

pub mod api;
pub mod app;
pub mod error;
pub mod pages;

use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
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
        pages::unknown_url()
    }
}

/// Refuses a NUL character in the URL before any handler sees it (PostgreSQL cannot compare
/// text with NUL, so a filter holding one failed with a 500 there and matched nothing on
/// SQLite): on a page, a query parameter holding one is a 400 naming the parameter (under
/// `/api` the query extractor refuses it with a 422 naming the parameter); a path holding one
/// is a 404 (no such thing). JSON under `/api`, a page elsewhere.
pub async fn refuse_nul_in_url(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let api = req.path().starts_with("/api");
    let path_nul = req.path().to_ascii_lowercase().contains("%00");
    let param = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        .map(|(k, _)| k.replace('\0', "\\u0000"));
    let refused = match (path_nul, param) {
        (true, _) if api => Some(ResponseError::error_response(&AppError::NotFound("route"))),
        (true, _) => Some(pages::unknown_url()),
        // Under /api the query extractor names the parameter in a 422 (as documented).
        (false, Some(_)) if api => None,
        (false, Some(name)) => {
            let e = AppError::BadRequest(format!(
                "query parameter `{name}` must not contain NUL (%00) characters"
            ));
            Some(if api {
                ResponseError::error_response(&e)
            } else {
                pages::bad_request(req.request(), &e.to_string())
            })
        }
        (false, None) => None,
    };
    match refused {
        Some(res) => Ok(req.into_response(res).map_into_right_body()),
        None => Ok(next.call(req).await?.map_into_left_body()),
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
    // Only the standard methods get their own metric label: a client inventing a new
    // method per request must not grow the metrics without bound.
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m.to_string(),
        _ => "OTHER".to_string(),
    };
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
    tracing::info!(request_id = %request_id, method = %method, route = %route, status, latency_ms = (latency_ms * 100.0).round() / 100.0, "request");
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID.clone(), v);
    }
    Ok(res)
}
