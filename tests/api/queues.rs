//! The send queues stay up whatever one row holds: control characters are refused at the
//! API and made harmless in stored rows, a message that cannot be built fails alone, the
//! workers' liveness is reported, and failed or cancelled invitations can be retried.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app_with, Engine, TestApp};
use crate::smtp::TestSmtp;
use crate::{both_engines, each_engine};

async fn app_with_smtp(engine: Engine, smtp: &TestSmtp, extra: &[(&str, &str)]) -> TestApp {
    let url = smtp.url();
    let mut settings = vec![
        ("SMTP_URL", url.as_str()),
        ("SMTP_FROM", "Surveys <surveys@acme.test>"),
        ("PUBLIC_URL", "https://feedback.acme.test"),
        ("EMAIL_RETRY_BASE_SECONDS", "1"),
        ("DISPATCH_INTERVAL_MS", "50"),
        ("SMTP_POOL_SIZE", "4"),
    ];
    settings.extend_from_slice(extra);
    spawn_app_with(engine, &settings).await
}

async fn invitation(app: &TestApp, id: &str) -> Value {
    let a = app.get(&format!("/api/v1/invitations/{id}")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body
}

async fn wait_status(app: &TestApp, id: &str, status: &str, secs: u64) -> Value {
    eventually(secs, &format!("invitation {id} to be {status}"), || async {
        let inv = invitation(app, id).await;
        (inv["status"] == status).then_some(inv)
    })
    .await
}

/// Runs SQL on the test database directly (to store what the API refuses).
async fn sql(app: &TestApp, statement: String) {
    let state = app.app_state.clone();
    tokio::task::spawn_blocking(move || {
        use diesel::RunQueryDsl;
        let mut conn = state.db.get().unwrap();
        diesel::sql_query(statement).execute(&mut conn).unwrap();
    })
    .await
    .unwrap();
}

async fn control_characters_in_header_fields_are_refused(app: TestApp) {
    for brand in [
        "Acme\r\nBcc: evil@example.com",
        "Acme\nX",
        "Acme\rX",
        "A\u{0}B",
    ] {
        let a = app
            .post(
                "/api/v1/surveys",
                json!({"kind": "nps", "name": "x", "brand": brand}),
            )
            .await;
        assert_eq!(a.status, 422, "{brand:?}: {}", a.text);
        assert!(!a.field("brand").is_empty(), "{}", a.text);
    }
    let s = app.nps_survey().await;
    let id = s["id"].as_str().unwrap();
    let a = app
        .patch(
            &format!("/api/v1/surveys/{id}"),
            json!({"brand": "Acme\r\nBcc: x@y.z"}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(!a.field("brand").is_empty());
    assert_eq!(
        app.get(&format!("/api/v1/surveys/{id}")).await.body["brand"],
        "Acme"
    );

    let a = app
        .post(
            "/api/v1/contacts",
            json!({"email": "eve@example.com", "name": "Eve\r\nBcc: x@y.z"}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(
        a.field("name")[0].contains("control characters"),
        "{}",
        a.text
    );

    let a = app
        .post(
            &format!("/api/v1/surveys/{id}/invitations"),
            json!({"channel": "email", "contacts": [
                {"email": "eve@example.com", "name": "Eve\nBcc: x@y.z"},
                {"email": "ok@example.com", "name": "Ok"}
            ]}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["items"][0]["status"], "rejected");
    assert_eq!(a.body["items"][0]["reason"], "invalid_contact");
    assert!(a.body["items"][0]["message"]
        .as_str()
        .unwrap()
        .contains("name"));
    assert_eq!(a.body["items"][1]["status"], "scheduled");
}

/// Rows stored around the API (before it refused control characters, or by hand) cannot stop
/// the mail: line breaks in a brand or a name are made harmless, a message that cannot be
/// built fails alone with the reason, and the worker goes on.
async fn a_poison_row_among_good_ones_fails_alone(engine: Engine) {
    let smtp = TestSmtp::start();
    let app = app_with_smtp(engine, &smtp, &[]).await;
    let s = app
        .create_survey(json!({"kind": "nps", "name": "x", "brand": "Acme", "throttle_days": 0}))
        .await;
    let sid = s["id"].as_str().unwrap().to_string();
    let later = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
    let contacts: Vec<Value> = (0..6)
        .map(|i| json!({"email": format!("p{i}@example.com"), "name": format!("P{i}")}))
        .collect();
    let batch = app
        .post(
            &format!("/api/v1/surveys/{sid}/invitations"),
            json!({"channel": "email", "send_at": later, "contacts": contacts}),
        )
        .await;
    assert_eq!(batch.status, 200, "{}", batch.text);
    let ids: Vec<String> = batch.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["invitation_id"].as_str().unwrap().to_string())
        .collect();
    let contact = |i: usize| {
        batch.body["items"][i]["contact_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // What the API now refuses, stored directly.
    sql(
        &app,
        format!("UPDATE surveys SET brand = 'Acme' || CHR(13) || CHR(10) || 'Bcc: evil@example.com' WHERE id = '{sid}'")
            .replace("CHR(", if engine == Engine::Sqlite { "CHAR(" } else { "CHR(" }),
    )
    .await;
    sql(
        &app,
        format!(
            "UPDATE contacts SET name = 'Eve' || CHR(10) || 'Bcc: x@y.z' WHERE id = '{}'",
            contact(1)
        )
        .replace(
            "CHR(",
            if engine == Engine::Sqlite {
                "CHAR("
            } else {
                "CHR("
            },
        ),
    )
    .await;
    // A stored address that no message can be built for: the poison.
    sql(
        &app,
        format!(
            "UPDATE contacts SET email = 'not an address' WHERE id = '{}'",
            contact(3)
        ),
    )
    .await;
    sql(
        &app,
        format!("UPDATE invitations SET next_attempt_at = send_at - INTERVAL_1H WHERE survey_id = '{sid}'")
            .replace(
                "send_at - INTERVAL_1H",
                if engine == Engine::Sqlite {
                    "datetime('now', '-1 minute')"
                } else {
                    "NOW() AT TIME ZONE 'UTC' - INTERVAL '1 minute'"
                },
            ),
    )
    .await;
    // The outbox too: an email whose stored address is not one, beside a good one.
    let due = if engine == Engine::Sqlite {
        "datetime('now', '-1 minute')"
    } else {
        "NOW() AT TIME ZONE 'UTC' - INTERVAL '1 minute'"
    };
    for (id, to) in [
        ("eml_poison", "not an address"),
        ("eml_good", "lead@acme.test"),
    ] {
        sql(
            &app,
            format!(
                "INSERT INTO emails (id, kind, to_address, subject, body_text, status, attempts, next_attempt_at, created_at) \
                 VALUES ('{id}', 'followup_reply', '{to}', 'Hello' || CHR(13) || CHR(10) || 'Bcc: evil@example.com', 'Body', 'pending', 0, {due}, {due})"
            )
            .replace("CHR(", if engine == Engine::Sqlite { "CHAR(" } else { "CHR(" }),
        )
        .await;
    }
    app.app_state.wake_dispatcher.notify_one();

    let got = smtp.wait_for(6, 15).await;
    let failed = wait_status(&app, &ids[3], "failed", 10).await;
    assert_eq!(failed["reason"], "send_failed");
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .contains("invalid recipient"),
        "{failed}"
    );
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| *i != 3) {
        let inv = wait_status(&app, id, "sent", 10).await;
        assert_eq!(inv["attempts"], 1, "invitation {i}: {inv}");
    }
    for r in &got {
        assert_eq!(r.to.len(), 1, "one recipient each: {:?}", r.to);
        assert!(!r.to[0].contains("evil") && !r.to[0].contains("x@y.z"));
        let msg = r.parsed();
        assert!(msg.header_raw("Bcc").is_none(), "no injected header");
        assert!(msg.bcc().is_none());
    }
    let outbox = {
        let state = app.app_state.clone();
        eventually(10, "the outbox rows to be recorded", || {
            let state = state.clone();
            async move {
                let rows = tokio::task::spawn_blocking(move || {
                    use closeloop::store::schema::emails;
                    use diesel::prelude::*;
                    let mut conn = state.db.get().unwrap();
                    emails::table
                        .order(emails::id)
                        .select((emails::id, emails::status, emails::last_error))
                        .load::<(String, String, Option<String>)>(&mut conn)
                        .unwrap()
                })
                .await
                .unwrap();
                rows.iter()
                    .all(|r| r.1 != "pending" && r.1 != "sending")
                    .then_some(rows)
            }
        })
        .await
    };
    assert_eq!(outbox[0].0, "eml_good");
    assert_eq!(outbox[0].1, "sent");
    assert_eq!(outbox[1].0, "eml_poison");
    assert_eq!(outbox[1].1, "failed");
    assert!(
        outbox[1]
            .2
            .as_deref()
            .unwrap()
            .contains("invalid recipient"),
        "{outbox:?}"
    );
    let lead = got
        .iter()
        .find(|r| r.to[0] == "lead@acme.test")
        .expect("the good outbox email");
    assert_eq!(lead.parsed().subject(), Some("Hello Bcc: evil@example.com"));
    let eve = got
        .iter()
        .find(|r| r.to[0] == "p1@example.com")
        .expect("the contact with a line break in the name got the email");
    let raw = String::from_utf8_lossy(&eve.data).to_string();
    assert!(
        raw.contains("Eve Bcc: x@y.z"),
        "the name on one line: {raw}"
    );
    assert!(
        raw.contains("Acme Bcc: evil@example.com"),
        "the brand on one line"
    );

    // The worker goes on: a later invitation is sent, and it says it is alive.
    let more = app
        .post(
            &format!("/api/v1/surveys/{sid}/invitations"),
            json!({"channel": "email", "contacts": [{"email": "after@example.com"}]}),
        )
        .await;
    let after = more.body["items"][0]["invitation_id"].as_str().unwrap();
    wait_status(&app, after, "sent", 10).await;
    let ready = app.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.body["workers"]["email"], "ok");
    assert_eq!(ready.body["workers"]["webhooks"], "ok");
    let metrics = app.send(Method::GET, "/metrics", None, None).await;
    assert!(
        metrics
            .text
            .contains("closeloop_worker_up{worker=\"email\"} 1"),
        "{}",
        metrics.text
    );
}

/// A worker that stops looping (here: an SMTP server that accepts connections and never
/// answers) makes `/readyz` answer 503 with the reason, and its gauge drop to 0.
async fn a_stalled_worker_makes_readiness_fail(engine: Engine) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let url = format!("smtp://127.0.0.1:{port}");
    let app = spawn_app_with(
        engine,
        &[
            ("SMTP_URL", url.as_str()),
            ("DISPATCH_INTERVAL_MS", "50"),
            ("WORKER_STALL_SECONDS", "1"),
        ],
    )
    .await;
    let ready = app.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    let s = app.nps_survey().await;
    app.post(
        &format!("/api/v1/surveys/{}/invitations", s["id"].as_str().unwrap()),
        json!({"channel": "email", "contacts": [{"email": "a@example.com"}]}),
    )
    .await;
    let ready = eventually(10, "readyz to report the stalled worker", || async {
        let a = app.send(Method::GET, "/readyz", None, None).await;
        (a.status == 503).then_some(a)
    })
    .await;
    assert_eq!(ready.body["workers"]["email"], "stalled", "{}", ready.text);
    assert!(
        ready.body["reason"]
            .as_str()
            .unwrap()
            .contains("email worker has not looped"),
        "{}",
        ready.text
    );
    let metrics = app.send(Method::GET, "/metrics", None, None).await;
    assert!(
        metrics
            .text
            .contains("closeloop_worker_up{worker=\"email\"} 0"),
        "{}",
        metrics.text
    );
}

/// A failed send does not throttle the contact; failed and cancelled invitations can be put
/// back in the queue by an admin; only a delivered one throttles.
async fn a_failed_send_does_not_throttle_and_can_be_retried(engine: Engine) {
    let smtp = TestSmtp::start();
    smtp.always(550);
    let app = app_with_smtp(engine, &smtp, &[]).await;
    let first = app
        .create_survey(json!({"kind": "nps", "name": "one", "throttle_days": 30}))
        .await;
    let second = app
        .create_survey(json!({"kind": "csat", "name": "two", "throttle_days": 30}))
        .await;
    let invite = |sid: String| {
        let app = &app;
        async move {
            let a = app
                .post(
                    &format!("/api/v1/surveys/{sid}/invitations"),
                    json!({"channel": "email", "contacts": [{"email": "a@example.com"}]}),
                )
                .await;
            assert_eq!(a.status, 200, "{}", a.text);
            a.body["items"][0].clone()
        }
    };
    let item = invite(first["id"].as_str().unwrap().to_string()).await;
    assert_eq!(item["status"], "scheduled");
    let failed_id = item["invitation_id"].as_str().unwrap().to_string();
    let contact_id = item["contact_id"].as_str().unwrap().to_string();
    wait_status(&app, &failed_id, "failed", 10).await;
    let contact = app.get(&format!("/api/v1/contacts/{contact_id}")).await;
    assert!(
        contact.body["last_surveyed_at"].is_null(),
        "nothing was delivered: {}",
        contact.text
    );

    // Not throttled by the failed one.
    let item = invite(second["id"].as_str().unwrap().to_string()).await;
    assert_eq!(item["status"], "scheduled", "{item}");
    let second_id = item["invitation_id"].as_str().unwrap().to_string();
    let a = app
        .post(
            &format!("/api/v1/invitations/{second_id}/cancel"),
            json!({}),
        )
        .await;
    // It may already be on its way; then it fails like the first.
    if a.status == 200 {
        assert_eq!(a.body["status"], "cancelled");
    } else {
        wait_status(&app, &second_id, "failed", 10).await;
    }

    // Only admins retry, and only failed or cancelled invitations.
    let agent = app.key_with_role("agent").await;
    let a = app
        .send(
            Method::POST,
            &format!("/api/v1/invitations/{second_id}/retry"),
            Some(&agent),
            None,
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.text);
    let a = app
        .post(
            "/api/v1/invitations/inv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2/retry",
            json!({}),
        )
        .await;
    assert_eq!(a.status, 404, "{}", a.text);

    smtp.accept_all();
    let a = app
        .post(&format!("/api/v1/invitations/{second_id}/retry"), json!({}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["status"], "scheduled");
    assert_eq!(a.body["reason"], Value::Null);
    let sent = wait_status(&app, &second_id, "sent", 10).await;
    assert_eq!(sent["attempts"], 1, "attempts start again: {sent}");
    let a = app
        .post(&format!("/api/v1/invitations/{second_id}/retry"), json!({}))
        .await;
    assert_eq!(a.status, 409, "{}", a.text);
    assert_eq!(a.code(), "invitation_not_retryable");
    let contact = app.get(&format!("/api/v1/contacts/{contact_id}")).await;
    assert!(
        contact.body["last_surveyed_at"].is_string(),
        "{}",
        contact.text
    );

    // Retried now, the first is throttled by the one that was delivered.
    let a = app
        .post(&format!("/api/v1/invitations/{failed_id}/retry"), json!({}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let inv = wait_status(&app, &failed_id, "suppressed", 10).await;
    assert_eq!(inv["reason"], "throttled");
    assert_eq!(smtp.received().len(), 1);
}

both_engines!(control_characters_in_header_fields_are_refused);

each_engine!(
    a_poison_row_among_good_ones_fails_alone,
    a_stalled_worker_makes_readiness_fail,
    a_failed_send_does_not_throttle_and_can_be_retried,
);
