//! Benchmark: dispatch 10,000 survey emails to a local SMTP sink.
//!
//! `cargo bench --bench dispatch` (SQLite); with `BENCH_POSTGRES_URL=postgres://…/postgres`
//! also on PostgreSQL. Prints emails/s and the peak RSS of the process (server + sink).
//!
//! The sink is an in-process SMTP server (mailin-embedded) that counts messages, unless
//! `BENCH_SMTP_URL` names another server (e.g. Postfix from `bash benches/postfix.sh`:
//! `BENCH_SMTP_URL=smtp://127.0.0.1:2526`); then an email counts as dispatched when its
//! invitation is recorded as sent, which happens after the server accepted it.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use closeloop::config::Settings;
use closeloop::domain::Role;
use closeloop::startup::Application;
use diesel::{Connection, RunQueryDsl};
use mailin_embedded::{Handler, Response, Server};
use serde_json::json;

const N: usize = 10_000;

#[derive(Clone)]
struct Sink(Arc<AtomicU64>);

impl Handler for Sink {
    fn data_end(&mut self) -> Response {
        self.0.fetch_add(1, Ordering::Relaxed);
        mailin_embedded::response::OK
    }
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Emails accepted so far: by the in-process sink, or by the external server (invitations
/// recorded as sent).
async fn accepted(
    sink: &Arc<AtomicU64>,
    state: &actix_web::web::Data<closeloop::context::AppState>,
) -> u64 {
    if std::env::var("BENCH_SMTP_URL").is_err() {
        return sink.load(Ordering::Relaxed);
    }
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = state.db.get().unwrap();
        diesel::sql_query("SELECT COUNT(*) AS n FROM invitations WHERE status = 'sent'")
            .get_result::<Count>(&mut conn)
            .unwrap()
            .n as u64
    })
    .await
    .unwrap()
}

async fn run(db_url: &str, label: &str, sink: &Arc<AtomicU64>, smtp_url: &str) {
    let outbox = tempfile::tempdir().unwrap();
    let env = [
        ("DATABASE_URL", db_url.to_string()),
        ("BIND_ADDR", "127.0.0.1:0".to_string()),
        ("SMTP_URL", smtp_url.to_string()),
        ("OUTBOX_DIR", outbox.path().display().to_string()),
        (
            "EMAIL_BATCH_SIZE",
            std::env::var("EMAIL_BATCH_SIZE").unwrap_or_else(|_| "500".into()),
        ),
        (
            "EMAIL_CONCURRENCY",
            std::env::var("EMAIL_CONCURRENCY").unwrap_or_else(|_| "32".into()),
        ),
        (
            "SMTP_POOL_SIZE",
            std::env::var("SMTP_POOL_SIZE").unwrap_or_else(|_| "16".into()),
        ),
        ("DISPATCHER", "off".to_string()),
        ("RUST_LOG", "warn".to_string()),
    ];
    let settings =
        Settings::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
            .unwrap();
    let app = Application::build(settings).await.unwrap();
    let port = app.port();
    let state = app.state.clone();
    tokio::spawn(app.run_until_stopped());
    let key = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            closeloop::store::api_keys::create(&mut state.db.get().unwrap(), "bench", Role::Admin)
                .unwrap()
                .1
        })
        .await
        .unwrap()
    };
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let survey: serde_json::Value = client
        .post(format!("{base}/surveys"))
        .bearer_auth(&key)
        .json(&json!({"kind": "nps", "name": "bench", "brand": "Acme", "throttle_days": 0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let made = Instant::now();
    for batch in 0..N / 1000 {
        let contacts: Vec<_> = (0..1000)
            .map(|i| json!({"email": format!("p{}@example.com", batch * 1000 + i), "name": "Pat"}))
            .collect();
        let res = client
            .post(format!(
                "{base}/surveys/{}/invitations",
                survey["id"].as_str().unwrap()
            ))
            .bearer_auth(&key)
            .json(&json!({"channel": "email", "contacts": contacts}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }
    let made = made.elapsed();
    let before = accepted(sink, &state).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    tokio::spawn(state.dispatcher().run(stopped));
    while accepted(sink, &state).await - before < N as u64 {
        assert!(started.elapsed() < Duration::from_secs(600), "too slow");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let _ = stop.send(true);
    println!(
        "{label}: created {N} invitations in {:.2}s ({:.0}/s); dispatched {N} emails in {:.2}s = {:.0} emails/s; peak RSS so far {:.0} MB",
        made.as_secs_f64(),
        N as f64 / made.as_secs_f64(),
        elapsed.as_secs_f64(),
        N as f64 / elapsed.as_secs_f64(),
        peak_rss_mb()
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let sink = Arc::new(AtomicU64::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let smtp_url = std::env::var("BENCH_SMTP_URL")
        .unwrap_or_else(|_| format!("smtp://127.0.0.1:{}", listener.local_addr().unwrap().port()));
    {
        let sink = Sink(sink.clone());
        std::thread::spawn(move || {
            let mut server = Server::new(sink);
            server.with_num_threads(64).with_tcp_listener(listener);
            let _ = server.serve();
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    run(&sqlite, "sqlite", &sink, &smtp_url).await;
    if let Ok(admin) = std::env::var("BENCH_POSTGRES_URL") {
        let name = format!("closeloop_bench_{}", std::process::id());
        let mut conn = diesel::PgConnection::establish(&admin).unwrap();
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&format!("/{name}"));
        run(url.as_str(), "postgres", &sink, &smtp_url).await;
        let _ = diesel::sql_query(format!("DROP DATABASE {name} WITH (FORCE)")).execute(&mut conn);
    }
}
