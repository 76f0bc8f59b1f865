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

/// A server on a fresh SQLite file, logging at `info` in `format`, read up to its
/// "closeloop is serving" line: the child, the rest of its log, and what it logged so far.
fn start_server(
    dir: &std::path::Path,
    format: &str,
) -> (
    std::process::Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
    String,
) {
    use std::io::{BufRead, BufReader};
    let db = format!("sqlite://{}", dir.join("start.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_closeloop"))
        .env("DATABASE_URL", &db)
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("OUTBOX_DIR", dir.join("outbox"))
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", format)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("closeloop is serving") {
            break;
        }
    }
    (child, lines, seen)
}

/// At start the server says where it listens, which engine it uses and which migrations it
/// applied, so a newcomer sees at once what happened.
#[test]
fn the_server_logs_its_url_engine_and_migrations_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _, seen) = start_server(dir.path(), "text");
    child.kill().unwrap();
    let _ = child.wait();
    assert!(seen.contains("applied database migrations"), "{seen}");
    assert!(
        seen.contains("engine=\"sqlite\"") || seen.contains("engine=sqlite"),
        "{seen}"
    );
    assert!(seen.contains("url=http://127.0.0.1:"), "{seen}");
}

/// A JSON request log line carries `latency_ms` as a number, so log tools can graph it.
#[test]
fn json_request_logs_carry_latency_ms_as_a_number() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let (mut child, lines, seen) = start_server(dir.path(), "json");
    let serving: serde_json::Value = serde_json::from_str(seen.trim().lines().last().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {seen}"));
    let url = serving["url"].as_str().unwrap_or_else(|| panic!("{seen}"));
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut request = None;
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if v["message"] == "request" && v["route"] == "/healthz" {
            request = Some(v);
            break;
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    let request = request.expect("a request log line");
    assert!(request["latency_ms"].is_number(), "{request}");
    assert_eq!(request["status"], 200, "{request}");
}

/// The README's configuration table: `(name, default)` per row.
fn readme_settings() -> Vec<(String, String)> {
    let readme = include_str!("../../README.md");
    readme
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("| `")?;
            let (name, rest) = rest.split_once("` | ")?;
            if !name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                return None;
            }
            let default = rest.split(" | ").next()?.replace('`', "");
            Some((name.to_string(), default))
        })
        .collect()
}

#[test]
fn help_lists_every_setting_of_the_readme_with_its_default() {
    let out = closeloop("sqlite://unused.db", &["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let readme = readme_settings();
    assert!(readme.len() >= 40, "the README table was not found");
    for (name, default) in &readme {
        assert!(
            help.contains(&format!("  {name} [default: {default}]")),
            "{name} (default {default}) is missing from --help:\n{help}"
        );
    }
    let listed = help.lines().filter(|l| l.contains(" [default: ")).count();
    assert_eq!(
        listed,
        readme.len(),
        "--help lists a setting the README does not"
    );
}

#[test]
fn config_prints_the_effective_settings_with_secrets_masked() {
    let out = Command::new(env!("CARGO_BIN_EXE_closeloop"))
        .arg("config")
        .env("DATABASE_URL", "sqlite://unused.db")
        .env("SMTP_URL", "smtp://mailer:s3cret-pass@smtp.example.com:587")
        .env("SMTP_POOL_SIZE", "7")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("s3cret-pass"), "{text}");
    assert!(
        text.contains("SMTP_URL=smtp://mailer:********@smtp.example.com:587\n"),
        "{text}"
    );
    assert!(text.contains("SMTP_POOL_SIZE=7\n"), "{text}");
    assert!(text.contains("DB_POOL_SIZE=4  # default\n"), "{text}");
    assert_eq!(text.lines().count(), readme_settings().len(), "{text}");
    // A bad value is refused as at start-up.
    let bad = Command::new(env!("CARGO_BIN_EXE_closeloop"))
        .arg("config")
        .env("SMTP_POOL_SIZE", "lots")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("SMTP_POOL_SIZE"));
}
