//! Closing the loop, measured: `resurvey_after_days` re-surveys customers whose follow-up was
//! resolved, and the report's `recovery` block counts who came back out of the unhappy range.

use std::time::Duration;

use closeloop::domain::Role;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{answer, spawn_app_with, Engine, TestApp};
use crate::smtp::TestSmtp;
use crate::{both_engines, each_engine};

/// The settings of a server (or replica) that mails through `smtp` and looks for due
/// re-surveys every round.
fn mail_settings(smtp_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SMTP_URL", smtp_url.to_string()),
        ("SMTP_FROM", "Surveys <surveys@acme.test>".into()),
        ("PUBLIC_URL", "https://feedback.acme.test".into()),
        ("DISPATCH_INTERVAL_MS", "50".into()),
        ("RESURVEY_CHECK_SECONDS", "0".into()),
        ("ALERT_DELAY_SECONDS", "0".into()),
    ]
}

fn borrowed<'a>(settings: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    settings.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn app_with_mail(engine: Engine, smtp: &TestSmtp) -> TestApp {
    let settings = mail_settings(&smtp.url());
    spawn_app_with(engine, &borrowed(&settings)).await
}

/// Invites `emails` by link; returns (contact id, token) of each, in order.
async fn invite_links(app: &TestApp, survey_id: &str, emails: &[&str]) -> Vec<(String, String)> {
    let contacts: Vec<Value> = emails.iter().map(|e| json!({"email": e})).collect();
    let a = app
        .post(
            &format!("/api/v1/surveys/{survey_id}/invitations"),
            json!({"channel": "link", "contacts": contacts}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let url = i["url"].as_str().unwrap();
            (
                i["contact_id"].as_str().unwrap().to_string(),
                url.rsplit('/').next().unwrap().to_string(),
            )
        })
        .collect()
}

/// The follow-up task of a contact (the only one in `status`).
async fn task_of(app: &TestApp, survey_id: &str, contact_id: &str) -> Value {
    let a = app
        .get(&format!(
            "/api/v1/followups?survey_id={survey_id}&limit=100"
        ))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["contact_id"] == contact_id)
        .cloned()
        .unwrap_or_else(|| panic!("a task for {contact_id}"))
}

async fn patch_task(app: &TestApp, id: &str, body: Value) {
    let a = app
        .send(
            Method::PATCH,
            &format!("/api/v1/followups/{id}"),
            Some(&app.key),
            Some(&body),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
}

/// Moves the resolution of every resolved task `days` (and a minute) into the past: the
/// clock of the re-survey rule, as the reminder test moves `sent_at`.
async fn resolved_days_ago(app: &TestApp, days: i64) {
    let state = app.app_state.clone();
    tokio::task::spawn_blocking(move || {
        use closeloop::store::schema::followups::dsl::*;
        use diesel::prelude::*;
        let mut conn = state.db.get().unwrap();
        diesel::update(followups.filter(status.eq("resolved")))
            .set(resolved_at.eq(Some(
                closeloop::domain::now()
                    - chrono::TimeDelta::days(days)
                    - chrono::TimeDelta::minutes(1),
            )))
            .execute(&mut conn)
            .unwrap();
    })
    .await
    .unwrap()
}

/// The invitations of a survey made by the re-survey rule.
async fn resurveys(app: &TestApp, survey_id: &str) -> Vec<Value> {
    let a = app
        .get(&format!(
            "/api/v1/invitations?survey_id={survey_id}&limit=100"
        ))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["origin"] == "resurvey")
        .cloned()
        .collect()
}

/// Messages the SMTP server got for customers (not alerts to the team).
fn customer_mail(smtp: &TestSmtp) -> Vec<String> {
    let mut to: Vec<String> = smtp
        .received()
        .iter()
        .flat_map(|m| m.to.clone())
        .filter(|t| t.ends_with("@customer.test"))
        .collect();
    to.sort();
    to
}

