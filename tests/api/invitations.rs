use std::collections::HashSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app_with, Engine, TestApp};
use crate::smtp::{free_port, TestSmtp};
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

async fn invite(app: &TestApp, survey_id: &str, body: Value) -> Value {
    let a = app
        .post(&format!("/api/v1/surveys/{survey_id}/invitations"), body)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body
}

fn in_30_days() -> String {
    (chrono::Utc::now() + chrono::TimeDelta::days(30)).to_rfc3339()
}

async fn invitation(app: &TestApp, id: &str) -> Value {
    let a = app.get(&format!("/api/v1/invitations/{id}")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body
}

/// Waits until the invitation reaches `status`.
async fn wait_status(app: &TestApp, id: &str, status: &str, secs: u64) -> Value {
    let last = std::sync::Mutex::new(Value::Null);
    let what = format!("invitation {id} to be {status}");
    let found = tokio::time::timeout(
        std::time::Duration::from_secs(secs),
        eventually(secs + 1, &what, || async {
            let inv = invitation(app, id).await;
            *last.lock().unwrap() = inv.clone();
            (inv["status"] == status).then_some(inv)
        }),
    )
    .await;
    found.unwrap_or_else(|_| {
        panic!(
            "timed out waiting for {what}; last seen: {}",
            last.lock().unwrap()
        )
    })
}

fn header(msg: &mail_parser::Message<'_>, name: &str) -> String {
    msg.header_raw(name)
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

async fn three_invited_people_get_real_emails_with_working_links(engine: Engine) {
    let smtp = TestSmtp::start();
    let app = app_with_smtp(engine, &smtp, &[]).await;
    let survey = app
        .create_survey(
            json!({"kind": "nps", "name": "Q4", "brand": "Acme", "brand_color": "#0a7d4f"}),
        )
        .await;
    let sid = survey["id"].as_str().unwrap();
    let batch = invite(
        &app,
        sid,
        json!({"channel": "email", "contacts": [
            {"email": "ada@example.com", "name": "Ada"},
            {"email": "grace@example.com", "external_id": "cus_2"},
            {"email": "linus@example.com", "properties": {"plan": "pro"}}
        ]}),
    )
    .await;
    let items = batch["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(batch["summary"]["scheduled"], 3);
    for item in items {
        assert_eq!(item["status"], "scheduled", "{item}");
        assert!(item["url"]
            .as_str()
            .unwrap()
            .starts_with("https://feedback.acme.test/s/"));
    }

    let received = smtp.wait_for(3, 10).await;
    assert_eq!(received.len(), 3);
    let mut message_ids = HashSet::new();
    for (item, _) in items.iter().zip(0..) {
        let email = item["email"].as_str().unwrap();
        let url = item["url"].as_str().unwrap();
        let token = url.rsplit('/').next().unwrap();
        let got = received
            .iter()
            .find(|r| r.to.iter().any(|t| t.contains(email)))
            .unwrap_or_else(|| panic!("no message to {email}"));
        assert_eq!(got.from, "surveys@acme.test");
        let msg = got.parsed();
        let from = msg.from().unwrap().first().unwrap();
        assert_eq!(from.name(), Some("Acme"), "the brand is the sender name");
        assert_eq!(from.address(), Some("surveys@acme.test"));
        assert_eq!(msg.subject(), Some("A quick question from Acme"));
        assert!(
            message_ids.insert(msg.message_id().unwrap().to_string()),
            "Message-IDs are unique"
        );
        let unsub = header(&msg, "List-Unsubscribe");
        assert!(
            unsub.contains(&format!("<https://feedback.acme.test/u/{token}>")),
            "{unsub}"
        );
        assert!(
            unsub.contains("<mailto:surveys@acme.test?subject=unsubscribe"),
            "{unsub}"
        );
        assert_eq!(
            header(&msg, "List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click"
        );
        let text = msg.body_text(0).unwrap().to_string();
        let html = msg.body_html(0).unwrap().to_string();
        assert!(
            text.contains("How likely are you to recommend Acme to a friend or colleague?"),
            "{text}"
        );
        assert!(html.contains("How likely are you to recommend Acme to a friend or colleague?"));
        if email == "ada@example.com" {
            assert!(text.starts_with("Hi Ada,"), "{text}");
        }
        for score in 0..=10 {
            let link = format!("https://feedback.acme.test/s/{token}?score={score}");
            assert!(text.contains(&link), "text part lacks {link}");
            assert!(
                html.contains(&format!("href=\"{link}\"")),
                "html part lacks {link}"
            );
            // The link leads to this invitation's page with the score preselected.
            let local = link.replace("https://feedback.acme.test", &app.address);
            let page = app.client.get(&local).send().await.unwrap();
            assert_eq!(page.status(), 200);
            let body = page.text().await.unwrap();
            assert!(
                body.contains(&format!("value=\"{score}\" checked")),
                "score {score} not preselected"
            );
        }
        assert!(!html.contains("score=11"));
        assert!(html.contains("Not at all likely") && html.contains("Extremely likely"));
        // The unsubscribe link works (RFC 8058 one-click POST).
        let local = format!("{}/u/{token}", app.address);
        let res = app
            .client
            .post(&local)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let inv = wait_status(&app, item["invitation_id"].as_str().unwrap(), "sent", 5).await;
        assert_eq!(inv["attempts"], 1);
        assert!(inv["sent_at"].is_string());
        let contact = app
            .get(&format!(
                "/api/v1/contacts/{}",
                item["contact_id"].as_str().unwrap()
            ))
            .await;
        assert!(
            contact.body["unsubscribed_at"].is_string(),
            "{}",
            contact.text
        );
    }
    // The list shows each one's status, filtered by survey and status.
    let list = app
        .get(&format!("/api/v1/invitations?survey_id={sid}&status=sent"))
        .await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        3,
        "{}",
        list.text
    );
}

async fn emails_are_localized(engine: Engine) {
    let smtp = TestSmtp::start();
    let app = app_with_smtp(engine, &smtp, &[]).await;
    for (locale, subject, low) in [
        ("de", "Eine kurze Frage von Acme", "Sehr unzufrieden"),
        ("fr", "Une petite question de Acme", "Très insatisfait"),
    ] {
        let s = app
            .create_survey(json!({"kind": "csat", "name": locale, "brand": "Acme", "locale": locale, "topic": "support", "throttle_days": 0}))
            .await;
        invite(
            &app,
            s["id"].as_str().unwrap(),
            json!({"channel": "email", "contacts": [{"email": format!("{locale}@example.com")}]}),
        )
        .await;
        let got = smtp.wait_for(if locale == "de" { 1 } else { 2 }, 10).await;
        let msg = got.last().unwrap().parsed();
        assert_eq!(msg.subject(), Some(subject));
        let html = msg.body_html(0).unwrap().to_string();
        assert!(html.contains(low), "{html}");
        assert!(html.contains(&format!("<html lang=\"{locale}\">")));
        assert!(
            html.contains("?score=1\"")
                && html.contains("?score=5\"")
                && !html.contains("?score=0\"")
        );
    }
}

async fn link_invitations_are_sent_at_once_and_never_emailed(engine: Engine) {
    let smtp = TestSmtp::start();
    let app = app_with_smtp(engine, &smtp, &[]).await;
    let s = app.nps_survey().await;
    let batch = invite(
        &app,
        s["id"].as_str().unwrap(),
        json!({"channel": "link", "contacts": [{"external_id": "c1"}, {"email": "b@example.com"}]}),
    )
    .await;
    assert_eq!(batch["summary"]["sent"], 2);
    for item in batch["items"].as_array().unwrap() {
        assert_eq!(item["status"], "sent");
        let inv = invitation(&app, item["invitation_id"].as_str().unwrap()).await;
        assert_eq!(inv["channel"], "link");
        assert_eq!(inv["status"], "sent");
        assert_eq!(inv["url"], item["url"]);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(smtp.attempts(), 0);
}

async fn a_batch_reports_every_contact_in_order(app: TestApp) {
    let s = app
        .create_survey(json!({"kind": "nps", "name": "x", "throttle_days": 30}))
        .await;
    let sid = s["id"].as_str().unwrap();
    // Make one contact unsubscribed and one recently surveyed.
    let first = invite(&app, sid, json!({"channel": "link", "contacts": [{"email": "recent@example.com"}, {"email": "gone@example.com"}]})).await;
    let gone = first["items"][1]["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let res = app
        .client
        .post(app.url(&format!("/u/{gone}")))
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let other = app
        .create_survey(json!({"kind": "csat", "name": "y", "throttle_days": 60}))
        .await;
    let batch = invite(
        &app,
        other["id"].as_str().unwrap(),
        json!({"channel": "email", "send_at": in_30_days(), "contacts": [
            {"email": "new@example.com"},
            {"email": "not-an-email"},
            {"email": "NEW@example.com"},
            {"email": "gone@example.com"},
            {"email": "recent@example.com"},
            {"external_id": "only-ext"},
            {"email": "x@example.com", "properties": {"value": "high"}}
        ]}),
    )
    .await;
    let a = app.post(&format!("/api/v1/surveys/{}/invitations", other["id"].as_str().unwrap()), json!({"channel": "email", "send_at": "2099-01-01T00:00:00Z", "contacts": [{"email": "a@b.co"}]})).await;
    assert_eq!(a.status, 422, "more than a year ahead: {}", a.text);
    assert!(!a.field("send_at").is_empty());
    let statuses: Vec<(&str, &str)> = batch["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["status"].as_str().unwrap(),
                i["reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("scheduled", ""),
            ("rejected", "invalid_contact"),
            ("rejected", "duplicate_in_batch"),
            ("suppressed", "unsubscribed"),
            ("suppressed", "throttled"),
            ("rejected", "invalid_contact"),
            ("rejected", "invalid_contact"),
        ],
        "{batch}"
    );
    assert_eq!(batch["items"][1]["email"], "not-an-email");
    assert!(batch["items"][1]["message"]
        .as_str()
        .unwrap()
        .contains("email"));
    assert!(batch["items"][6]["message"]
        .as_str()
        .unwrap()
        .contains("properties.value"));
    assert!(
        batch["items"][3]["invitation_id"].is_string(),
        "suppressed invitations are recorded, not hidden"
    );
    assert!(batch["items"][3]["url"].is_null());
    assert_eq!(
        batch["summary"],
        json!({"scheduled": 1, "sent": 0, "suppressed": 2, "rejected": 4})
    );
    let suppressed = app.get("/api/v1/invitations?status=suppressed").await;
    assert_eq!(suppressed.body["items"].as_array().unwrap().len(), 2);
}

async fn an_archived_survey_rejects_every_contact(app: TestApp) {
    let s = app.nps_survey().await;
    let sid = s["id"].as_str().unwrap();
    app.post(&format!("/api/v1/surveys/{sid}/archive"), json!({}))
        .await;
    let batch = invite(&app, sid, json!({"channel": "email", "contacts": [{"email": "a@example.com"}, {"email": "b@example.com"}]})).await;
    for item in batch["items"].as_array().unwrap() {
        assert_eq!(item["status"], "rejected");
        assert_eq!(item["reason"], "survey_archived");
    }
}

async fn a_retried_batch_with_an_idempotency_key_invites_once(app: TestApp) {
    let s = app.nps_survey().await;
    let path = format!("/api/v1/surveys/{}/invitations", s["id"].as_str().unwrap());
    let body = json!({"channel": "link", "contacts": [{"email": "a@example.com"}, {"email": "b@example.com"}]});
    let send = |b: Value, key: &'static str| {
        let req = app
            .client
            .post(app.url(&path))
            .bearer_auth(&app.key)
            .header("Idempotency-Key", key)
            .json(&b);
        async move { crate::helpers::into_answer(req.send().await.unwrap()).await }
    };
    let first = send(body.clone(), "batch-1").await;
    assert_eq!(first.status, 200, "{}", first.text);
    let again = send(body.clone(), "batch-1").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body, "the first answer is returned again");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let list = app.get("/api/v1/invitations").await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        2,
        "nothing was invited twice"
    );
    let other = send(
        json!({"channel": "link", "contacts": [{"email": "c@example.com"}]}),
        "batch-1",
    )
    .await;
    assert_eq!(other.status, 409);
    assert_eq!(other.code(), "idempotency_key_reused");
    // Concurrent retries of one new key also invite once.
    let body2 = json!({"channel": "link", "contacts": [{"email": "d@example.com"}, {"email": "e@example.com"}]});
    let answers =
        futures_util::future::join_all((0..6).map(|_| send(body2.clone(), "batch-2"))).await;
    for a in &answers {
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.body, answers[0].body);
    }
    let list = app.get("/api/v1/invitations").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 4);
}

