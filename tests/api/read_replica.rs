//! `DATABASE_READ_URL`: lists, reports and exports read from the replica, everything else
//! from the primary, and reads fall back to the primary when the replica is down. The
//! "replica" here is another database with different content, so the test can see which
//! pool served each read (a real streaming replica is in `benches/ha.sh`).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::each_engine;
use crate::helpers::{spawn_app, spawn_replica, test_settings, Engine, TestApp};

each_engine!(
    lists_and_reports_read_from_the_replica_and_everything_else_from_the_primary,
    reads_fall_back_to_the_primary_when_the_replica_is_down,
);

/// A server on `primary`'s database with `DATABASE_READ_URL` = `read_url`, and its address.
async fn with_read_url(primary: &TestApp, read_url: &str) -> (String, tempfile::TempDir) {
    let (server, outbox) = spawn_replica(primary, &[("DATABASE_READ_URL", read_url)]).await;
    let address = format!("http://127.0.0.1:{}", server.port());
    tokio::spawn(server.run_until_stopped());
    (address, outbox)
}

async fn get(app: &TestApp, base: &str, path: &str) -> (u16, serde_json::Value, String) {
    let res = app
        .client
        .request(Method::GET, format!("{base}{path}"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_default(),
        text,
    )
}

fn names(list: &serde_json::Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// SQLite has no replicas: the setting is refused at start with a clear message.
fn sqlite_refuses_a_read_url() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("DATABASE_URL", "sqlite://x.db"),
        ("DATABASE_READ_URL", "postgres://postgres@127.0.0.1:5432/x"),
    ];
    let err = closeloop::config::Settings::from_lookup(|k| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap_err();
    assert_eq!(err.name, "DATABASE_READ_URL");
    assert!(
        err.to_string()
            .contains("needs a PostgreSQL DATABASE_URL (SQLite has no replicas)"),
        "{err}"
    );
    drop(dir);
}

async fn lists_and_reports_read_from_the_replica_and_everything_else_from_the_primary(
    engine: Engine,
) {
    if engine == Engine::Sqlite {
        return sqlite_refuses_a_read_url();
    }
    let primary = spawn_app(engine).await;
    let other = spawn_app(engine).await;
    let on_primary = primary
        .create_survey(json!({"kind": "nps", "name": "on the primary"}))
        .await;
    let on_replica = other
        .create_survey(json!({"kind": "csat", "name": "on the replica"}))
        .await;
    let (base, _outbox) = with_read_url(&primary, &other.db.url).await;

    // The list comes from the replica: it shows the replica's survey only.
    let (status, list, text) = get(&primary, &base, "/api/v1/surveys").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(names(&list), ["on the replica"]);
    // So does a report (the survey exists only there).
    let (status, report, text) = get(
        &primary,
        &base,
        &format!(
            "/api/v1/surveys/{}/report",
            on_replica["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(report["responses"], 0);
    // One resource by id reads the primary, as the API key check does.
    let (status, one, text) = get(
        &primary,
        &base,
        &format!("/api/v1/surveys/{}", on_primary["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(one["name"], "on the primary");
    // A write goes to the primary.
    let res = primary
        .client
        .post(format!("{base}/api/v1/surveys"))
        .bearer_auth(&primary.key)
        .json(&json!({"kind": "nps", "name": "written through the replica's server"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let (_, list, _) = get(&primary, &primary.address, "/api/v1/surveys").await;
    assert!(
        names(&list).contains(&"written through the replica's server".to_string()),
        "{list}"
    );
    // /readyz reports both pools.
    let (status, ready, text) = get(&primary, &base, "/readyz").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(ready["pools"], json!({"primary": "ok", "replica": "ok"}));
    let (_, ready, _) = get(&primary, &primary.address, "/readyz").await;
    assert_eq!(ready["pools"], json!({"primary": "ok"}));
    // Nothing fell back.
    let (_, _, metrics) = get(&primary, &base, "/metrics").await;
    assert!(
        metrics.contains("closeloop_db_read_fallback_total 0"),
        "{metrics}"
    );
    assert!(metrics.contains("pool=\"replica\""), "{metrics}");
}

async fn reads_fall_back_to_the_primary_when_the_replica_is_down(engine: Engine) {
    if engine == Engine::Sqlite {
        // SQLite refuses the setting (see above); nothing to fall back from.
        let dir = tempfile::tempdir().unwrap();
        let s = test_settings("sqlite://x.db", dir.path(), &[]);
        assert!(s.database_read_url.is_none());
        return;
    }
    let primary = spawn_app(engine).await;
    primary
        .create_survey(json!({"kind": "nps", "name": "on the primary"}))
        .await;
    // A port where nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (base, _outbox) = with_read_url(
        &primary,
        &format!("postgres://postgres@127.0.0.1:{closed}/nowhere"),
    )
    .await;

    for round in 0..3 {
        let started = Instant::now();
        let (status, list, text) = get(&primary, &base, "/api/v1/surveys").await;
        assert_eq!(status, 200, "round {round}: {text}");
        assert_eq!(names(&list), ["on the primary"]);
        // The first read waits for the replica at most a second; later ones skip it.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "round {round} took {:?}",
            started.elapsed()
        );
    }
    let (status, _, text) = get(&primary, &base, "/api/v1/reports?kind=nps").await;
    assert_eq!(status, 200, "{text}");

    let (_, _, metrics) = get(&primary, &base, "/metrics").await;
    let fallbacks: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("closeloop_db_read_fallback_total "))
        .expect("the fallback counter is exported")
        .trim()
        .parse()
        .unwrap();
    assert!(fallbacks >= 3.0, "{metrics}");
    // Ready: the primary answers, the replica is reported down.
    let (status, ready, text) = get(&primary, &base, "/readyz").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        ready["pools"],
        json!({"primary": "ok", "replica": "unavailable"})
    );
}
