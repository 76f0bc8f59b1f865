//! The feedback loop: unhappy answers become tasks that support leads work to resolved.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{answer, spawn_app_with, tokens, Engine, TestApp};
use crate::smtp::TestSmtp;
use crate::{both_engines, each_engine};

async fn app_with_mail(engine: Engine, smtp: &TestSmtp, extra: &[(&str, &str)]) -> TestApp {
    let url = smtp.url();
    let mut settings = vec![
        ("SMTP_URL", url.as_str()),
        ("SMTP_FROM", "Surveys <surveys@acme.test>"),
        ("TEAM_EMAIL", "support-leads@acme.test"),
        ("PUBLIC_URL", "https://feedback.acme.test"),
        ("DISPATCH_INTERVAL_MS", "50"),
        ("EMAIL_RETRY_BASE_SECONDS", "1"),
        ("SMTP_POOL_SIZE", "2"),
        ("ALERT_DELAY_SECONDS", "0"),
    ];
    settings.extend_from_slice(extra);
    spawn_app_with(engine, &settings).await
}

async fn tasks(app: &TestApp, query: &str) -> Vec<Value> {
    let a = app.get(&format!("/api/v1/followups{query}")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["items"].as_array().unwrap().clone()
}

fn header(msg: &mail_parser::Message<'_>, name: &str) -> String {
    msg.header_raw(name)
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

async fn a_detractor_is_worked_from_email_to_resolved(engine: Engine) {
    let smtp = TestSmtp::start();
    let app = app_with_mail(engine, &smtp, &[]).await;
    let survey = app
        .create_survey(json!({"kind": "nps", "name": "Q4 NPS", "brand": "Acme"}))
        .await;
    let inv = app
        .post(
            &format!("/api/v1/surveys/{}/invitations", survey["id"].as_str().unwrap()),
            json!({"channel": "email", "contacts": [{"email": "ada@example.com", "name": "Ada", "properties": {"plan": "enterprise", "value": 120000}}]}),
        )
        .await;
    let token = inv.body["items"][0]["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let survey_mail = smtp.wait_for(1, 10).await[0].clone();
    let survey_msg_id = survey_mail.parsed().message_id().unwrap().to_string();

    answer(&app, &token, 3, "Exports are far too slow").await;
    // The task is in the queue as soon as the answer is recorded (same transaction).
    let queue = tasks(&app, "?status=open").await;
    assert_eq!(queue.len(), 1);
    let task = &queue[0];
    let id = task["id"].as_str().unwrap().to_string();
    assert_eq!(task["score"], 3);
    assert_eq!(task["priority"], 120000.0);
    assert_eq!(task["comment"], "Exports are far too slow");
    assert_eq!(task["overdue"], false);
    let due = chrono::DateTime::parse_from_rfc3339(task["due_at"].as_str().unwrap()).unwrap();
    let answered =
        chrono::DateTime::parse_from_rfc3339(task["answered_at"].as_str().unwrap()).unwrap();
    assert_eq!(due - answered, chrono::TimeDelta::hours(48), "default SLA");

    // The team is alerted.
    let got = smtp.wait_for(2, 10).await;
    let alert = got
        .iter()
        .find(|m| m.to.iter().any(|t| t.contains("support-leads@acme.test")))
        .expect("an alert");
    let msg = alert.parsed();
    assert_eq!(
        msg.subject(),
        Some("[Closeloop] Detractor 3/10 from Ada <ada@example.com> (Q4 NPS)")
    );
    let text = msg.body_text(0).unwrap().to_string();
    assert!(
        text.contains("\"Exports are far too slow\"")
            && text.contains("Customer: Ada")
            && text.contains("Email: ada@example.com")
            && text.contains("Value: 120000")
            && text.contains("Plan: enterprise")
            && text.contains("Survey: Q4 NPS"),
        "{text}"
    );
    // The link leads to the task's page in the team's workspace.
    let link = format!("https://feedback.acme.test/app/followups/{id}");
    assert!(text.contains(&link), "{text}");
    let html = msg.body_html(0).expect("an HTML part").to_string();
    assert!(
        html.contains("&quot;Exports are far too slow&quot;")
            && html.contains(&format!("<a href=\"{link}\""))
            && html.contains("font-family:-apple-system"),
        "{html}"
    );

    // Assign and start.
    let agent = app.key_with_role("agent").await;
    let a = app
        .send(
            Method::PATCH,
            &format!("/api/v1/followups/{id}"),
            Some(&agent),
            Some(&json!({"assignee": "lea@acme.test", "status": "in_progress"})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        (a.body["status"].as_str(), a.body["assignee"].as_str()),
        (Some("in_progress"), Some("lea@acme.test"))
    );
    let a = app
        .send(
            Method::POST,
            &format!("/api/v1/followups/{id}/notes"),
            Some(&agent),
            Some(&json!({"body": "Called Ada; fix ships Friday."})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    // Reply to the customer, threaded to the survey email.
    let a = app
        .send(
            Method::POST,
            &format!("/api/v1/followups/{id}/reply"),
            Some(&agent),
            Some(&json!({"body": "Hi Ada, thank you. Exports are fixed."})),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.text);
    // survey, alert, the assignment email to lea, the reply
    let got = smtp.wait_for(4, 10).await;
    let reply = got
        .iter()
        .find(|m| {
            m.to.iter().any(|t| t.contains("ada@example.com"))
                && m.parsed()
                    .body_text(0)
                    .is_some_and(|b| b.contains("Exports are fixed"))
        })
        .expect("the reply");
    let msg = reply.parsed();
    assert_eq!(msg.subject(), Some("Re: A quick question from Acme"));
    assert_eq!(msg.from().unwrap().first().unwrap().name(), Some("Acme"));
    assert_eq!(header(&msg, "In-Reply-To"), format!("<{survey_msg_id}>"));
    assert!(header(&msg, "References").contains(&survey_msg_id));
    assert!(header(&msg, "Reply-To").contains("lea@acme.test"));
    // Resolve.
    let a = app
        .send(
            Method::PATCH,
            &format!("/api/v1/followups/{id}"),
            Some(&agent),
            Some(&json!({"status": "resolved", "outcome": "resolved_issue"})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        (a.body["status"].as_str(), a.body["outcome"].as_str()),
        (Some("resolved"), Some("resolved_issue"))
    );
    assert!(a.body["resolved_at"].is_string());

    let detail = app.get(&format!("/api/v1/followups/{id}")).await;
    assert_eq!(detail.status, 200);
    let kinds: Vec<&str> = detail.body["activity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "created",
            "status_changed",
            "assigned",
            "note",
            "replied",
            "status_changed"
        ]
    );
    assert_eq!(detail.body["activity"][3]["actor"], "api-key:agent key");
    assert_eq!(detail.body["activity"][3]["actor_name"], "agent key");
    assert_eq!(detail.body["contact"]["properties"]["plan"], "enterprise");
    assert_eq!(detail.body["response"]["score"], 3);
    assert!(tasks(&app, "?status=open").await.is_empty());
}

async fn only_unhappy_answers_open_tasks(app: TestApp) {
    let nps = app
        .create_survey(json!({"kind": "nps", "name": "n", "throttle_days": 0}))
        .await;
    let csat = app
        .create_survey(json!({"kind": "csat", "name": "c", "throttle_days": 0}))
        .await;
    let n = tokens(
        &app,
        &nps,
        json!([{"email": "a@x.co"}, {"email": "b@x.co"}, {"email": "c@x.co"}, {"email": "d@x.co"}]),
    )
    .await;
    let c = tokens(
        &app,
        &csat,
        json!([{"email": "a@x.co"}, {"email": "b@x.co"}, {"email": "c@x.co"}]),
    )
    .await;
    for (t, s) in n.iter().zip([10, 8, 7, 6]) {
        answer(&app, t, s, "").await;
    }
    for (t, s) in c.iter().zip([5, 3, 2]) {
        answer(&app, t, s, "").await;
    }
    let all = tasks(&app, "").await;
    let mut scores: Vec<i64> = all.iter().map(|t| t["score"].as_i64().unwrap()).collect();
    scores.sort();
    assert_eq!(scores, vec![2, 6], "NPS 6 and CSAT 2 only");
    let anon = app
        .post(
            "/api/v1/responses",
            json!({"survey_id": nps["id"], "score": 0}),
        )
        .await;
    assert_eq!(anon.status, 201);
    let all = tasks(&app, &format!("?survey_id={}", nps["id"].as_str().unwrap())).await;
    assert_eq!(all.len(), 2);
    let anon_task = all
        .iter()
        .find(|t| t["contact_id"].is_null())
        .expect("a task for the anonymous detractor");
    let reply = app
        .post(
            &format!(
                "/api/v1/followups/{}/reply",
                anon_task["id"].as_str().unwrap()
            ),
            json!({"body": "hello"}),
        )
        .await;
    assert_eq!((reply.status, reply.code()), (409, "no_email"));
}

async fn ten_concurrent_submits_of_one_detractor_answer_make_one_task(app: TestApp) {
    let s = app.nps_survey().await;
    let t = tokens(&app, &s, json!([{"email": "a@x.co"}]))
        .await
        .remove(0);
    let posts = (0..10).map(|_| {
        let client = app.client.clone();
        let url = app.url(&format!("/s/{t}"));
        async move {
            client
                .post(url)
                .form(&[("score", "2"), ("comment", "bad")])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == 303), "{statuses:?}");
    let all = tasks(&app, "").await;
    assert_eq!(all.len(), 1);
    let detail = app
        .get(&format!(
            "/api/v1/followups/{}",
            all[0]["id"].as_str().unwrap()
        ))
        .await;
    let created = detail.body["activity"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "created")
        .count();
    assert_eq!(created, 1);
}

async fn changing_the_score_resolves_and_reopens_without_deleting(app: TestApp) {
    let s = app.nps_survey().await;
    let t = tokens(&app, &s, json!([{"email": "a@x.co"}]))
        .await
        .remove(0);
    answer(&app, &t, 4, "meh").await;
    let id = tasks(&app, "").await[0]["id"].as_str().unwrap().to_string();
    answer(&app, &t, 9, "actually great").await;
    let task = app.get(&format!("/api/v1/followups/{id}")).await.body;
    assert_eq!(
        (
            task["status"].as_str(),
            task["outcome"].as_str(),
            task["score"].as_i64()
        ),
        (Some("resolved"), Some("score_raised"), Some(9))
    );
    assert_eq!(task["comment"], "actually great");
    answer(&app, &t, 1, "worse again").await;
    let task = app.get(&format!("/api/v1/followups/{id}")).await.body;
    assert_eq!(
        (task["status"].as_str(), task["score"].as_i64()),
        (Some("open"), Some(1))
    );
    assert!(task["outcome"].is_null() && task["resolved_at"].is_null());
    let kinds: Vec<&str> = task["activity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "created",
            "score_changed",
            "status_changed",
            "score_changed",
            "status_changed"
        ]
    );
    assert_eq!(
        task["activity"][1]["data"],
        json!({"from": 4, "to": 9, "category": "promoter"})
    );
    assert_eq!(tasks(&app, "").await.len(), 1, "still one task");
    // A promoter who was never unhappy: no task at all, even after changes within the range.
    let t2 = tokens(&app, &s, json!([{"email": "b@x.co"}]))
        .await
        .remove(0);
    answer(&app, &t2, 10, "").await;
    answer(&app, &t2, 9, "").await;
    assert_eq!(tasks(&app, "").await.len(), 1);
}

async fn with_resolve_on_raise_off_the_task_stays_open(engine: Engine) {
    let app = spawn_app_with(engine, &[("FOLLOWUP_RESOLVE_ON_RAISE", "false")]).await;
    let s = app.nps_survey().await;
    let t = tokens(&app, &s, json!([{"email": "a@x.co"}]))
        .await
        .remove(0);
    answer(&app, &t, 4, "").await;
    answer(&app, &t, 10, "").await;
    let task = &tasks(&app, "").await[0];
    assert_eq!(
        (task["status"].as_str(), task["score"].as_i64()),
        (Some("open"), Some(10))
    );
}

async fn the_queue_puts_the_most_valuable_customers_first(app: TestApp) {
    let s = app
        .create_survey(json!({"kind": "nps", "name": "x", "throttle_days": 0}))
        .await;
    let t = tokens(
        &app,
        &s,
        json!([
            {"email": "small@x.co", "properties": {"value": 50}},
            {"email": "big-mild@x.co", "properties": {"value": 1000}},
            {"email": "big-angry@x.co", "properties": {"value": 1000}},
            {"email": "unknown@x.co"},
            {"email": "big-angry-later@x.co", "properties": {"value": 1000}}
        ]),
    )
    .await;
    for (token, score) in t.iter().zip([0, 5, 2, 0, 2]) {
        answer(&app, token, score, "").await;
    }
    let contact_email = |task: &Value| {
        let id = task["contact_id"].as_str().unwrap().to_string();
        let app = &app;
        async move {
            app.get(&format!("/api/v1/contacts/{id}")).await.body["email"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let queue = tasks(&app, "?sort=priority").await;
    let mut order = Vec::new();
    for task in &queue {
        order.push(contact_email(task).await);
    }
    assert_eq!(
        order,
        vec![
            "big-angry@x.co",
            "big-angry-later@x.co",
            "big-mild@x.co",
            "small@x.co",
            "unknown@x.co"
        ]
    );
    // Pages of 2 walk the same order.
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let a = app
            .get(&format!("/api/v1/followups?sort=priority&limit=2{cursor}"))
            .await;
        paged.extend(
            a.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].clone()),
        );
        match a.body["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        paged,
        queue.iter().map(|t| t["id"].clone()).collect::<Vec<_>>()
    );
    let newest = tasks(&app, "?sort=created_at").await;
    assert_eq!(contact_email(&newest[0]).await, "big-angry-later@x.co");
    assert_eq!(tasks(&app, "?sort=due_at").await.len(), 5);
}

async fn overdue_tasks_are_filtered_and_sent_in_a_daily_digest(engine: Engine) {
    let smtp = TestSmtp::start();
    let app = app_with_mail(engine, &smtp, &[("DIGEST_HOUR_UTC", "0")]).await;
    let s = app.nps_survey().await;
    let t = tokens(&app, &s, json!([{"email": "a@x.co"}, {"email": "b@x.co"}])).await;
    answer(&app, &t[0], 1, "").await;
    answer(&app, &t[1], 2, "").await;
    let all = tasks(&app, "").await;
    let late = all.iter().find(|x| x["score"] == 1).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Two alerts, and the digest ran (nothing was overdue yet, so nothing was sent).
    smtp.wait_for(2, 10).await;
    let state = app.app_state.clone();
    let late2 = late.clone();
    tokio::task::spawn_blocking(move || {
        use closeloop::store::schema::{followups, job_runs};
        use diesel::prelude::*;
        let mut conn = state.db.get().unwrap();
        diesel::update(followups::table.find(late2))
            .set(followups::due_at.eq(closeloop::domain::now() - chrono::TimeDelta::hours(1)))
            .execute(&mut conn)
            .unwrap();
        // Today's digest already ran with nothing to say; let it run again.
        diesel::delete(job_runs::table).execute(&mut conn).unwrap();
    })
    .await
    .unwrap();
    let overdue = tasks(&app, "?overdue=true").await;
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0]["id"], late.as_str());
    assert_eq!(overdue[0]["overdue"], true);
    assert_eq!(tasks(&app, "?overdue=false").await.len(), 1);
    // A fresh replica's dispatcher (the first one remembers it already checked today).
    let url = smtp.url();
    let (replica, _o) = crate::helpers::spawn_replica(
        &app,
        &[
            ("SMTP_URL", url.as_str()),
            ("TEAM_EMAIL", "support-leads@acme.test"),
            ("PUBLIC_URL", "https://feedback.acme.test"),
            ("DIGEST_HOUR_UTC", "0"),
            ("DISPATCH_INTERVAL_MS", "50"),
        ],
    )
    .await;
    tokio::spawn(replica.run_until_stopped());
    let got = smtp.wait_for(3, 10).await;
    let digest = got
        .iter()
        .find(|m| m.parsed().subject().is_some_and(|s| s.contains("overdue")))
        .expect("a digest");
    let msg = digest.parsed();
    assert_eq!(
        msg.subject(),
        Some("[Closeloop] 1 overdue follow-up task(s)")
    );
    let text = msg.body_text(0).unwrap().to_string();
    assert!(
        text.contains(&format!(
            "Open: https://feedback.acme.test/app/followups/{late}"
        )),
        "{text}"
    );
    // Each task with its customer, survey, score and comment.
    assert!(
        text.contains("a@x.co, NPS: score 1/10") && text.contains("Comment: (no comment)"),
        "{text}"
    );
    let html = msg.body_html(0).unwrap();
    assert!(
        html.contains("a@x.co")
            && html.contains(&format!(
                "<a href=\"https://feedback.acme.test/app/followups/{late}\""
            )),
        "{html}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let digests = smtp
        .received()
        .iter()
        .filter(|m| m.parsed().subject().is_some_and(|s| s.contains("overdue")))
        .count();
    assert_eq!(digests, 1, "once per day");
}

async fn a_survey_rule_assigns_new_tasks_and_alerts_the_assignee(engine: Engine) {
    let smtp = TestSmtp::start();
    let app = app_with_mail(engine, &smtp, &[]).await;
    let s = app
        .create_survey(
            json!({"kind": "csat", "name": "Support", "followup_assignee": "Lea@Acme.test"}),
        )
        .await;
    assert_eq!(s["followup_assignee"], "lea@acme.test");
    let t = tokens(&app, &s, json!([{"email": "a@x.co"}]))
        .await
        .remove(0);
    answer(&app, &t, 1, "").await;
    let task = &tasks(&app, "?assignee=lea@acme.test").await[0];
    assert_eq!(task["assignee"], "lea@acme.test");
    let got = smtp.wait_for(1, 10).await;
    assert!(
        got[0].to.iter().any(|t| t.contains("lea@acme.test")),
        "{:?}",
        got[0].to
    );
    assert_eq!(
        got[0].parsed().subject(),
        Some("[Closeloop] Unsatisfied 1/5 from a@x.co (Support)")
    );
}

async fn bad_task_changes_are_refused_with_reasons(app: TestApp) {
    let s = app.nps_survey().await;
    let t = tokens(&app, &s, json!([{"email": "a@x.co"}]))
        .await
        .remove(0);
    answer(&app, &t, 0, "").await;
    let id = tasks(&app, "").await[0]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/followups/{id}");
    for (body, field) in [
        (json!({"status": "resolved", "outcome": "fixed"}), "outcome"),
        (
            json!({"status": "resolved", "outcome": "score_raised"}),
            "outcome",
        ),
        (json!({"status": "resolved", "note": " "}), "note"),
        (json!({"status": "done"}), "status"),
        (json!({"status": null}), "status"),
        (json!({"assignee": ""}), "assignee"),
        (json!({"assignee": "x".repeat(201)}), "assignee"),
        (json!({"priority": 1}), "priority"),
        (json!({"outcome": "fixed"}), "outcome"),
    ] {
        let a = app.patch(&path, body.clone()).await;
        assert_eq!(a.status, 422, "{body}: {}", a.text);
        assert!(!a.field(field).is_empty(), "{body}: {}", a.text);
    }
    app.patch(&path, json!({"status": "in_progress"})).await;
    let a = app.patch(&path, json!({"status": "open"})).await;
    assert_eq!(a.status, 409);
    let a = app
        .patch(
            &path,
            json!({"status": "dismissed", "outcome": "no_action_needed"}),
        )
        .await;
    assert_eq!(a.status, 200);
    let a = app.patch(&path, json!({"status": "in_progress"})).await;
    assert_eq!(a.status, 409, "reopen first");
    assert_eq!(
        app.patch(&path, json!({"status": "open"})).await.body["status"],
        "open"
    );
    assert_eq!(
        app.patch(&path, json!({"assignee": null})).await.status,
        200
    );
    for (body, field) in [(json!({"body": " "}), "body"), (json!({}), "body")] {
        let a = app.post(&format!("{path}/notes"), body).await;
        assert_eq!(a.status, 422);
        assert!(!a.field(field).is_empty());
    }
    assert_eq!(
        app.post(&format!("{path}/reply"), json!({"body": ""}))
            .await
            .status,
        422
    );
    let reader = app.key_with_role("reader").await;
    assert_eq!(
        app.send(Method::GET, &path, Some(&reader), None)
            .await
            .status,
        200
    );
    assert_eq!(
        app.send(
            Method::PATCH,
            &path,
            Some(&reader),
            Some(&json!({"status": "in_progress"}))
        )
        .await
        .status,
        403
    );
    assert_eq!(
        app.send(
            Method::POST,
            &format!("{path}/notes"),
            Some(&reader),
            Some(&json!({"body": "x"}))
        )
        .await
        .status,
        403
    );
    assert_eq!(
        app.get("/api/v1/followups/fup_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2")
            .await
            .status,
        404
    );
    assert_eq!(
        app.patch(
            "/api/v1/followups/fup_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2",
            json!({"status": "open"})
        )
        .await
        .status,
        404
    );
    for q in [
        "?status=lost",
        "?sort=value",
        "?limit=0",
        "?cursor=-1",
        "?cursor=abc",
        "?overdue=maybe",
    ] {
        let a = app.get(&format!("/api/v1/followups{q}")).await;
        assert!(a.status == 400 || a.status == 422, "{q}: {}", a.text);
    }
}

/// The new-task alert waits `ALERT_DELAY_SECONDS` and carries the answer as it stands then;
/// a task closed in the meantime alerts nobody; a task the customer reopens alerts again.
async fn the_alert_waits_for_the_final_answer(engine: Engine) {
    let smtp = TestSmtp::start();
    let app = app_with_mail(engine, &smtp, &[("ALERT_DELAY_SECONDS", "2")]).await;
    let s = app.nps_survey().await;
    let t = tokens(&app, &s, json!([{"email": "a@x.co"}, {"email": "b@x.co"}])).await;
    answer(&app, &t[0], 6, "").await;
    answer(&app, &t[1], 6, "").await;
    // Within the grace period: a lowers the score and adds a comment, b raises it.
    answer(&app, &t[0], 4, "The export is too slow").await;
    answer(&app, &t[1], 9, "").await;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert!(
        smtp.received().is_empty(),
        "nothing before the grace period"
    );
    let got = smtp.wait_for(1, 10).await;
    let msg = got[0].parsed();
    assert_eq!(
        msg.subject(),
        Some("[Closeloop] Detractor 4/10 from a@x.co (NPS)")
    );
    let text = msg.body_text(0).unwrap().to_string();
    assert!(text.contains("\"The export is too slow\""), "{text}");
    assert!(msg.body_html(0).unwrap().contains("The export is too slow"));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        smtp.received().len(),
        1,
        "no alert for the task closed by the raised score"
    );
    // b lowers the score again: the task reopens and the team hears of it.
    answer(&app, &t[1], 2, "Actually it broke again").await;
    let got = smtp.wait_for(2, 10).await;
    let msg = got[1].parsed();
    assert_eq!(
        msg.subject(),
        Some("[Closeloop] Detractor 2/10 from b@x.co (NPS)")
    );
    assert!(msg
        .body_text(0)
        .unwrap()
        .contains("\"Actually it broke again\""));
}

each_engine!(
    a_detractor_is_worked_from_email_to_resolved,
    the_alert_waits_for_the_final_answer,
    with_resolve_on_raise_off_the_task_stays_open,
    overdue_tasks_are_filtered_and_sent_in_a_daily_digest,
    a_survey_rule_assigns_new_tasks_and_alerts_the_assignee,
);

both_engines!(
    only_unhappy_answers_open_tasks,
    ten_concurrent_submits_of_one_detractor_answer_make_one_task,
    changing_the_score_resolves_and_reopens_without_deleting,
    the_queue_puts_the_most_valuable_customers_first,
    bad_task_changes_are_refused_with_reasons,
);