async fn resolved_detractors_are_asked_again_once_and_the_recovery_block_counts_them(
    engine: Engine,
) {
    let smtp = TestSmtp::start();
    let app = app_with_mail(engine, &smtp).await;
    let s = app
        .create_survey(json!({
            "kind": "nps", "name": "NPS", "brand": "Acme",
            "throttle_days": 0, "resurvey_after_days": 30
        }))
        .await;
    assert_eq!(s["resurvey_after_days"], 30);
    let sid = s["id"].as_str().unwrap();
    let emails = [
        "c1@customer.test",
        "c2@customer.test",
        "c3@customer.test",
        "c4@customer.test",
        "c5@customer.test",
        "c6@customer.test",
        "c7@customer.test",
    ];
    let people = invite_links(&app, sid, &emails).await;
    // Six unhappy answers and a promoter.
    for ((_, token), score) in people.iter().zip([2, 5, 6, 3, 0, 4, 10]) {
        answer(&app, token, score, "not great").await;
    }
    // c1–c5 resolved (outcome, assignee), c6 dismissed.
    let plan = [
        ("explained", "lea@acme.test"),
        ("resolved_issue", "max@acme.test"),
        ("explained", "lea@acme.test"),
        ("explained", "max@acme.test"),
        ("compensated", "lea@acme.test"),
    ];
    let mut task_ids = Vec::new();
    for ((contact, _), (outcome, assignee)) in people.iter().zip(plan) {
        let t = task_of(&app, sid, contact).await;
        let id = t["id"].as_str().unwrap().to_string();
        patch_task(&app, &id, json!({"assignee": assignee})).await;
        patch_task(&app, &id, json!({"status": "resolved", "outcome": outcome})).await;
        task_ids.push(id);
    }
    let t6 = task_of(&app, sid, &people[5].0).await;
    patch_task(
        &app,
        t6["id"].as_str().unwrap(),
        json!({"status": "dismissed"}),
    )
    .await;
    // c5 unsubscribes (with the token of their first invitation).
    let res = app
        .client
        .post(app.url(&format!("/u/{}", people[4].1)))
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // 29 days later: not yet.
    resolved_days_ago(&app, 29).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(resurveys(&app, sid).await.is_empty());
    assert!(customer_mail(&smtp).is_empty());

    // 30 days later: one invitation each; c5's is suppressed (unsubscribed), c6 has none.
    resolved_days_ago(&app, 30).await;
    crate::helpers::eventually(10, "four re-survey emails", || async {
        (customer_mail(&smtp).len() >= 4).then_some(())
    })
    .await;
    assert_eq!(
        customer_mail(&smtp),
        [
            "c1@customer.test",
            "c2@customer.test",
            "c3@customer.test",
            "c4@customer.test"
        ]
    );
    let made = resurveys(&app, sid).await;
    assert_eq!(made.len(), 5, "{made:?}");
    let c5 = made
        .iter()
        .find(|i| i["contact_id"] == people[4].0.as_str())
        .expect("c5's re-survey is recorded");
    assert_eq!(
        (c5["status"].as_str(), c5["reason"].as_str()),
        (Some("suppressed"), Some("unsubscribed"))
    );
    assert!(made.iter().all(|i| i["channel"] == "email"));
    let mail = smtp.received();
    let first = mail
        .iter()
        .find(|m| m.to == ["c1@customer.test"])
        .unwrap()
        .parsed();
    let text = first.body_text(0).unwrap().to_string();
    let c1_inv = made
        .iter()
        .find(|i| i["contact_id"] == people[0].0.as_str())
        .unwrap();
    assert!(text.contains(c1_inv["url"].as_str().unwrap()), "{text}");
    let detail = app.get(&format!("/api/v1/followups/{}", task_ids[0])).await;
    assert_eq!(detail.body["resurvey_invitation_id"], c1_inv["id"]);
    assert!(detail.body["activity"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["kind"] == "resurveyed"));

    // Re-resolving a task, and more rounds of the job, send nothing more.
    patch_task(&app, &task_ids[0], json!({"status": "open"})).await;
    patch_task(
        &app,
        &task_ids[0],
        json!({"status": "resolved", "outcome": "explained"}),
    )
    .await;
    resolved_days_ago(&app, 30).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(customer_mail(&smtp).len(), 4);
    assert_eq!(resurveys(&app, sid).await.len(), 5);

    // c1 → 9 and c2 → 7 leave the range, c3 → 4 does not, c4 does not answer.
    for (who, score) in [(0usize, 9), (1, 7), (2, 4)] {
        let inv = made
            .iter()
            .find(|i| i["contact_id"] == people[who].0.as_str())
            .unwrap();
        let token = inv["url"].as_str().unwrap().rsplit('/').next().unwrap();
        answer(&app, token, score, "better").await;
    }

    let report = app.get(&format!("/api/v1/surveys/{sid}/report")).await;
    assert_eq!(report.status, 200, "{}", report.text);
    let r = &report.body["recovery"];
    // By hand: 5 resolved (c6 was dismissed), 4 sent (c5 unsubscribed), 3 answered,
    // 2 recovered (9 and 7 ≥ 7; 4 is not): 2/3 = 66.67 %.
    // Wilson, k = 2, n = 3, z = 1.96: z² = 3.8415, centre = (0.6667 + 0.6402) / 2.2805
    // = 0.5731, half = 1.96·√(0.2222/3 + 3.8415/36) / 2.2805 = 0.3654 → [20.77, 93.85].
    // Score change: ((9−2) + (7−5) + (4−6)) / 3 = 7/3 = 2.33.
    assert_eq!(
        (
            &r["followed_up"],
            &r["resurveyed"],
            &r["answered"],
            &r["recovered"]
        ),
        (&json!(5), &json!(4), &json!(3), &json!(2)),
        "{r}"
    );
    assert_eq!(r["recovered_share"], json!(66.67));
    assert_eq!(r["recovered_ci95"], json!([20.77, 93.85]));
    assert_eq!(r["average_score_change"], json!(2.33));
    assert_eq!(r["recovered_from_score"], 7);
    // explained: c1, c3, c4 → 3, 3, 2, 1 (50 %); resolved_issue: c2 → 1, 1, 1, 1;
    // compensated: c5 → 1, 0, 0, 0.
    let by_outcome: Vec<(String, i64, i64, i64, i64)> = r["by_outcome"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["outcome"].as_str().unwrap().to_string(),
                g["followed_up"].as_i64().unwrap(),
                g["resurveyed"].as_i64().unwrap(),
                g["answered"].as_i64().unwrap(),
                g["recovered"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_outcome,
        [
            ("explained".to_string(), 3, 3, 2, 1),
            ("compensated".to_string(), 1, 0, 0, 0),
            ("resolved_issue".to_string(), 1, 1, 1, 1),
        ]
    );
    assert_eq!(r["by_outcome"][0]["recovered_share"], json!(50.0));
    assert!(r["by_outcome"][1]["recovered_share"].is_null());
    // lea: c1, c3, c5 → 3, 2, 2, 1, change ((9−2) + (4−6)) / 2 = 2.5; max: c2, c4 → 2, 2, 1, 1.
    let lea = &r["by_assignee"][0];
    assert_eq!(lea["assignee"], "lea@acme.test");
    assert_eq!(
        (
            &lea["followed_up"],
            &lea["resurveyed"],
            &lea["answered"],
            &lea["recovered"]
        ),
        (&json!(3), &json!(2), &json!(2), &json!(1))
    );
    assert_eq!(lea["average_score_change"], json!(2.5));
    let max = &r["by_assignee"][1];
    assert_eq!(max["assignee"], "max@acme.test");
    assert_eq!(
        (
            &max["followed_up"],
            &max["resurveyed"],
            &max["answered"],
            &max["recovered"]
        ),
        (&json!(2), &json!(2), &json!(1), &json!(1))
    );
    // The kind report has the same block (one NPS survey).
    let kind = app.get("/api/v1/reports?kind=nps").await;
    assert_eq!(kind.status, 200, "{}", kind.text);
    assert_eq!(kind.body["recovery"], report.body["recovery"]);
    // The survey's dashboard shows the same funnel, overall and per outcome.
    let reader = app
        .sign_in("rita@acme.test", "Rita Reader", Role::Reader)
        .await;
    let (status, page) = app
        .get_page(&format!("/app/surveys/{sid}"), &reader.cookie)
        .await;
    assert_eq!(status, 200, "{page}");
    let at = page
        .find("id=\"recovery-total\"")
        .expect("the recovery block");
    let tag = &page[at..at + page[at..].find('>').unwrap()];
    for (attr, want) in [
        ("data-followed-up", "5"),
        ("data-resurveyed", "4"),
        ("data-answered", "3"),
        ("data-recovered", "2"),
        ("data-share", "66.67"),
    ] {
        assert!(
            tag.contains(&format!("{attr}=\"{want}\"")),
            "{attr} in {tag}"
        );
    }
    assert!(page.contains("20.77–93.85 %"), "the interval on the page");
    assert!(page.contains("data-who=\"explained\" data-recovered=\"1\""));
    assert!(page.contains("data-who=\"lea@acme.test\" data-recovered=\"1\""));
    // A period before the unhappy answers has nothing.
    let old = app
        .get(&format!(
            "/api/v1/surveys/{sid}/report?from=2020-01-01&to=2020-02-01"
        ))
        .await;
    assert_eq!(old.body["recovery"]["followed_up"], 0);
    assert!(old.body["recovery"]["recovered_share"].is_null());
}

async fn resurvey_after_days_is_checked_set_and_cleared(app: TestApp) {
    for bad in [json!(0), json!(366), json!("soon")] {
        let a = app
            .post(
                "/api/v1/surveys",
                json!({"kind": "nps", "name": "x", "resurvey_after_days": bad}),
            )
            .await;
        assert_eq!(a.status, 422, "{bad}: {}", a.text);
        assert!(!a.field("resurvey_after_days").is_empty(), "{}", a.text);
    }
    let s = app.nps_survey().await;
    assert!(s["resurvey_after_days"].is_null());
    let path = format!("/api/v1/surveys/{}", s["id"].as_str().unwrap());
    let a = app.patch(&path, json!({"resurvey_after_days": 45})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["resurvey_after_days"], 45);
    let a = app.patch(&path, json!({"resurvey_after_days": 400})).await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(!a.field("resurvey_after_days").is_empty());
    assert_eq!(app.get(&path).await.body["resurvey_after_days"], 45);
    let a = app.patch(&path, json!({"resurvey_after_days": null})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.body["resurvey_after_days"].is_null());
}

/// A contact's unhappy answer on a new survey with these settings.
async fn unhappy_on(app: &TestApp, settings: Value, email: &str) -> Value {
    let s = app.create_survey(settings).await;
    let people = invite_links(app, s["id"].as_str().unwrap(), &[email]).await;
    answer(app, &people[0].1, 1, "").await;
    s
}

async fn anonymous_unconfigured_and_long_past_tasks_are_not_resurveyed(engine: Engine) {
    let smtp = TestSmtp::start();
    let app = app_with_mail(engine, &smtp).await;
    // No rule; a rule whose day passed more than the 7-day grace ago; a rule due now.
    let plain = unhappy_on(
        &app,
        json!({"kind": "nps", "name": "plain", "throttle_days": 0}),
        "plain@customer.test",
    )
    .await;
    let late = unhappy_on(
        &app,
        json!({"kind": "nps", "name": "late", "throttle_days": 0, "resurvey_after_days": 20}),
        "late@customer.test",
    )
    .await;
    let due = unhappy_on(
        &app,
        json!({"kind": "nps", "name": "due", "throttle_days": 0, "resurvey_after_days": 30}),
        "due@customer.test",
    )
    .await;
    // A public link (anonymous answers) with a rule due now.
    let linked = app
        .create_survey(json!({
            "kind": "nps", "name": "public", "public_link": true,
            "throttle_days": 0, "resurvey_after_days": 30
        }))
        .await;
    let url = linked["public_url"].as_str().unwrap();
    let slug = url.rsplit('/').next().unwrap();
    let res = app
        .client
        .post(app.url(&format!("/l/{slug}")))
        .form(&[("score", "2"), ("comment", "")])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    let all = app.get("/api/v1/followups?limit=100").await;
    let ids: Vec<String> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 4, "{}", all.text);
    for id in &ids {
        patch_task(
            &app,
            id,
            json!({"status": "resolved", "outcome": "explained"}),
        )
        .await;
    }
    resolved_days_ago(&app, 31).await;
    // Only the one due now (the job ran: it made that one).
    crate::helpers::eventually(10, "the due re-survey", || async {
        (!customer_mail(&smtp).is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(customer_mail(&smtp), ["due@customer.test"]);
    assert_eq!(resurveys(&app, due["id"].as_str().unwrap()).await.len(), 1);
    for s in [&plain, &late, &linked] {
        assert!(resurveys(&app, s["id"].as_str().unwrap()).await.is_empty());
    }
}

async fn two_replicas_make_one_resurvey_per_task(engine: Engine) {
    const N: usize = 12;
    let smtp = TestSmtp::start();
    let app = app_with_mail(engine, &smtp).await;
    let settings = mail_settings(&smtp.url());
    let (replica, _outbox) = crate::helpers::spawn_replica(&app, &borrowed(&settings)).await;
    tokio::spawn(replica.run_until_stopped());
    let s = app
        .create_survey(json!({
            "kind": "nps", "name": "NPS", "throttle_days": 0, "resurvey_after_days": 10
        }))
        .await;
    let sid = s["id"].as_str().unwrap();
    let emails: Vec<String> = (0..N).map(|i| format!("r{i:02}@customer.test")).collect();
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    let people = invite_links(&app, sid, &refs).await;
    for (_, token) in &people {
        answer(&app, token, 3, "").await;
    }
    for (contact, _) in &people {
        let t = task_of(&app, sid, contact).await;
        patch_task(
            &app,
            t["id"].as_str().unwrap(),
            json!({"status": "resolved", "outcome": "explained"}),
        )
        .await;
    }
    resolved_days_ago(&app, 10).await;
    crate::helpers::eventually(15, "a re-survey email each", || async {
        (customer_mail(&smtp).len() >= N).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        customer_mail(&smtp),
        emails,
        "one email per customer, none twice"
    );
    let made = resurveys(&app, sid).await;
    assert_eq!(made.len(), N);
    assert!(made.iter().all(|i| i["status"] == "sent"), "{made:?}");
}

each_engine!(
    resolved_detractors_are_asked_again_once_and_the_recovery_block_counts_them,
    anonymous_unconfigured_and_long_past_tasks_are_not_resurveyed,
    two_replicas_make_one_resurvey_per_task,
);
both_engines!(resurvey_after_days_is_checked_set_and_cleared);
