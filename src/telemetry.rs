//! Logging setup and the in-process metrics behind `/metrics`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

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
    pub fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
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
