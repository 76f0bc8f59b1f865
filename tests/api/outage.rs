//! With the database gone, requests answer 503 fast (within 2 s, not the pool's old 10 s),
//! with `Retry-After` on pages too, and a customer who sent an answer is told plainly that
//! it was NOT saved. (tests/faults/pg_outage.sh stops and restarts a whole PostgreSQL
//! cluster and checks recovery too.)

use std::time::{Duration, Instant};

use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_gives_fast_honest_503s() {
    let Ok(admin_url) = std::env::var("TEST_POSTGRES_URL") else {
        eprintln!("TEST_POSTGRES_URL is not set: PostgreSQL variant not run");
        return;
    };
    if admin_url.is_empty() {
        eprintln!("TEST_POSTGRES_URL is not set: PostgreSQL variant not run");
        return;
    }
    let app = crate::helpers::spawn_app(crate::helpers::Engine::Postgres).await;
    let survey = app
        .create_survey(json!({"kind": "nps", "name": "outage", "public_link": true}))
        .await;
    let sid = survey["id"].as_str().unwrap();
    let batch = app
        .post(
            &format!("/api/v1/surveys/{sid}/invitations"),
            json!({"channel": "link", "contacts": [{"email": "o@example.com"}]}),
        )
        .await;
    let url = batch.body["items"][0]["url"].as_str().unwrap();
    let token = url.rsplit('/').next().unwrap().to_string();
    let name = app.db.url.rsplit('/').next().unwrap().to_string();
    tokio::task::spawn_blocking(move || {
        use diesel::{Connection, RunQueryDsl};
        let mut conn = diesel::PgConnection::establish(&admin_url).unwrap();
        diesel::sql_query(format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut conn)
            .unwrap();
    })
    .await
    .unwrap();

    let timed = |req: reqwest::RequestBuilder| async move {
        let started = Instant::now();
        let res = req.send().await.unwrap();
        let took = started.elapsed();
        let status = res.status().as_u16();
        let retry = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        (status, retry, res.text().await.unwrap(), took)
    };
    let limit = Duration::from_secs(2);
    // A page, an answer, the API.
    let (status, retry, html, took) = timed(app.client.get(app.url(&format!("/s/{token}")))).await;
    assert_eq!(status, 503, "{html}");
    assert!(took < limit, "GET page took {took:?}");
    assert!(retry.is_some(), "no Retry-After on the page");
    let (status, retry, html, took) = timed(
        app.client
            .post(app.url(&format!("/s/{token}")))
            .form(&[("score", "3"), ("comment", "the app crashes")]),
    )
    .await;
    assert_eq!(status, 503, "{html}");
    assert!(took < limit, "POST page took {took:?}");
    assert!(retry.is_some(), "no Retry-After on the POST page");
    assert!(html.contains("NOT been saved"), "{html}");
    assert!(!html.contains("Nothing you sent was lost"), "{html}");
    let (status, retry, text, took) = timed(
        app.client
            .get(app.url("/api/v1/surveys"))
            .bearer_auth(&app.key),
    )
    .await;
    assert_eq!(status, 503, "{text}");
    assert!(took < limit, "API took {took:?}");
    assert!(retry.is_some());
}

/// When the answer cannot be stored (here: another process holds SQLite's write lock past
/// the busy timeout), the survey page comes back as sent: the score still chosen, the
/// comment still typed, a plain "NOT saved yet, press Send again", a 503 and `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_could_not_be_stored_keeps_the_form() {
    let app = crate::helpers::spawn_app(crate::helpers::Engine::Sqlite).await;
    let survey = app
        .create_survey(json!({"kind": "nps", "name": "locked"}))
        .await;
    let sid = survey["id"].as_str().unwrap();
    let batch = app
        .post(
            &format!("/api/v1/surveys/{sid}/invitations"),
            json!({"channel": "link", "contacts": [{"email": "l@example.com"}]}),
        )
        .await;
    let url = batch.body["items"][0]["url"].as_str().unwrap();
    let token = url.rsplit('/').next().unwrap().to_string();
    // Another process takes the write lock and keeps it.
    let path = app.db.url.trim_start_matches("sqlite://").to_string();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let mut conn = diesel::SqliteConnection::establish(&path).unwrap();
        conn.batch_execute("BEGIN IMMEDIATE").unwrap();
        locked_tx.send(()).unwrap();
        let _ = release_rx.recv_timeout(std::time::Duration::from_secs(60));
        conn.batch_execute("ROLLBACK").unwrap();
    });
    locked_rx.recv().unwrap();
    let res = app
        .client
        .post(app.url(&format!("/s/{token}")))
        .form(&[("score", "4"), ("comment", "checkout broke twice")])
        .send()
        .await
        .unwrap();
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().get("retry-after").is_some());
    let html = res.text().await.unwrap();
    assert!(html.contains("NOT been saved yet"), "{html}");
    assert!(html.contains("press Send again"), "{html}");
    assert!(!html.contains("was lost"), "{html}");
    assert!(html.contains("value=\"4\" checked"), "{html}");
    assert!(html.contains(">checkout broke twice</textarea>"), "{html}");
    // Nothing was stored; sending again works.
    let a = app.get("/api/v1/responses").await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 0);
    let res = app
        .client
        .post(app.url(&format!("/s/{token}")))
        .form(&[("score", "4"), ("comment", "checkout broke twice")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
}
