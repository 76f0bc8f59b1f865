//! Logging setup, request logs and in-process metrics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::startup::AppState;

/// Installs the global subscriber once; later calls (tests) are ignored.
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// (method, route pattern, status) → (count, total seconds).
type RequestStats = BTreeMap<(String, String, u16), (u64, f64)>;

/// Request counters for `/metrics`, keyed by route pattern and status.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<RequestStats>,
    pub emails_sent: AtomicU64,
    pub emails_failed: AtomicU64,
}

impl Metrics {
    fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        if let Ok(mut map) = self.requests.lock() {
            let entry = map
                .entry((method.to_string(), route.to_string(), status))
                .or_insert((0, 0.0));
            entry.0 += 1;
            entry.1 += seconds;
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP closeloop_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE closeloop_http_requests_total counter\n");
        let map = self.requests.lock().map(|m| m.clone()).unwrap_or_default();
        for ((method, route, status), (count, _)) in &map {
            out.push_str(&format!(
                "closeloop_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}\n"
            ));
        }
        out.push_str(
            "# HELP closeloop_http_request_seconds_sum Total time spent answering, by route.\n",
        );
        out.push_str("# TYPE closeloop_http_request_seconds_sum counter\n");
        for ((method, route, status), (_, secs)) in &map {
            out.push_str(&format!(
                "closeloop_http_request_seconds_sum{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {secs:.6}\n"
            ));
        }
        out.push_str("# TYPE closeloop_emails_sent_total counter\n");
        out.push_str(&format!(
            "closeloop_emails_sent_total {}\n",
            self.emails_sent.load(Ordering::Relaxed)
        ));
        out.push_str("# TYPE closeloop_emails_failed_total counter\n");
        out.push_str(&format!(
            "closeloop_emails_failed_total {}\n",
            self.emails_failed.load(Ordering::Relaxed)
        ));
        out
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
