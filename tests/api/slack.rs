//! Slack alerts and the SSRF guard: new follow-ups reach a Slack-format receiver (a tiny local
//! HTTP server) as Block Kit messages through the webhook outbox, and webhook/Slack URLs
//! into the server's own network are refused when saved and when delivered.

use std::time::Duration;

use serde_json::{json, Value};

use crate::each_engine;
use crate::helpers::{answer, eventually, spawn_app_with, tokens, with_db, Engine, TestApp};
use crate::webhooks::{deliveries, fast_app, subscribe, Receiver};

/// The guard on (the harness turns it off for its loopback receivers).
const GUARD_ON: (&str, &str) = ("WEBHOOK_ALLOW_PRIVATE", "false");

/// The id of the only follow-up task.
async fn only_task(app: &TestApp) -> String {
    let a = app.get("/api/v1/followups").await;
    assert_eq!(a.status, 200, "{}", a.text);
    let items = a.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", a.text);
    items[0]["id"].as_str().unwrap().to_string()
}

/// The (status, last_error) of every Slack delivery in the outbox.
async fn slack_rows(app: &TestApp) -> Vec<(String, Option<String>)> {
    use closeloop::store::schema::webhook_deliveries as d;
    use diesel::prelude::*;
    with_db(app, |conn| {
        d::table
            .filter(d::kind.eq("slack"))
            .select((d::status, d::last_error))
            .load::<(String, Option<String>)>(conn)
            .unwrap()
    })
    .await
}

