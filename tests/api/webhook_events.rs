//! The webhook events of issue 14 §2 (`contact.unsubscribed`, `invitation.failed`,
//! `followup.resolved`, `followup.overdue`) and the context every payload carries (contact,
//! survey, task URL), delivered to a real local receiver; erasing a contact scrubs its
//! deliveries.

use std::time::Duration;

use diesel::RunQueryDsl;
use serde_json::{json, Value};

use crate::each_engine;
use crate::helpers::{eventually, tokens, with_db, Engine, TestApp};
use crate::smtp::TestSmtp;
use crate::webhooks::{check_signed, deliveries, fast_app, subscribe, Receiver};

const PUBLIC_URL: &str = "https://feedback.acme.test";

async fn app(engine: Engine, extra: &[(&str, &str)]) -> TestApp {
    let mut settings = vec![
        ("PUBLIC_URL", PUBLIC_URL),
        ("FOLLOWUP_OVERDUE_CHECK_SECONDS", "0"),
    ];
    settings.extend_from_slice(extra);
    fast_app(engine, &settings).await
}

/// A CSAT survey named "Support CSAT" and a link invitation to Ada (with properties); returns
/// (survey id, token).
async fn ada_invited(app: &TestApp) -> (String, String) {
    let s = app
        .create_survey(json!({"kind": "csat", "name": "Support CSAT", "brand": "Acme"}))
        .await;
    let t = tokens(
        app,
        &s,
        json!([{"email": "ada@example.com", "name": "Ada Lovelace", "external_id": "cus_42",
                "properties": {"plan": "pro", "value": 12000}}]),
    )
    .await;
    (s["id"].as_str().unwrap().to_string(), t[0].clone())
}

async fn answer(app: &TestApp, token: &str, score: i32, comment: &str) -> Value {
    let a = app
        .post(
            "/api/v1/responses",
            json!({"invitation_token": token, "score": score, "comment": comment}),
        )
        .await;
    assert!(a.status == 201 || a.status == 200, "{}", a.text);
    a.body
}

fn assert_ada(contact: &Value) {
    assert!(
        contact["id"].as_str().unwrap().starts_with("con_"),
        "{contact}"
    );
    assert_eq!(contact["email"], "ada@example.com");
    assert_eq!(contact["name"], "Ada Lovelace");
    assert_eq!(contact["external_id"], "cus_42");
    assert_eq!(
        contact["properties"],
        json!({"plan": "pro", "value": 12000})
    );
    assert_eq!(contact["erased"], false);
}

fn assert_survey(survey: &Value, id: &str) {
    assert_eq!(
        survey,
        &json!({"id": id, "name": "Support CSAT", "kind": "csat"})
    );
}

/// Every request the receiver got with this event type, as parsed bodies.
fn of_type(receiver: &Receiver, event: &str) -> Vec<Value> {
    receiver
        .all()
        .iter()
        .map(|r| r.json())
        .filter(|b| b["type"] == event)
        .collect()
}

