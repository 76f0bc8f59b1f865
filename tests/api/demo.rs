//! `closeloop demo`: a fresh database filled with believable data and a sign-in link.

use std::process::{Command, Output};

use serde_json::Value;

use crate::each_engine;
use crate::helpers::{spawn_app_on, Engine, TestApp, TestDb};

async fn demo(db_url: &str, args: &[&str]) -> Output {
    let (url, args): (String, Vec<String>) =
        (db_url.into(), args.iter().map(|a| a.to_string()).collect());
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_closeloop"))
            .arg("demo")
            .args(args)
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "warn")
            .env("SMTP_URL", "smtp://127.0.0.1:1")
            .env("TEAM_EMAIL", "team@acme.test")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn last_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string()
}

async fn count(app: &TestApp, path: &str) -> usize {
    let a = app.get(path).await;
    assert_eq!(a.status, 200, "{path}: {}", a.text);
    a.body["items"].as_array().unwrap().len()
}

async fn report(app: &TestApp, query: &str) -> Value {
    let from = (chrono::Utc::now() - chrono::TimeDelta::days(91)).format("%Y-%m-%d");
    let a = app
        .get(&format!(
            "{query}{}from={from}",
            if query.contains('?') { "&" } else { "?" }
        ))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body
}

async fn the_demo_fills_a_fresh_database_once_and_prints_a_sign_in_link(engine: Engine) {
    let db = tokio::task::spawn_blocking(move || TestDb::new(engine))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let out = demo(&db.url, &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = started.elapsed();
    let link = last_line(&out);
    let at = link.find("/app/login/").expect("a sign-in link last");
    assert!(!link.contains(' '), "{link}");
    let path = link[at..].to_string();

    let app = spawn_app_on(db, engine, &[]).await;
    // The link signs in: its page has the one button.
    let res = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("<button type=\"submit\" autofocus>Sign in</button>"),
        "{page}"
    );
    let res = app.post_form(&path, None, &[]).await;
    assert_eq!(res.status().as_u16(), 303, "the link starts a session");

    // Three surveys: NPS in English, CSAT in German, NPS with a public link.
    let surveys = app.get("/api/v1/surveys").await.body["items"].clone();
    let surveys = surveys.as_array().unwrap();
    assert_eq!(surveys.len(), 3);
    let kinds: Vec<(&str, &str, bool)> = surveys
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap(),
                s["locale"].as_str().unwrap(),
                s["public_url"].is_string(),
            )
        })
        .collect();
    for want in [
        ("nps", "en", false),
        ("csat", "de", false),
        ("nps", "en", true),
    ] {
        assert!(kinds.contains(&want), "{want:?} in {kinds:?}");
    }
    // About 2,000 answers over 90 days, counted by the reports (rollups rebuilt).
    let nps = report(&app, "/api/v1/reports?kind=nps").await;
    let csat = report(&app, "/api/v1/reports?kind=csat").await;
    let answers = nps["responses"].as_i64().unwrap() + csat["responses"].as_i64().unwrap();
    assert!((1800..=2200).contains(&answers), "{answers} answers");
    assert!(nps["invitations_delivered"].as_i64().unwrap() > 500);
    // Follow-ups in every status, assigned among the demo members.
    for status in ["open", "in_progress", "resolved", "dismissed"] {
        assert!(
            count(&app, &format!("/api/v1/followups?status={status}&limit=5")).await > 0,
            "a {status} task"
        );
    }
    assert!(
        count(
            &app,
            "/api/v1/followups?assignee=lea@demo.closeloop.test&limit=5"
        )
        .await
            > 0
    );
    // Resolved detractors were re-surveyed, and some came back happier.
    let product = surveys
        .iter()
        .find(|s| s["resurvey_after_days"].is_i64())
        .expect("the NPS survey re-surveys");
    let r = report(
        &app,
        &format!("/api/v1/surveys/{}/report", product["id"].as_str().unwrap()),
    )
    .await;
    let rec = &r["recovery"];
    assert!(rec["resurveyed"].as_i64().unwrap() >= 3, "{rec}");
    assert!(rec["recovered"].as_i64().unwrap() >= 1, "{rec}");
    assert!(rec["average_score_change"].as_f64().unwrap() > 0.0, "{rec}");
    // Nothing was queued for sending: back-dated invitations are recorded as sent.
    assert_eq!(count(&app, "/api/v1/invitations?status=scheduled").await, 0);
    assert_eq!(
        std::fs::read_dir(app.outbox.path()).unwrap().count(),
        0,
        "no email written"
    );
    assert!(
        took < std::time::Duration::from_secs(60),
        "the demo took {took:?}"
    );

    // A second run refuses, with a clear message; --force adds to it.
    let again = demo(&app.db.url, &[]).await;
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("already has data") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(count(&app, "/api/v1/surveys").await, 3);
    let forced = demo(&app.db.url, &["--force"]).await;
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert!(last_line(&forced).contains("/app/login/"));
    assert_eq!(count(&app, "/api/v1/surveys").await, 6);
}

each_engine!(the_demo_fills_a_fresh_database_once_and_prints_a_sign_in_link);