async fn bad_invitation_requests_are_4xx(app: TestApp) {
    let s = app.nps_survey().await;
    let path = format!("/api/v1/surveys/{}/invitations", s["id"].as_str().unwrap());
    for (body, field) in [
        (json!({"contacts": [{"email": "a@b.co"}]}), "channel"),
        (
            json!({"channel": "sms", "contacts": [{"email": "a@b.co"}]}),
            "channel",
        ),
        (json!({"channel": "email", "contacts": []}), "contacts"),
        (json!({"channel": "email"}), "contacts"),
        (
            json!({"channel": "email", "contacts": [{"email": "a@b.co", "phone": 1}]}),
            "contacts[0].phone",
        ),
        (
            json!({"channel": "email", "send_at": "tomorrow", "contacts": [{"email": "a@b.co"}]}),
            "send_at",
        ),
    ] {
        let a = app.post(&path, body.clone()).await;
        assert_eq!(a.status, 422, "{body}: {}", a.text);
        assert!(
            !a.field(field).is_empty(),
            "{body}: expected {field}: {}",
            a.text
        );
    }
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"email": format!("p{i}@example.com")}))
        .collect();
    let a = app
        .post(&path, json!({"channel": "link", "contacts": many}))
        .await;
    assert_eq!(a.status, 422);
    assert!(!a.field("contacts").is_empty());
    let a = app
        .post(
            "/api/v1/surveys/srv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2/invitations",
            json!({"channel": "link", "contacts": [{"email": "a@b.co"}]}),
        )
        .await;
    assert_eq!(a.status, 404);
    assert_eq!(app.get("/api/v1/invitations/inv_nope").await.status, 404);
    assert_eq!(app.get("/api/v1/invitations?status=lost").await.status, 422);
    let reader = app.key_with_role("reader").await;
    let a = app
        .send(
            Method::POST,
            &path,
            Some(&reader),
            Some(&json!({"channel": "link", "contacts": [{"email": "a@b.co"}]})),
        )
        .await;
    assert_eq!(a.status, 403);
    let res = app
        .client
        .post(app.url(&path))
        .bearer_auth(&app.key)
        .header("Idempotency-Key", "x".repeat(300))
        .json(&json!({"channel": "link", "contacts": [{"email": "a@b.co"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

async fn a_scheduled_invitation_can_be_cancelled_and_a_sent_one_cannot(app: TestApp) {
    let s = app.nps_survey().await;
    let batch = invite(&app, s["id"].as_str().unwrap(), json!({"channel": "email", "send_at": in_30_days(), "contacts": [{"email": "a@example.com"}]})).await;
    let id = batch["items"][0]["invitation_id"].as_str().unwrap();
    let a = app
        .post(&format!("/api/v1/invitations/{id}/cancel"), json!({}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["status"], "cancelled");
    assert_eq!(
        app.post(&format!("/api/v1/invitations/{id}/cancel"), json!({}))
            .await
            .status,
        200
    );
    let link = invite(
        &app,
        s["id"].as_str().unwrap(),
        json!({"channel": "link", "contacts": [{"email": "b@example.com"}]}),
    )
    .await;
    let id = link["items"][0]["invitation_id"].as_str().unwrap();
    let a = app
        .post(&format!("/api/v1/invitations/{id}/cancel"), json!({}))
        .await;
    assert_eq!(a.status, 409);
    assert_eq!(a.code(), "invitation_not_cancellable");
}

async fn invitations_made_while_smtp_is_down_go_out_once_it_is_up(engine: Engine) {
    let port = free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let app = spawn_app_with(
        engine,
        &[
            ("SMTP_URL", url.as_str()),
            ("EMAIL_RETRY_BASE_SECONDS", "1"),
            ("DISPATCH_INTERVAL_MS", "50"),
        ],
    )
    .await;
    let s = app.nps_survey().await;
    let batch = invite(&app, s["id"].as_str().unwrap(), json!({"channel": "email", "contacts": [{"email": "a@example.com"}, {"email": "b@example.com"}]})).await;
    let id = batch["items"][0]["invitation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let inv = eventually(10, "a failed first attempt", || async {
        let inv = invitation(&app, &id).await;
        (inv["attempts"].as_i64() >= Some(1) && inv["status"] == "scheduled").then_some(inv)
    })
    .await;
    assert!(
        inv["last_error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("connect"),
        "{inv}"
    );
    let smtp = TestSmtp::start_on(port);
    let got = smtp.wait_for(2, 15).await;
    assert_eq!(got.len(), 2);
    let inv = wait_status(&app, &id, "sent", 5).await;
    assert!(inv["attempts"].as_i64().unwrap() >= 2);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(smtp.received().len(), 2, "each sent once");
}

async fn a_server_that_answers_4xx_then_250_is_retried(engine: Engine) {
    let smtp = TestSmtp::start();
    smtp.script(&[451, 421]);
    let app = app_with_smtp(engine, &smtp, &[]).await;
    let s = app.nps_survey().await;
    let batch = invite(
        &app,
        s["id"].as_str().unwrap(),
        json!({"channel": "email", "contacts": [{"email": "a@example.com"}]}),
    )
    .await;
    let id = batch["items"][0]["invitation_id"].as_str().unwrap();
    let inv = wait_status(&app, id, "sent", 15).await;
    assert_eq!(inv["attempts"], 3, "{inv}");
    assert_eq!(smtp.received().len(), 1);
}

async fn a_permanent_5xx_reply_marks_the_invitation_failed_with_the_reply(engine: Engine) {
    let smtp = TestSmtp::start();
    smtp.always(550);
    let app = app_with_smtp(engine, &smtp, &[]).await;
    let s = app.nps_survey().await;
    let batch = invite(
        &app,
        s["id"].as_str().unwrap(),
        json!({"channel": "email", "contacts": [{"email": "a@example.com"}]}),
    )
    .await;
    let id = batch["items"][0]["invitation_id"].as_str().unwrap();
    let inv = wait_status(&app, id, "failed", 10).await;
    assert_eq!(inv["attempts"], 1);
    assert_eq!(inv["reason"], "send_failed");
    assert!(inv["last_error"].as_str().unwrap().contains("550"), "{inv}");
    let metrics = app.send(Method::GET, "/metrics", None, None).await;
    assert!(
        metrics
            .text
            .contains(r#"closeloop_emails_failed_total{kind="invitation"} 1"#),
        "{}",
        metrics.text
    );
}

async fn transient_errors_give_up_after_the_configured_attempts(engine: Engine) {
    let smtp = TestSmtp::start();
    smtp.always(451);
    let app = app_with_smtp(
        engine,
        &smtp,
        &[
            ("EMAIL_MAX_ATTEMPTS", "2"),
            ("EMAIL_RETRY_BASE_SECONDS", "0"),
        ],
    )
    .await;
    let s = app.nps_survey().await;
    let batch = invite(
        &app,
        s["id"].as_str().unwrap(),
        json!({"channel": "email", "contacts": [{"email": "a@example.com"}]}),
    )
    .await;
    let id = batch["items"][0]["invitation_id"].as_str().unwrap();
    let inv = wait_status(&app, id, "failed", 10).await;
    assert_eq!(inv["attempts"], 2);
    assert!(
        inv["last_error"]
            .as_str()
            .unwrap()
            .contains("gave up after 2 attempts"),
        "{inv}"
    );
}

async fn a_contact_unsubscribed_before_sending_is_suppressed_at_send_time(engine: Engine) {
    let smtp = TestSmtp::start();
    let app = app_with_smtp(engine, &smtp, &[]).await;
    let s = app
        .create_survey(json!({"kind": "nps", "name": "x", "throttle_days": 0}))
        .await;
    let sid = s["id"].as_str().unwrap();
    // A paused survey holds its invitations.
    app.patch(
        &format!("/api/v1/surveys/{sid}"),
        json!({"status": "paused"}),
    )
    .await;
    let batch = invite(
        &app,
        sid,
        json!({"channel": "email", "contacts": [{"email": "a@example.com"}]}),
    )
    .await;
    let id = batch["items"][0]["invitation_id"].as_str().unwrap();
    let link = invite(
        &app,
        sid,
        json!({"channel": "link", "contacts": [{"email": "a@example.com"}]}),
    )
    .await;
    let token = link["items"][0]["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(invitation(&app, id).await["status"], "scheduled");
    assert_eq!(smtp.attempts(), 0);
    let res = app
        .client
        .post(app.url(&format!("/u/{token}")))
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.patch(
        &format!("/api/v1/surveys/{sid}"),
        json!({"status": "active"}),
    )
    .await;
    // Force the held invitation due now.
    let state = app.app_state.clone();
    let id_owned = id.to_string();
    tokio::task::spawn_blocking(move || {
        use closeloop::store::schema::invitations::dsl::*;
        use diesel::prelude::*;
        let mut conn = state.db.get().unwrap();
        diesel::update(invitations.find(id_owned))
            .set(next_attempt_at.eq(closeloop::domain::now()))
            .execute(&mut conn)
            .unwrap();
    })
    .await
    .unwrap();
    let inv = wait_status(&app, id, "suppressed", 10).await;
    assert_eq!(inv["reason"], "unsubscribed");
    assert_eq!(smtp.attempts(), 0);
}

async fn one_reminder_goes_to_non_responders(engine: Engine) {
    let smtp = TestSmtp::start();
    let app = app_with_smtp(engine, &smtp, &[]).await;
    let s = app
        .create_survey(
            json!({"kind": "nps", "name": "x", "brand": "Acme", "reminder_after_days": 3}),
        )
        .await;
    let batch = invite(
        &app,
        s["id"].as_str().unwrap(),
        json!({"channel": "email", "contacts": [{"email": "a@example.com"}]}),
    )
    .await;
    let id = batch["items"][0]["invitation_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_status(&app, &id, "sent", 10).await;
    assert_eq!(smtp.received().len(), 1);
    let backdate = |days: i64| {
        let state = app.app_state.clone();
        let inv_id = id.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                use closeloop::store::schema::invitations::dsl::*;
                use diesel::prelude::*;
                let mut conn = state.db.get().unwrap();
                // The reminder is due at `remind_at` (sent_at + reminder_after_days, set when
                // the email went out): move both, as if it had been sent `days` ago.
                let sent = closeloop::domain::now() - chrono::TimeDelta::days(days);
                diesel::update(invitations.find(inv_id))
                    .set((
                        sent_at.eq(Some(sent)),
                        remind_at.eq(Some(sent + chrono::TimeDelta::days(3))),
                    ))
                    .execute(&mut conn)
                    .unwrap();
            })
            .await
            .unwrap()
        }
    };
    backdate(2).await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(smtp.received().len(), 1, "not before reminder_after_days");
    backdate(4).await;
    let got = smtp.wait_for(2, 10).await;
    let msg = got[1].parsed();
    assert_eq!(msg.subject(), Some("Reminder: A quick question from Acme"));
    let inv = invitation(&app, &id).await;
    assert!(inv["reminder_sent_at"].is_string());
    assert_eq!(inv["status"], "sent");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(smtp.received().len(), 2, "exactly one reminder");
}

async fn without_smtp_emails_are_written_to_the_outbox_folder(app: TestApp) {
    let s = app.nps_survey().await;
    let batch = invite(
        &app,
        s["id"].as_str().unwrap(),
        json!({"channel": "email", "contacts": [{"email": "a@example.com"}]}),
    )
    .await;
    let id = batch["items"][0]["invitation_id"].as_str().unwrap();
    let inv = eventually(10, "the invitation to be sent", || async {
        let inv = invitation(&app, id).await;
        (inv["status"] == "sent").then_some(inv)
    })
    .await;
    assert_eq!(inv["attempts"], 1);
    let path = app.outbox.path().join(format!("{id}.eml"));
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let msg = mail_parser::MessageParser::default().parse(&data).unwrap();
    assert_eq!(
        msg.to().unwrap().first().unwrap().address(),
        Some("a@example.com")
    );
    assert!(msg.body_html(0).is_some() && msg.body_text(0).is_some());
}

/// Two replicas on one PostgreSQL database send each invitation exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_dispatchers_on_one_postgres_send_each_invitation_once() {
    if std::env::var("TEST_POSTGRES_URL")
        .map(|v| v.is_empty())
        .unwrap_or(true)
    {
        eprintln!("TEST_POSTGRES_URL is not set: PostgreSQL variant not run");
        return;
    }
    let smtp = TestSmtp::start();
    let extra = [("EMAIL_BATCH_SIZE", "7"), ("EMAIL_CONCURRENCY", "4")];
    let app = app_with_smtp(Engine::Postgres, &smtp, &extra).await;
    let url = smtp.url();
    let (replica, _outbox) = crate::helpers::spawn_replica(
        &app,
        &[
            ("SMTP_URL", url.as_str()),
            ("DISPATCH_INTERVAL_MS", "50"),
            ("EMAIL_BATCH_SIZE", "7"),
            ("EMAIL_CONCURRENCY", "4"),
            ("SMTP_POOL_SIZE", "4"),
        ],
    )
    .await;
    let replica_metrics = replica.state.metrics.clone();
    tokio::spawn(replica.run_until_stopped());
    let s = app.create_survey(json!({"kind": "nps", "name": "x"})).await;
    let contacts: Vec<Value> = (0..300)
        .map(|i| json!({"email": format!("p{i}@example.com")}))
        .collect();
    invite(
        &app,
        s["id"].as_str().unwrap(),
        json!({"channel": "email", "contacts": contacts}),
    )
    .await;
    let got = smtp.wait_for(300, 30).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let got_after = smtp.received();
    assert_eq!(got_after.len(), 300, "no invitation was sent twice");
    let recipients: HashSet<String> = got.iter().flat_map(|r| r.to.clone()).collect();
    assert_eq!(recipients.len(), 300);
    let by_replica = replica_metrics.emails_sent_of("invitation");
    let by_first = app.app_state.metrics.emails_sent_of("invitation");
    assert_eq!(by_first + by_replica, 300);
    assert!(
        by_first > 0 && by_replica > 0,
        "both replicas sent some: {by_first} + {by_replica}"
    );
}

each_engine!(
    three_invited_people_get_real_emails_with_working_links,
    emails_are_localized,
    link_invitations_are_sent_at_once_and_never_emailed,
    invitations_made_while_smtp_is_down_go_out_once_it_is_up,
    a_server_that_answers_4xx_then_250_is_retried,
    a_permanent_5xx_reply_marks_the_invitation_failed_with_the_reply,
    transient_errors_give_up_after_the_configured_attempts,
    a_contact_unsubscribed_before_sending_is_suppressed_at_send_time,
    one_reminder_goes_to_non_responders,
);

both_engines!(
    a_batch_reports_every_contact_in_order,
    an_archived_survey_rejects_every_contact,
    a_retried_batch_with_an_idempotency_key_invites_once,
    bad_invitation_requests_are_4xx,
    a_scheduled_invitation_can_be_cancelled_and_a_sent_one_cannot,
    without_smtp_emails_are_written_to_the_outbox_folder,
);
