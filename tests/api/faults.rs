//! Fault tests with real processes: the SMTP server going down and up, `kill -9` in the
//! middle of a dispatch (the real binary, restarted with the same `INSTANCE_ID`), and two
//! replicas behind a relay slower than the lease. The SMTP sink counts what arrives per
//! Message-ID (one per invitation): nothing may be lost, and a message may arrive twice only
//! when a crash interrupted it in flight (at most `EMAIL_CONCURRENCY` per crash).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::each_engine;
use crate::helpers::{eventually, into_answer, spawn_app_with, Engine, TestDb};
use crate::smtp::{free_port, TestSmtp};

/// The real `closeloop` binary, serving on its own port.
struct Node {
    child: Child,
    base: String,
}

impl Node {
    async fn start(db_url: &str, env: &[(&str, &str)]) -> Node {
        Self::start_logging(db_url, env, None).await
    }

    /// Starts a node whose log (stderr) goes to `log`.
    async fn start_logging(
        db_url: &str,
        env: &[(&str, &str)],
        log: Option<&std::path::Path>,
    ) -> Node {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_closeloop"));
        cmd.env("DATABASE_URL", db_url)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("PUBLIC_URL", "https://feedback.acme.test")
            .env("HTTP_WORKERS", "1")
            .env("DB_POOL_SIZE", "4")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(match log {
                Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
                None => Stdio::null(),
            });
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start closeloop");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        eventually(30, "the node to answer /healthz", || async {
            client
                .get(format!("{base}/healthz"))
                .send()
                .await
                .ok()
                .filter(|r| r.status() == 200)
                .map(|_| ())
        })
        .await;
        Node { child, base }
    }

    /// SIGKILL: no shutdown, no chance to record anything.
    fn kill_9(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(db_url: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_closeloop"))
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn call(base: &str, key: &str, method: reqwest::Method, path: &str, body: Value) -> Value {
    let res = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let a = into_answer(res).await;
    assert!(a.status < 300, "{path}: {} {}", a.status, a.text);
    a.body
}

/// Waits until `n` different Message-IDs arrived.
async fn wait_distinct(smtp: &TestSmtp, n: usize, secs: u64) {
    eventually(secs, &format!("{n} different messages"), || async {
        (smtp.per_message_id().len() >= n).then_some(())
    })
    .await;
}

/// Messages that arrived more than once: (Message-IDs, extra copies).
fn duplicates(smtp: &TestSmtp) -> (usize, usize) {
    let counts = smtp.per_message_id();
    let twice = counts.values().filter(|n| **n > 1).count();
    let extra = counts.values().map(|n| n - 1).sum();
    (twice, extra)
}

/// `EMAIL_CONCURRENCY` in the kill test (`KILL9_CONCURRENCY` overrides it, to measure other
/// settings for BENCHMARKS.md).
fn kill9_concurrency() -> usize {
    std::env::var("KILL9_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

async fn kill_9_mid_dispatch_loses_nothing_and_repeats_at_most_the_messages_in_flight(
    engine: Engine,
) {
    const N: usize = 300;
    let db = tokio::task::spawn_blocking(move || TestDb::new(engine))
        .await
        .unwrap();
    cli(&db.url, &["migrate"]);
    let key = cli(
        &db.url,
        &["api-key", "create", "--name", "fault", "--role", "admin"],
    )
    .lines()
    .last()
    .unwrap()
    .trim()
    .to_string();
    let smtp = TestSmtp::start();
    smtp.delay(10);
    let smtp_url = smtp.url();
    let limit = kill9_concurrency();
    let concurrency = limit.to_string();
    let env = [
        ("SMTP_URL", smtp_url.as_str()),
        ("INSTANCE_ID", "fault-node-1"),
        ("EMAIL_CONCURRENCY", concurrency.as_str()),
        ("SMTP_POOL_SIZE", concurrency.as_str()),
        ("EMAIL_BATCH_SIZE", "100"),
        ("DISPATCH_INTERVAL_MS", "50"),
    ];
    let mut first = Node::start(&db.url, &env).await;
    let survey = call(
        &first.base,
        &key,
        reqwest::Method::POST,
        "/api/v1/surveys",
        json!({"kind": "nps", "name": "crash", "brand": "Acme", "throttle_days": 0}),
    )
    .await;
    let contacts: Vec<Value> = (0..N)
        .map(|i| json!({"email": format!("p{i}@example.com")}))
        .collect();
    call(
        &first.base,
        &key,
        reqwest::Method::POST,
        &format!(
            "/api/v1/surveys/{}/invitations",
            survey["id"].as_str().unwrap()
        ),
        json!({"channel": "email", "contacts": contacts}),
    )
    .await;
    smtp.wait_for(N / 4, 30).await;
    first.kill_9();
    let at_kill = smtp.received().len();
    assert!(
        at_kill < N,
        "killed mid-dispatch ({at_kill} of {N} arrived)"
    );

    // The same instance restarts: it takes its claims back at once, without waiting for the
    // 5-minute lease.
    let restarted = std::time::Instant::now();
    let second = Node::start(&db.url, &env).await;
    wait_distinct(&smtp, N, 30).await;
    let drained = restarted.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (twice, extra) = duplicates(&smtp);
    eprintln!(
        "kill -9 after {at_kill} of {N} messages ({engine:?}): 0 lost, {extra} duplicate(s) (EMAIL_CONCURRENCY={limit}); drained {drained:.1} s after the restart"
    );
    assert_eq!(smtp.per_message_id().len(), N, "nothing lost");
    assert!(
        extra <= limit && twice <= limit,
        "at most the messages in flight are repeated: {extra}"
    );
    for status in ["sending", "scheduled"] {
        let left = call(
            &second.base,
            &key,
            reqwest::Method::GET,
            &format!("/api/v1/invitations?status={status}"),
            json!(null),
        )
        .await;
        assert_eq!(left["items"], json!([]), "none left {status}");
    }
}

async fn an_smtp_outage_loses_nothing_and_sends_nothing_twice(engine: Engine) {
    const N: usize = 40;
    let port = free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let app = spawn_app_with(
        engine,
        &[
            ("SMTP_URL", url.as_str()),
            ("PUBLIC_URL", "https://feedback.acme.test"),
            ("EMAIL_RETRY_BASE_SECONDS", "1"),
            ("DISPATCH_INTERVAL_MS", "50"),
            ("EMAIL_CONCURRENCY", "4"),
            ("SMTP_POOL_SIZE", "4"),
        ],
    )
    .await;
    let s = app
        .create_survey(json!({"kind": "nps", "name": "x", "throttle_days": 0}))
        .await;
    let contacts: Vec<Value> = (0..N)
        .map(|i| json!({"email": format!("p{i}@example.com")}))
        .collect();
    let a = app
        .post(
            &format!("/api/v1/surveys/{}/invitations", s["id"].as_str().unwrap()),
            json!({"channel": "email", "contacts": contacts}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    // Every invitation failed once against the closed port.
    eventually(15, "a failed attempt for every invitation", || async {
        let a = app
            .get("/api/v1/invitations?status=scheduled&limit=100")
            .await;
        let items = a.body["items"].as_array().cloned().unwrap_or_default();
        (items.len() == N && items.iter().all(|i| i["attempts"].as_i64() >= Some(1))).then_some(())
    })
    .await;
    let smtp = TestSmtp::start_on(port);
    wait_distinct(&smtp, N, 30).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(smtp.per_message_id().len(), N, "nothing lost");
    assert_eq!(duplicates(&smtp), (0, 0), "nothing sent twice");
    let a = app.get("/api/v1/invitations?status=sent&limit=100").await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), N);
}

/// Two replicas on one PostgreSQL, a relay that takes longer per message than the whole
/// lease: the worker holding a batch keeps extending its lease, so the other replica never
/// takes its rows, and nothing is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_behind_a_relay_slower_than_the_lease_send_nothing_twice() {
    if std::env::var("TEST_POSTGRES_URL")
        .map(|v| v.is_empty())
        .unwrap_or(true)
    {
        eprintln!("TEST_POSTGRES_URL is not set: PostgreSQL variant not run");
        return;
    }
    const N: usize = 6;
    let smtp = TestSmtp::start();
    smtp.delay(1200);
    let url = smtp.url();
    let settings = [
        ("SMTP_URL", url.as_str()),
        ("PUBLIC_URL", "https://feedback.acme.test"),
        ("DISPATCH_INTERVAL_MS", "50"),
        ("EMAIL_LEASE_SECONDS", "3"),
        ("EMAIL_CONCURRENCY", "1"),
        ("SMTP_POOL_SIZE", "1"),
        ("EMAIL_BATCH_SIZE", "5"),
    ];
    let app = spawn_app_with(Engine::Postgres, &settings).await;
    let (replica, _outbox) = crate::helpers::spawn_replica(&app, &settings).await;
    tokio::spawn(replica.run_until_stopped());
    let s = app
        .create_survey(json!({"kind": "nps", "name": "slow", "throttle_days": 0}))
        .await;
    let contacts: Vec<Value> = (0..N)
        .map(|i| json!({"email": format!("p{i}@example.com")}))
        .collect();
    let a = app
        .post(
            &format!("/api/v1/surveys/{}/invitations", s["id"].as_str().unwrap()),
            json!({"channel": "email", "contacts": contacts}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    wait_distinct(&smtp, N, 30).await;
    // Past another lease: a replica that took over rows would send them now.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(smtp.per_message_id().len(), N, "nothing lost");
    assert_eq!(duplicates(&smtp), (0, 0), "nothing sent twice");
}

/// The final give-up is logged at WARN with the invitation id and the last error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giving_up_on_an_invitation_is_logged_with_its_id_and_last_error() {
    let db = TestDb::new(Engine::Sqlite);
    cli(&db.url, &["migrate"]);
    let key = cli(
        &db.url,
        &["api-key", "create", "--name", "log", "--role", "admin"],
    )
    .lines()
    .last()
    .unwrap()
    .trim()
    .to_string();
    let smtp = TestSmtp::start();
    smtp.always(451);
    let smtp_url = smtp.url();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("closeloop.log");
    let mut node = Node::start_logging(
        &db.url,
        &[
            ("SMTP_URL", smtp_url.as_str()),
            ("EMAIL_MAX_ATTEMPTS", "2"),
            ("EMAIL_RETRY_BASE_SECONDS", "0"),
            ("DISPATCH_INTERVAL_MS", "50"),
            ("LOG_FORMAT", "json"),
        ],
        Some(&log),
    )
    .await;
    let survey = call(
        &node.base,
        &key,
        reqwest::Method::POST,
        "/api/v1/surveys",
        json!({"kind": "nps", "name": "log"}),
    )
    .await;
    let batch = call(
        &node.base,
        &key,
        reqwest::Method::POST,
        &format!(
            "/api/v1/surveys/{}/invitations",
            survey["id"].as_str().unwrap()
        ),
        json!({"channel": "email", "contacts": [{"email": "a@example.com"}]}),
    )
    .await;
    let id = batch["items"][0]["invitation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let base = node.base.clone();
    eventually(15, "the invitation to fail", || async {
        let inv = call(
            &base,
            &key,
            reqwest::Method::GET,
            &format!("/api/v1/invitations/{id}"),
            json!(null),
        )
        .await;
        (inv["status"] == "failed").then_some(())
    })
    .await;
    node.kill_9();
    let text = std::fs::read_to_string(&log).unwrap();
    let give_up: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["invitation"] == id.as_str()
                && v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("giving up"))
        })
        .collect();
    assert_eq!(give_up.len(), 1, "one give-up line: {text}");
    assert_eq!(give_up[0]["level"], "WARN");
    assert!(
        give_up[0]["error"].as_str().unwrap().contains("451"),
        "{}",
        give_up[0]
    );
}

each_engine!(
    kill_9_mid_dispatch_loses_nothing_and_repeats_at_most_the_messages_in_flight,
    an_smtp_outage_loses_nothing_and_sends_nothing_twice,
);
