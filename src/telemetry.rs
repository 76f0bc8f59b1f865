//! Logging setup and the in-process metrics behind `/metrics`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
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

/// The liveness of one background worker: whether it runs and when it last made progress
/// (a loop, or one message handled). `/readyz` and `/metrics` report it.
#[derive(Default)]
pub struct WorkerBeat {
    /// Started and not exited.
    running: AtomicBool,
    /// Unix milliseconds of the last beat (0: never).
    last_ms: AtomicI64,
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What a worker's beat says about it.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerHealth {
    /// Never started in this process (turned off by configuration).
    Off,
    /// Looping: the last beat was this many seconds ago.
    Alive(f64),
    /// Running, but no beat for this many seconds (more than the allowed stall).
    Stalled(f64),
    /// It started and then stopped (a crash of its loop, or shutdown).
    Exited,
}

impl WorkerBeat {
    /// Marks the worker started (and beats). The returned guard marks it exited when dropped,
    /// which also happens when its task unwinds from a panic.
    pub fn start(&self) -> WorkerRunning<'_> {
        self.running.store(true, Ordering::Relaxed);
        self.beat();
        WorkerRunning(self)
    }

    pub fn beat(&self) {
        self.last_ms.store(unix_ms(), Ordering::Relaxed);
    }

    /// The worker's health, counting no beat for more than `stall_seconds` as stalled.
    pub fn health(&self, stall_seconds: u64) -> WorkerHealth {
        let last = self.last_ms.load(Ordering::Relaxed);
        if last == 0 {
            return WorkerHealth::Off;
        }
        if !self.running.load(Ordering::Relaxed) {
            return WorkerHealth::Exited;
        }
        let ago = (unix_ms() - last).max(0) as f64 / 1000.0;
        if ago > stall_seconds as f64 {
            WorkerHealth::Stalled(ago)
        } else {
            WorkerHealth::Alive(ago)
        }
    }
}

/// Held by a running worker; marks it exited when dropped.
pub struct WorkerRunning<'a>(&'a WorkerBeat);

impl Drop for WorkerRunning<'_> {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Relaxed);
    }
}

/// (method, route pattern, status) → (count, total seconds).
type RequestStats = BTreeMap<(String, String, u16), (u64, f64)>;

/// Request counters for `/metrics`, keyed by route pattern and status.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<RequestStats>,
    pub emails_sent: AtomicU64,
    pub emails_failed: AtomicU64,
    /// Sends that panicked (caught; the message was marked failed).
    pub send_panics: AtomicU64,
    /// The email dispatcher's liveness.
    pub email_worker: WorkerBeat,
    /// The webhook worker's liveness.
    pub webhook_worker: WorkerBeat,
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

    /// The workers by name, for `/readyz` and `/metrics`.
    pub fn workers(&self) -> [(&'static str, &WorkerBeat); 2] {
        [
            ("email", &self.email_worker),
            ("webhooks", &self.webhook_worker),
        ]
    }

    /// Prometheus text; `stall_seconds` is how long a worker may go without a beat.
    pub fn render_with(&self, stall_seconds: u64) -> String {
        let mut out = self.render();
        out.push_str(
            "# HELP closeloop_worker_up 1 when the background worker is running and looped recently, 0 when it stalled or exited (absent when turned off).\n",
        );
        out.push_str("# TYPE closeloop_worker_up gauge\n");
        for (name, beat) in self.workers() {
            let up = match beat.health(stall_seconds) {
                WorkerHealth::Off => continue,
                WorkerHealth::Alive(_) => 1,
                WorkerHealth::Stalled(_) | WorkerHealth::Exited => 0,
            };
            out.push_str(&format!("closeloop_worker_up{{worker=\"{name}\"}} {up}\n"));
        }
        out.push_str("# HELP closeloop_worker_seconds_since_beat Seconds since the worker last looped or handled a message.\n");
        out.push_str("# TYPE closeloop_worker_seconds_since_beat gauge\n");
        for (name, beat) in self.workers() {
            let last = beat.last_ms.load(Ordering::Relaxed);
            if last > 0 {
                let ago = (unix_ms() - last).max(0) as f64 / 1000.0;
                out.push_str(&format!(
                    "closeloop_worker_seconds_since_beat{{worker=\"{name}\"}} {ago:.3}\n"
                ));
            }
        }
        out.push_str("# TYPE closeloop_send_panics_total counter\n");
        out.push_str(&format!(
            "closeloop_send_panics_total {}\n",
            self.send_panics.load(Ordering::Relaxed)
        ));
        out
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

/// The message of a caught panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs `fut` and turns a panic inside it into `Err` with the panic's message, so one bad
/// message can never stop a background worker.
pub async fn catch_panic<F: std::future::Future>(fut: F) -> Result<F::Output, String> {
    use futures_util::FutureExt;
    std::panic::AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(|p| panic_message(p.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_a_future_becomes_an_error_with_its_message() {
        let ok = catch_panic(async { 7 }).await;
        assert_eq!(ok, Ok(7));
        let text: Result<(), String> = catch_panic(async {
            panic!("header value contains CR");
        })
        .await;
        assert_eq!(text, Err("header value contains CR".into()));
        let owned: Result<(), String> = catch_panic(async {
            let n = 3;
            panic!("bad row {n}");
        })
        .await;
        assert_eq!(owned, Err("bad row 3".into()));
    }

    #[test]
    fn a_worker_is_off_alive_stalled_or_exited() {
        let beat = WorkerBeat::default();
        assert_eq!(beat.health(60), WorkerHealth::Off);
        {
            let _running = beat.start();
            assert!(matches!(beat.health(60), WorkerHealth::Alive(_)));
            beat.last_ms.store(unix_ms() - 5_000, Ordering::Relaxed);
            assert!(matches!(beat.health(2), WorkerHealth::Stalled(s) if s >= 5.0));
        }
        assert_eq!(beat.health(60), WorkerHealth::Exited);
    }
}