async fn payloads_carry_the_contact_the_survey_and_the_task_url(engine: Engine) {
    let app = app(engine, &[]).await;
    let receiver = Receiver::start(&[], 200).await;
    let (_, secret) = subscribe(
        &app,
        &receiver.url,
        &[
            "response.created",
            "followup.created",
            "followup.updated",
            "followup.resolved",
        ],
    )
    .await;
    let (sid, token) = ada_invited(&app).await;
    answer(&app, &token, 1, "Nobody called back").await;
    let got = receiver.wait_for(2, 10).await;
    let mut bodies: Vec<Value> = got.iter().map(|r| r.json()).collect();
    bodies.sort_by_key(|b| b["type"].as_str().unwrap().to_string());
    let [followup, response] = [&bodies[0], &bodies[1]];
    assert_eq!(followup["type"], "followup.created");
    assert_eq!(response["type"], "response.created");
    for r in &got {
        check_signed(r, &secret, r.json()["type"].as_str().unwrap());
    }
    assert_ada(&response["data"]["contact"]);
    assert_survey(&response["data"]["survey"], &sid);
    assert_eq!(response["data"]["comment"], "Nobody called back");
    let task = &followup["data"];
    assert_ada(&task["contact"]);
    assert_survey(&task["survey"], &sid);
    let id = task["id"].as_str().unwrap();
    assert_eq!(task["url"], format!("{PUBLIC_URL}/app/followups/{id}"));
    assert_eq!(task["change"], "created");
    assert!(task["note"].is_null());

    // Closing the task: followup.updated and followup.resolved, with outcome and note.
    let a = app
        .patch(
            &format!("/api/v1/followups/{id}"),
            json!({"status": "resolved", "outcome": "explained", "note": "Called Ada, explained the delay"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    receiver.wait_for(4, 10).await;
    let resolved = of_type(&receiver, "followup.resolved");
    assert_eq!(resolved.len(), 1);
    let r = &resolved[0]["data"];
    assert_eq!(r["id"], id);
    assert_eq!(r["status"], "resolved");
    assert_eq!(r["outcome"], "explained");
    assert_eq!(r["note"], "Called Ada, explained the delay");
    assert_eq!(r["actor"], "api-key:test admin");
    assert!(r["resolved_at"].is_string());
    assert_ada(&r["contact"]);
    assert_survey(&r["survey"], &sid);
    assert_eq!(r["url"], format!("{PUBLIC_URL}/app/followups/{id}"));
    let updated = of_type(&receiver, "followup.updated");
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["data"]["status"], "resolved");
    assert_eq!(
        updated[0]["data"]["note"],
        "Called Ada, explained the delay"
    );

    // Reopened, then the customer raises the score: the system resolves it (score_raised)
    // and followup.resolved is sent again; the reopening sent none.
    let a = app
        .patch(
            &format!("/api/v1/followups/{id}"),
            json!({"status": "open"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    answer(&app, &token, 5, "Sorted now").await;
    eventually(10, "a second followup.resolved", || async {
        (of_type(&receiver, "followup.resolved").len() == 2).then_some(())
    })
    .await;
    let again = &of_type(&receiver, "followup.resolved")[1]["data"];
    assert_eq!(again["outcome"], "score_raised");
    assert_eq!(again["actor"], "customer");
    assert!(again["note"].is_null());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(of_type(&receiver, "followup.resolved").len(), 2);
}

async fn unsubscribing_twice_sends_one_event(engine: Engine) {
    let app = app(engine, &[]).await;
    let receiver = Receiver::start(&[], 200).await;
    let (hook, secret) = subscribe(&app, &receiver.url, &["contact.unsubscribed"]).await;
    let (sid, token) = ada_invited(&app).await;
    for _ in 0..2 {
        let res = app
            .client
            .post(app.url(&format!("/u/{token}")))
            .form(&[("List-Unsubscribe", "One-Click")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let got = receiver.wait_for(1, 10).await;
    let body = check_signed(&got[0], &secret, "contact.unsubscribed");
    let d = &body["data"];
    assert_ada(&d["contact"]);
    assert_eq!(d["via"], "unsubscribe_page");
    assert_eq!(d["actor"], "customer");
    assert!(d["unsubscribed_at"].is_string());
    assert!(d["invitation_id"].as_str().unwrap().starts_with("inv_"));
    assert_survey(&d["survey"], &sid);

    // The API repeating it sends nothing; re-subscribing and unsubscribing again sends one.
    let path = format!("/api/v1/contacts/{}", d["contact"]["id"].as_str().unwrap());
    let a = app.patch(&path, json!({"unsubscribed": true})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    app.patch(&path, json!({"unsubscribed": false})).await;
    let a = app.patch(&path, json!({"unsubscribed": true})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let got = receiver.wait_for(2, 10).await;
    let second = check_signed(&got[1], &secret, "contact.unsubscribed");
    assert_eq!(second["data"]["via"], "api");
    assert_eq!(second["data"]["actor"], "api-key:test admin");
    assert!(second["data"]["survey"].is_null());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.count(), 2);
    assert_eq!(deliveries(&app, &hook).await.len(), 2);
}

/// Sets `due_at` of every task an hour into the past.
async fn make_overdue(app: &TestApp) {
    with_db(app, |conn| {
        let past = closeloop::domain::now() - chrono::TimeDelta::hours(1);
        use closeloop::store::schema::followups;
        use diesel::prelude::*;
        diesel::update(followups::table)
            .set(followups::due_at.eq(past))
            .execute(conn)
            .unwrap();
    })
    .await;
}

async fn overdue_fires_once_per_task_and_not_for_a_closed_one(engine: Engine) {
    let app = app(engine, &[]).await;
    let receiver = Receiver::start(&[], 200).await;
    let (hook, secret) = subscribe(&app, &receiver.url, &["followup.overdue"]).await;
    let (sid, token) = ada_invited(&app).await;
    let s2 = app.nps_survey().await;
    let t2 = tokens(&app, &s2, json!([{"email": "bob@example.com"}])).await;
    answer(&app, &token, 2, "Still broken").await;
    answer(&app, &t2[0], 3, "meh").await;
    let tasks = app.get("/api/v1/followups").await;
    assert_eq!(tasks.status, 200, "{}", tasks.text);
    let items = tasks.body["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    let ada_task = items
        .iter()
        .find(|t| t["survey_id"] == sid.as_str())
        .unwrap();
    let bob_task = items
        .iter()
        .find(|t| t["survey_id"] != sid.as_str())
        .unwrap();
    let a = app
        .patch(
            &format!("/api/v1/followups/{}", bob_task["id"].as_str().unwrap()),
            json!({"status": "dismissed", "outcome": "no_action_needed"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    make_overdue(&app).await;

    let got = receiver.wait_for(1, 10).await;
    let body = check_signed(&got[0], &secret, "followup.overdue");
    let d = &body["data"];
    assert_eq!(d["id"], ada_task["id"]);
    assert_eq!(d["change"], "overdue");
    assert_eq!(d["actor"], "system");
    assert_eq!(d["overdue"], true);
    assert_eq!(d["status"], "open");
    assert_ada(&d["contact"]);
    assert_survey(&d["survey"], &sid);
    assert_eq!(
        d["url"],
        format!(
            "{PUBLIC_URL}/app/followups/{}",
            ada_task["id"].as_str().unwrap()
        )
    );
    // The scan runs every dispatcher round here: many more scans send nothing more, and the
    // dismissed task never gets one.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(receiver.count(), 1);
    // Taking the task through in_progress keeps it overdue: still no second event.
    let a = app
        .patch(
            &format!("/api/v1/followups/{}", ada_task["id"].as_str().unwrap()),
            json!({"status": "in_progress"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 1);
    assert_eq!(deliveries(&app, &hook).await.len(), 1);
}

/// The scan's query is the one the partial index serves (checked with each engine's plan):
/// a periodic scan reads only pending tasks that are due.
async fn the_overdue_scan_reads_the_pending_index(engine: Engine) {
    let app = app(engine, &[]).await;
    let pending = closeloop::store::followups::OVERDUE_PENDING;
    let plan: Vec<String> = with_db(&app, move |conn| {
        #[derive(diesel::QueryableByName)]
        struct Line {
            #[diesel(sql_type = diesel::sql_types::Text)]
            detail: String,
        }
        #[derive(diesel::QueryableByName)]
        struct PgLine {
            #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
            line: String,
        }
        let scan = format!(
            "SELECT id FROM followups WHERE ({pending}) AND due_at <= '2030-01-01 00:00:00' \
ORDER BY due_at LIMIT 100"
        );
        match conn {
            closeloop::store::DbConnection::Sqlite(c) => {
                diesel::sql_query(format!("EXPLAIN QUERY PLAN {scan}"))
                    .load::<Line>(c)
                    .unwrap()
                    .into_iter()
                    .map(|l| l.detail)
                    .collect()
            }
            closeloop::store::DbConnection::Postgres(c) => {
                // A tiny table is read whole whatever the indexes: ask whether the index
                // can serve the query at all.
                diesel::sql_query("SET enable_seqscan = off")
                    .execute(c)
                    .unwrap();
                diesel::sql_query(format!("EXPLAIN {scan}"))
                    .load::<PgLine>(c)
                    .unwrap()
                    .into_iter()
                    .map(|l| l.line)
                    .collect()
            }
        }
    })
    .await;
    let text = plan.join("\n");
    assert!(text.contains("followups_overdue_pending"), "{text}");
}

async fn an_smtp_refusal_sends_invitation_failed(engine: Engine) {
    let smtp = TestSmtp::start();
    smtp.always(550);
    let url = smtp.url();
    let app = app(engine, &[("SMTP_URL", url.as_str())]).await;
    let receiver = Receiver::start(&[], 200).await;
    let (_, secret) = subscribe(&app, &receiver.url, &["invitation.failed"]).await;
    let s = app
        .create_survey(json!({"kind": "csat", "name": "Support CSAT", "brand": "Acme"}))
        .await;
    let sid = s["id"].as_str().unwrap();
    let a = app
        .post(
            &format!("/api/v1/surveys/{sid}/invitations"),
            json!({"channel": "email", "contacts": [{"email": "ada@example.com", "name": "Ada Lovelace",
                "external_id": "cus_42", "properties": {"plan": "pro", "value": 12000}}]}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let inv = a.body["items"][0]["invitation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let got = receiver.wait_for(1, 15).await;
    let body = check_signed(&got[0], &secret, "invitation.failed");
    let d = &body["data"];
    assert_eq!(d["id"], inv.as_str());
    assert_eq!(d["status"], "failed");
    assert_eq!(d["reason"], "send_failed");
    assert_eq!(d["channel"], "email");
    assert_eq!(d["attempts"], 1);
    assert!(d["error"].as_str().unwrap().contains("550"), "{d}");
    assert_ada(&d["contact"]);
    assert_survey(&d["survey"], sid);
    let stored = app.get(&format!("/api/v1/invitations/{inv}")).await;
    assert_eq!(stored.body["status"], "failed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 1, "one event per failed invitation");
}

async fn erasing_a_contact_scrubs_queued_and_logged_deliveries(engine: Engine) {
    // A long backoff: the failing receiver's delivery stays queued until redelivered.
    let app = app(engine, &[("WEBHOOK_RETRY_BASE_SECONDS", "3600")]).await;
    let ok = Receiver::start(&[], 200).await;
    let failing = Receiver::start(&[503], 200).await;
    let (ok_hook, _) = subscribe(&app, &ok.url, &["followup.created"]).await;
    let (failing_hook, secret) = subscribe(&app, &failing.url, &["followup.created"]).await;
    let (_, token) = ada_invited(&app).await;
    answer(&app, &token, 1, "Ada here: call me on 555-0100").await;
    ok.wait_for(1, 10).await;
    let first = failing.wait_for(1, 10).await;
    assert_ada(&first[0].json()["data"]["contact"]);
    let queued = eventually(10, "the failed attempt to be recorded", || async {
        deliveries(&app, &failing_hook)
            .await
            .into_iter()
            .find(|d| d["status"] == "pending" && d["attempt_count"] == 1)
    })
    .await;
    let contact_id = first[0].json()["data"]["contact"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let a = app.delete(&format!("/api/v1/contacts/{contact_id}")).await;
    assert!(a.status == 204 || a.status == 200, "{}", a.text);

    let erased = json!({"id": contact_id, "email": null, "name": null, "external_id": null,
        "properties": {}, "erased": true});
    for hook in [&ok_hook, &failing_hook] {
        for d in deliveries(&app, hook).await {
            let text = d["payload"].to_string();
            assert_eq!(d["payload"]["data"]["contact"], erased, "{text}");
            assert!(d["payload"]["data"]["comment"].is_null(), "{text}");
            for secret_text in ["ada@example.com", "Ada Lovelace", "555-0100", "cus_42"] {
                assert!(!text.contains(secret_text), "{secret_text} in {text}");
            }
        }
    }
    // The queued delivery, sent now, carries none of it.
    let a = app
        .post(
            &format!(
                "/api/v1/webhooks/{failing_hook}/deliveries/{}/redeliver",
                queued["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.text);
    let got = failing.wait_for(2, 10).await;
    let body = check_signed(&got[1], &secret, "followup.created");
    assert_eq!(got[1].header("webhook-id"), queued["id"].as_str().unwrap());
    assert_eq!(body["data"]["contact"], erased);
    let text = String::from_utf8_lossy(&got[1].body).to_string();
    assert!(
        !text.contains("ada@example.com") && !text.contains("555-0100"),
        "{text}"
    );
}

/// Two replicas on one PostgreSQL database scanning every round: each overdue task is
/// announced exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_postgres_send_each_overdue_event_once() {
    if std::env::var("TEST_POSTGRES_URL")
        .map(|v| v.is_empty())
        .unwrap_or(true)
    {
        eprintln!("TEST_POSTGRES_URL is not set: PostgreSQL variant not run");
        return;
    }
    let settings = [
        ("FOLLOWUP_OVERDUE_CHECK_SECONDS", "0"),
        ("DISPATCH_INTERVAL_MS", "10"),
        ("WEBHOOK_RETRY_BASE_SECONDS", "0"),
    ];
    let app = app(Engine::Postgres, &settings).await;
    let (replica, _outbox) = crate::helpers::spawn_replica(&app, &settings).await;
    tokio::spawn(replica.run_until_stopped());
    let receiver = Receiver::start(&[], 200).await;
    subscribe(&app, &receiver.url, &["followup.overdue"]).await;
    let s = app.nps_survey().await;
    let sid = s["id"].as_str().unwrap().to_string();
    for i in 0..25 {
        let a = app
            .post(
                "/api/v1/responses",
                json!({"survey_id": sid, "score": i % 7}),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
    }
    make_overdue(&app).await;
    receiver.wait_for(25, 20).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let got = receiver.all();
    assert_eq!(got.len(), 25, "no task was announced twice");
    let tasks: std::collections::HashSet<String> = got
        .iter()
        .map(|r| r.json()["data"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tasks.len(), 25);
}

each_engine!(
    payloads_carry_the_contact_the_survey_and_the_task_url,
    unsubscribing_twice_sends_one_event,
    overdue_fires_once_per_task_and_not_for_a_closed_one,
    the_overdue_scan_reads_the_pending_index,
    an_smtp_refusal_sends_invitation_failed,
    erasing_a_contact_scrubs_queued_and_logged_deliveries,
);
