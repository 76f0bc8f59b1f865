//! The `closeloop` binary as an operator uses it.

use std::process::Command;

use reqwest::Method;

use crate::helpers::{test_settings, Engine, TestDb};

fn closeloop(db_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_closeloop"))
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_by_the_cli_is_printed_last_and_works() {
    let db = TestDb::new(Engine::Sqlite);
    let out = closeloop(&db.url, &["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = closeloop(
        &db.url,
        &["api-key", "create", "--name", "ops", "--role", "admin"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.lines().last().unwrap().trim().to_string();
    assert!(key.starts_with("cl_") && !key.contains(' '), "{stdout}");

    let outbox = tempfile::tempdir().unwrap();
    let app = closeloop::startup::Application::build(test_settings(&db.url, outbox.path(), &[]))
        .await
        .unwrap();
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    let res = reqwest::Client::new()
        .request(
            Method::POST,
            format!("http://127.0.0.1:{port}/api/v1/surveys"),
        )
        .bearer_auth(&key)
        .json(&serde_json::json!({"kind": "csat", "name": "from cli key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

#[test]
fn bad_cli_input_is_refused_with_a_message() {
    let db = TestDb::new(Engine::Sqlite);
    let out = closeloop(
        &db.url,
        &["api-key", "create", "--name", "x", "--role", "root"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("root"));
    let out = closeloop(
        &db.url,
        &["api-key", "create", "--name", "  ", "--role", "admin"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--name"));
}

#[test]
fn a_bad_setting_stops_the_server_with_one_clear_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_closeloop"))
        .env("BIND_ADDR", "nowhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("BIND_ADDR"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_closeloop"))
        .env("DATABASE_URL", "mysql://localhost/x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"));
}

#[test]
fn an_unreachable_database_stops_start_up_with_the_cause() {
    let out = Command::new(env!("CARGO_BIN_EXE_closeloop"))
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("BIND_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect to PostgreSQL"), "{stderr}");
}

/// At start the server says where it listens, which engine it uses and which migrations it
/// applied, so a newcomer sees at once what happened.
#[test]
fn the_server_logs_its_url_engine_and_migrations_at_start() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("start.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_closeloop"))
        .env("DATABASE_URL", &db)
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("OUTBOX_DIR", dir.path().join("outbox"))
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "text")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("closeloop is serving") {
            break;
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert!(seen.contains("applied database migrations"), "{seen}");
    assert!(
        seen.contains("engine=\"sqlite\"") || seen.contains("engine=sqlite"),
        "{seen}"
    );
    assert!(seen.contains("url=http://127.0.0.1:"), "{seen}");
}
