//! Logging setup and the in-process metrics behind `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    route: String,
    /// `2xx`, `4xx`, …
    status_class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnswerLabels {
    /// `nps` or `csat`.
    kind: String,
    /// `promoter`, `passive`, `detractor`, `satisfied`, `neutral`, `unsatisfied`.
    category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

/// Seconds buckets of the request latency histogram: 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS.into_iter())
}

/// One queue's depth for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueDepth {
    /// Rows waiting (scheduled invitations, pending emails, pending webhook deliveries).
    pub waiting: i64,
    /// Of those, the rows whose time has come.
    pub due: i64,
    /// Seconds since the oldest due row became due (0 when none is due).
    pub oldest_due_seconds: f64,
}

/// The gauges that need database queries, read at most every [`SNAPSHOT_EVERY`].
#[derive(Debug, Clone, Default)]
pub struct QueueSnapshot {
    /// By queue name: `invitations`, `emails`, `webhooks`.
    pub queues: Vec<(&'static str, QueueDepth)>,
    pub followups_open: i64,
    pub followups_in_progress: i64,
    pub followups_overdue: i64,
}

/// How old the queue snapshot may get before a scrape reads it again.
pub const SNAPSHOT_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// Connections of one pool, as r2d2 reports them.
#[derive(Debug, Clone, Copy)]
pub struct PoolState {
    pub in_use: u32,
    pub idle: u32,
}

/// The in-process metrics behind `/metrics`, exposed with the `prometheus-client` crate.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    rate_limited: Counter,
    answers: Family<AnswerLabels, Counter>,
    webhook_deliveries: Family<OutcomeLabels, Counter>,
    emails_sent: Family<KindLabels, Counter>,
    emails_failed: Family<KindLabels, Counter>,
    /// Sends that panicked (caught; the message was marked failed).
    send_panics: Counter,
    /// Rows pruned by the daily housekeeping job, by table.
    pruned_rows: Family<TableLabels, Counter>,
    worker_up: Family<WorkerLabels, Gauge>,
    worker_since_beat: Family<WorkerLabels, Gauge<f64, AtomicU64>>,
    pool_connections: Family<PoolLabels, Gauge>,
    queue_waiting: Family<QueueLabels, Gauge>,
    queue_due: Family<QueueLabels, Gauge>,
    queue_oldest_due: Family<QueueLabels, Gauge<f64, AtomicU64>>,
    followups: Family<StatusLabels, Gauge>,
    followups_overdue: Gauge,
    /// When the queue gauges were last read (None: never).
    snapshot_at: Mutex<Option<Instant>>,
    /// The email dispatcher's liveness.
    pub email_worker: WorkerBeat,
    /// The webhook worker's liveness.
    pub webhook_worker: WorkerBeat,
    /// Requests answered since start, all routes (one atomic add per request): the idle
    /// memory trim (`startup::release_memory_when_idle`) waits for it to stand still.
    requests_total: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "closeloop_http_requests",
            "HTTP requests by method, route pattern and status",
            requests.clone(),
        );
        let latency = Family::<LatencyLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register_with_unit(
            "closeloop_http_request_duration",
            "Time to answer an HTTP request, by route pattern and status class",
            Unit::Seconds,
            latency.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "closeloop_rate_limited",
            "Requests refused with 429 Too Many Requests by a rate limit",
            rate_limited.clone(),
        );
        let answers = Family::<AnswerLabels, Counter>::default();
        registry.register(
            "closeloop_answers",
            "New answers recorded, by survey kind and category (a changed answer is not counted again)",
            answers.clone(),
        );
        let webhook_deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "closeloop_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, retry, failed, gone)",
            webhook_deliveries.clone(),
        );
        let emails_sent = Family::<KindLabels, Counter>::default();
        registry.register(
            "closeloop_emails_sent",
            "Emails handed to the SMTP server, by kind (invitation, reminder, alert, reply, digest, sign_in, …)",
            emails_sent.clone(),
        );
        let emails_failed = Family::<KindLabels, Counter>::default();
        registry.register(
            "closeloop_emails_failed",
            "Emails given up on (permanent error or attempts exhausted), by kind",
            emails_failed.clone(),
        );
        let send_panics = Counter::default();
        registry.register(
            "closeloop_send_panics",
            "Sends that panicked; the message was marked failed and the worker went on",
            send_panics.clone(),
        );
        let pruned_rows = Family::<TableLabels, Counter>::default();
        registry.register(
            "closeloop_pruned_rows",
            "Rows pruned by the daily housekeeping job (RETENTION_DAYS), by table (email_bodies, webhook_deliveries, webhook_attempts, sign_in_tokens, sessions, idempotency_records, job_runs)",
            pruned_rows.clone(),
        );
        let worker_up = Family::<WorkerLabels, Gauge>::default();
        registry.register(
            "closeloop_worker_up",
            "1 when the background worker is running and looped recently, 0 when it stalled or exited (absent when turned off)",
            worker_up.clone(),
        );
        let worker_since_beat = Family::<WorkerLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "closeloop_worker_seconds_since_beat",
            "Seconds since the worker last looped or handled a message",
            worker_since_beat.clone(),
        );
        let pool_connections = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "closeloop_db_pool_connections",
            "Database pool connections by pool (read, write on SQLite, replica with DATABASE_READ_URL) and state (in_use, idle)",
            pool_connections.clone(),
        );
        let queue_waiting = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "closeloop_queue_waiting",
            "Rows waiting in a queue: scheduled invitations, pending emails, pending webhook deliveries (refreshed at most every 15 s)",
            queue_waiting.clone(),
        );
        let queue_due = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "closeloop_queue_due",
            "Waiting rows whose time has come, by queue (refreshed at most every 15 s)",
            queue_due.clone(),
        );
        let queue_oldest_due = Family::<QueueLabels, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "closeloop_queue_oldest_due_age",
            "Age of the oldest due row, by queue; 0 when none is due (refreshed at most every 15 s)",
            Unit::Seconds,
            queue_oldest_due.clone(),
        );
        let followups = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "closeloop_followups",
            "Follow-up tasks not yet resolved, by status (open, in_progress) (refreshed at most every 15 s)",
            followups.clone(),
        );
        let followups_overdue = Gauge::default();
        registry.register(
            "closeloop_followups_overdue",
            "Follow-up tasks open or in progress past their due time (refreshed at most every 15 s)",
            followups_overdue.clone(),
        );
        let build_info = Family::<VersionLabels, Gauge>::default();
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        registry.register(
            "closeloop_build_info",
            "Always 1; the label carries the running version",
            build_info,
        );
        // Known label values start at 0, so a dashboard's rate() has a series before the first
        // event of its kind.
        for (kind, category) in [
            ("nps", "promoter"),
            ("nps", "passive"),
            ("nps", "detractor"),
            ("csat", "satisfied"),
            ("csat", "neutral"),
            ("csat", "unsatisfied"),
        ] {
            let _ = answers.get_or_create(&AnswerLabels {
                kind: kind.into(),
                category: category.into(),
            });
        }
        for outcome in ["delivered", "retry", "failed", "gone"] {
            let _ = webhook_deliveries.get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            });
        }
        for kind in ["invitation", "reminder"] {
            let _ = emails_sent.get_or_create(&KindLabels { kind: kind.into() });
            let _ = emails_failed.get_or_create(&KindLabels { kind: kind.into() });
        }
        Metrics {
            registry,
            requests,
            latency,
            rate_limited,
            answers,
            webhook_deliveries,
            emails_sent,
            emails_failed,
            send_panics,
            pruned_rows,
            worker_up,
            worker_since_beat,
            pool_connections,
            queue_waiting,
            queue_due,
            queue_oldest_due,
            followups,
            followups_overdue,
            snapshot_at: Mutex::new(None),
            email_worker: WorkerBeat::default(),
            webhook_worker: WorkerBeat::default(),
            requests_total: AtomicU64::new(0),
        }
    }
}