/// The texts of every section block of a Slack message.
fn section_texts(msg: &Value) -> String {
    msg["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .filter(|b| b["type"] == "section")
        .map(|b| b["text"]["text"].as_str().unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn a_detractor_is_posted_as_block_kit_after_the_grace_period(engine: Engine) {
    let slack = Receiver::start(&[], 200).await;
    let app = fast_app(
        engine,
        &[
            ("SLACK_WEBHOOK_URL", slack.url.as_str()),
            ("ALERT_DELAY_SECONDS", "2"),
            ("PUBLIC_URL", "https://feedback.acme.test"),
        ],
    )
    .await;
    let survey = app
        .create_survey(json!({"kind": "nps", "name": "Q4 <NPS> & more"}))
        .await;
    let t = tokens(
        &app,
        &survey,
        json!([{"email": "ada@example.com", "name": "Ada Lovelace", "properties": {"value": 12000, "company": "Analytical Engines"}}]),
    )
    .await;
    // The answer first, the comment a moment later (the thank-you page): the message, built
    // when it is sent, has both.
    answer(&app, &t[0], 3, "").await;
    answer(&app, &t[0], 3, "Too <slow> & pricey\n<!channel>").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(slack.count(), 0, "nothing before the grace period ends");
    let got = slack.wait_for(1, 10).await;
    let task = only_task(&app).await;
    let r = &got[0];
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(
        r.header("webhook-signature"),
        "",
        "Slack messages are not signed"
    );
    let msg = r.json();
    let text = section_texts(&msg);
    for part in [
        "3/10 (detractor)",
        "Ada Lovelace (ada@example.com)",
        "Analytical Engines",
        "*Value:* 12000",
        "Q4 &lt;NPS&gt; &amp; more",
        ">Too &lt;slow&gt; &amp; pricey",
        ">&lt;!channel&gt;",
    ] {
        assert!(text.contains(part), "{part:?} in {text}");
    }
    assert!(
        !text.contains("<!channel>"),
        "customer text cannot mention: {text}"
    );
    let button = msg["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("an actions block")["elements"][0]
        .clone();
    assert_eq!(button["type"], "button");
    assert_eq!(
        button["url"],
        format!("https://feedback.acme.test/app/followups/{task}")
    );
    let fallback = msg["text"].as_str().expect("a text fallback");
    assert!(
        fallback.contains("3/10") && fallback.contains("Ada Lovelace"),
        "{fallback}"
    );
    assert_eq!(msg["blocks"][0]["type"], "header");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slack.count(), 1, "one message per task");
    assert_eq!(slack_rows(&app).await, vec![("delivered".into(), None)]);
    // Not a webhook: nothing is listed under the webhooks API.
    let hooks = app.get("/api/v1/webhooks").await;
    assert_eq!(hooks.body["items"], json!([]));
}

async fn a_failing_slack_endpoint_is_retried_until_it_succeeds(engine: Engine) {
    let slack = Receiver::start(&[500, 503], 200).await;
    let app = fast_app(
        engine,
        &[
            ("SLACK_WEBHOOK_URL", slack.url.as_str()),
            ("ALERT_DELAY_SECONDS", "0"),
        ],
    )
    .await;
    let survey = app.nps_survey().await;
    let t = tokens(&app, &survey, json!([{"email": "bob@example.com"}])).await;
    answer(&app, &t[0], 1, "Broken").await;
    let got = slack.wait_for(3, 15).await;
    assert_eq!(got[0].body, got[2].body, "the same message each time");
    assert!(section_texts(&got[2].json()).contains("Broken"));
    let rows = eventually(5, "the message delivered", || async {
        let rows = slack_rows(&app).await;
        (rows.first().map(|r| r.0.as_str()) == Some("delivered")).then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slack.count(), 3, "nothing more after success");
}

async fn a_survey_url_overrides_the_global_one_and_happy_answers_post_nothing(engine: Engine) {
    let global = Receiver::start(&[], 200).await;
    let own = Receiver::start(&[], 200).await;
    let app = fast_app(
        engine,
        &[
            ("SLACK_WEBHOOK_URL", global.url.as_str()),
            ("ALERT_DELAY_SECONDS", "0"),
        ],
    )
    .await;
    let mine = app
        .create_survey(json!({"kind": "csat", "name": "Support", "slack_webhook_url": own.url}))
        .await;
    assert_eq!(mine["slack_webhook_url"], own.url.as_str());
    let plain = app.nps_survey().await;
    let a = tokens(&app, &mine, json!([{"email": "a@example.com"}])).await;
    let b = tokens(&app, &plain, json!([{"email": "b@example.com"}])).await;
    answer(&app, &a[0], 2, "Slow reply").await;
    let got = own.wait_for(1, 10).await;
    assert!(section_texts(&got[0].json()).contains("2/5 (unsatisfied)"));
    // A happy answer opens no task and posts nothing.
    answer(&app, &b[0], 10, "Great").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        global.count(),
        0,
        "the survey's own URL wins; happy answers post nothing"
    );
    assert_eq!(own.count(), 1);
}

async fn a_task_closed_before_the_grace_period_ends_is_not_posted(engine: Engine) {
    let slack = Receiver::start(&[], 200).await;
    let app = fast_app(
        engine,
        &[
            ("SLACK_WEBHOOK_URL", slack.url.as_str()),
            ("ALERT_DELAY_SECONDS", "1"),
        ],
    )
    .await;
    let survey = app.nps_survey().await;
    let t = tokens(&app, &survey, json!([{"email": "c@example.com"}])).await;
    answer(&app, &t[0], 4, "").await;
    // The customer changes their mind at once: the task is resolved (score_raised).
    answer(&app, &t[0], 9, "Actually fine").await;
    let rows = eventually(10, "the Slack message to be dropped", || async {
        let rows = slack_rows(&app).await;
        (rows.first().map(|r| r.0.as_str()) == Some("failed")).then_some(rows)
    })
    .await;
    assert_eq!(
        rows[0].1.as_deref(),
        Some("not sent: the task was closed before the message was due")
    );
    assert_eq!(slack.count(), 0);
}

async fn the_survey_slack_url_is_set_read_cleared_and_validated(engine: Engine) {
    let app = spawn_app_with(engine, &[]).await;
    let s = app.nps_survey().await;
    assert_eq!(s["slack_webhook_url"], Value::Null);
    let id = s["id"].as_str().unwrap();
    let path = format!("/api/v1/surveys/{id}");
    let url = "https://hooks.slack.com/services/T0/B0/abc";
    let a = app.patch(&path, json!({"slack_webhook_url": url})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(app.get(&path).await.body["slack_webhook_url"], url);
    for bad in [
        "ftp://x.example.com/",
        "hooks.slack.com/services/x",
        "",
        "https://",
    ] {
        let a = app.patch(&path, json!({"slack_webhook_url": bad})).await;
        assert_eq!(a.status, 422, "{bad:?}: {}", a.text);
        assert!(!a.field("slack_webhook_url").is_empty(), "{}", a.text);
    }
    let a = app.patch(&path, json!({"slack_webhook_url": null})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["slack_webhook_url"], Value::Null);
    let a = app
        .post(
            "/api/v1/surveys",
            json!({"kind": "nps", "name": "x", "slack_webhook_url": 5}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
}

async fn the_guard_refuses_private_targets_when_they_are_saved(engine: Engine) {
    let app = spawn_app_with(engine, &[GUARD_ON]).await;
    let create = |url: &'static str| {
        let app = &app;
        async move {
            app.post(
                "/api/v1/webhooks",
                json!({"url": url, "events": ["response.created"]}),
            )
            .await
        }
    };
    for (url, why) in [
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://localhost:9/hook", "localhost"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://100.64.0.1/hook", "carrier-grade NAT"),
        ("http://0.0.0.0:9/hook", "unspecified"),
    ] {
        let a = create(url).await;
        assert_eq!(a.status, 422, "{url}: {}", a.text);
        let msg = a.field("url").join(" ");
        assert!(
            msg.contains(why) && msg.contains("WEBHOOK_ALLOW_PRIVATE"),
            "{url}: {msg}"
        );
    }
    // A public address passes (no DNS needed), and PATCH is guarded too.
    let a = create("https://93.184.216.34/hook").await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["id"].as_str().unwrap();
    let a = app
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            json!({"url": "http://172.16.5.4/hook"}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(a.field("url")[0].contains("private"), "{}", a.text);
    let a = app.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(a.body["url"], "https://93.184.216.34/hook", "unchanged");
    // A survey's Slack URL: https only, and through the guard.
    let a = app
        .post(
            "/api/v1/surveys",
            json!({"kind": "nps", "name": "x", "slack_webhook_url": "http://93.184.216.34/x"}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(
        a.field("slack_webhook_url")[0].contains("https://"),
        "{}",
        a.text
    );
    let a = app
        .post(
            "/api/v1/surveys",
            json!({"kind": "nps", "name": "x", "slack_webhook_url": "https://localhost/x"}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(
        a.field("slack_webhook_url")[0].contains("localhost"),
        "{}",
        a.text
    );
}

async fn a_delivery_whose_host_now_resolves_private_is_refused(engine: Engine) {
    // Saved while private addresses were allowed (or while DNS said otherwise), delivered by
    // a replica with the guard on: the host is resolved and checked at delivery.
    let receiver = Receiver::start(&[], 200).await;
    let app = fast_app(engine, &[("WEBHOOKS", "off")]).await;
    let url = receiver.url.replace("127.0.0.1", "localhost");
    let (hook, _) = subscribe(&app, &url, &["response.created"]).await;
    let (literal, _) = subscribe(&app, &receiver.url, &["response.created"]).await;
    let s = app.nps_survey().await;
    let a = app
        .post(
            "/api/v1/responses",
            json!({"survey_id": s["id"], "score": 8}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let (replica, _outbox) = crate::helpers::spawn_replica(
        &app,
        &[
            GUARD_ON,
            ("DISPATCH_INTERVAL_MS", "50"),
            ("WEBHOOK_RETRY_BASE_SECONDS", "0"),
        ],
    )
    .await;
    tokio::spawn(replica.run_until_stopped());
    for (id, what) in [(&hook, "localhost"), (&literal, "127.0.0.1")] {
        let d = eventually(10, "the delivery to fail", || async {
            deliveries(&app, id)
                .await
                .into_iter()
                .find(|d| d["status"] == "failed")
        })
        .await;
        let error = d["last_error"].as_str().unwrap();
        assert!(
            error.starts_with("refused by the SSRF guard") && error.contains("loopback"),
            "{what}: {error}"
        );
        assert!(error.contains(what), "{what}: {error}");
        assert_eq!(d["attempt_count"], 1, "not retried: {d}");
        assert_eq!(d["attempts"][0]["error"].as_str(), Some(error));
    }
    assert_eq!(receiver.count(), 0, "nothing reached the private address");
}

async fn the_workspace_forms_refuse_private_targets_with_the_reason(engine: Engine) {
    let app = spawn_app_with(engine, &[GUARD_ON]).await;
    let admin = app
        .sign_in("boss@acme.test", "Bea Boss", closeloop::domain::Role::Admin)
        .await;
    let (status, _, page) = app
        .post_as(
            &admin,
            "/app/settings/webhooks",
            &[
                ("url", "http://169.254.169.254/latest/meta-data"),
                ("events", "response.created"),
            ],
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("link-local"), "{page}");
    assert_eq!(app.get("/api/v1/webhooks").await.body["items"], json!([]));
    let s = app.nps_survey().await;
    let (status, _, page) = app
        .post_as(
            &admin,
            &format!("/app/surveys/{}/edit", s["id"].as_str().unwrap()),
            &[
                ("name", "NPS"),
                ("kind", "nps"),
                ("locale", "en"),
                ("slack_webhook_url", "https://127.0.0.1/services/x"),
            ],
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(
        page.contains("Slack webhook URL points to a loopback address"),
        "{page}"
    );
}

each_engine!(
    the_workspace_forms_refuse_private_targets_with_the_reason,
    a_detractor_is_posted_as_block_kit_after_the_grace_period,
    a_failing_slack_endpoint_is_retried_until_it_succeeds,
    a_survey_url_overrides_the_global_one_and_happy_answers_post_nothing,
    a_task_closed_before_the_grace_period_ends_is_not_posted,
    the_survey_slack_url_is_set_read_cleared_and_validated,
    the_guard_refuses_private_targets_when_they_are_saved,
    a_delivery_whose_host_now_resolves_private_is_refused,
);