/// `2xx`, `4xx`, … of an HTTP status.
fn status_class(status: u16) -> String {
    format!("{}xx", status / 100)
}

impl Metrics {
    /// Requests answered since start.
    pub fn requests_total(&self) -> u64 {
        self.requests_total.load(Ordering::Relaxed)
    }

    /// One answered request; `route` is the pattern (`/api/v1/surveys/{id}`), never the path.
    pub fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                route: route.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                route: route.to_string(),
                status_class: status_class(status),
            })
            .observe(seconds);
        if status == 429 {
            self.rate_limited.inc();
        }
    }

    pub fn answer_recorded(&self, kind: &str, category: &str) {
        self.answers
            .get_or_create(&AnswerLabels {
                kind: kind.into(),
                category: category.into(),
            })
            .inc();
    }

    pub fn webhook_delivery(&self, outcome: &str) {
        self.webhook_deliveries
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn email_sent(&self, kind: &str) {
        self.emails_sent
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    /// Emails of `kind` sent by this process so far.
    pub fn emails_sent_of(&self, kind: &str) -> u64 {
        self.emails_sent
            .get_or_create(&KindLabels { kind: kind.into() })
            .get()
    }

    pub fn email_failed(&self, kind: &str) {
        self.emails_failed
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    /// `n` rows of `table` pruned by the housekeeping job.
    pub fn pruned(&self, table: &str, n: u64) {
        self.pruned_rows
            .get_or_create(&TableLabels {
                table: table.into(),
            })
            .inc_by(n);
    }

    /// Rows of `table` pruned by this process so far.
    pub fn pruned_of(&self, table: &str) -> u64 {
        self.pruned_rows
            .get_or_create(&TableLabels {
                table: table.into(),
            })
            .get()
    }

    pub fn send_panicked(&self) {
        self.send_panics.inc();
    }

    /// True when the queue gauges are older than [`SNAPSHOT_EVERY`] (or were never read); it
    /// then counts them as refreshed now, so concurrent scrapes read the database only once.
    pub fn claim_snapshot(&self) -> bool {
        let Ok(mut at) = self.snapshot_at.lock() else {
            return false;
        };
        match *at {
            Some(t) if t.elapsed() < SNAPSHOT_EVERY => false,
            _ => {
                *at = Some(Instant::now());
                true
            }
        }
    }

    /// Sets the queue and follow-up gauges from a fresh snapshot.
    pub fn set_snapshot(&self, s: &QueueSnapshot) {
        for (name, q) in &s.queues {
            let labels = QueueLabels {
                queue: name.to_string(),
            };
            self.queue_waiting.get_or_create(&labels).set(q.waiting);
            self.queue_due.get_or_create(&labels).set(q.due);
            self.queue_oldest_due
                .get_or_create(&labels)
                .set(q.oldest_due_seconds);
        }
        for (status, n) in [
            ("open", s.followups_open),
            ("in_progress", s.followups_in_progress),
        ] {
            self.followups
                .get_or_create(&StatusLabels {
                    status: status.into(),
                })
                .set(n);
        }
        self.followups_overdue.set(s.followups_overdue);
    }

    /// The workers by name, for `/readyz` and `/metrics`.
    pub fn workers(&self) -> [(&'static str, &WorkerBeat); 2] {
        [
            ("email", &self.email_worker),
            ("webhooks", &self.webhook_worker),
        ]
    }

    /// Registers the store's counter of reads meant for the read replica that the primary
    /// served (`closeloop_db_read_fallback_total`).
    pub fn with_read_fallbacks(mut self, counter: Counter) -> Self {
        self.registry.register(
            "closeloop_db_read_fallback",
            "Reads meant for the read replica (DATABASE_READ_URL) that the primary served because the replica was down or unreachable",
            counter,
        );
        self
    }

    /// Prometheus text (OpenMetrics encoding); `stall_seconds` is how long a worker may go
    /// without a beat; `pools` the database pools' connections by name.
    pub fn render_with(&self, stall_seconds: u64, pools: &[(&str, PoolState)]) -> String {
        for (name, beat) in self.workers() {
            let labels = WorkerLabels {
                worker: name.into(),
            };
            let up = match beat.health(stall_seconds) {
                WorkerHealth::Off => continue,
                WorkerHealth::Alive(_) => 1,
                WorkerHealth::Stalled(_) | WorkerHealth::Exited => 0,
            };
            self.worker_up.get_or_create(&labels).set(up);
            let last = beat.last_ms.load(Ordering::Relaxed);
            let ago = (unix_ms() - last).max(0) as f64 / 1000.0;
            self.worker_since_beat.get_or_create(&labels).set(ago);
        }
        for (pool, state) in pools {
            for (word, n) in [("in_use", state.in_use), ("idle", state.idle)] {
                self.pool_connections
                    .get_or_create(&PoolLabels {
                        pool: pool.to_string(),
                        state: word.into(),
                    })
                    .set(n as i64);
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
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
