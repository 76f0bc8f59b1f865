//! The support lead's inbox: tasks listed with their customer and survey by name, filtered
//! the ways the `/app` views filter them, closed in one click with an outcome and a note, and
//! the emails that lead to a task's page.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{answer, spawn_app_with, tokens, Engine, TestApp};
use crate::smtp::TestSmtp;
use crate::{both_engines, each_engine};

async fn list(app: &TestApp, query: &str) -> Vec<Value> {
    let a = app.get(&format!("/api/v1/followups{query}")).await;
    assert_eq!(a.status, 200, "{query}: {}", a.text);
    a.body["items"].as_array().unwrap().clone()
}

/// The contact emails of the tasks a query lists, sorted (`-` for anonymous ones).
async fn who(app: &TestApp, query: &str) -> Vec<String> {
    let mut out: Vec<String> = list(app, query)
        .await
        .iter()
        .map(|t| t["contact_email"].as_str().unwrap_or("-").to_string())
        .collect();
    out.sort();
    out
}

/// Four tasks: Ada (Acme, enterprise, 1000) NPS 3, Bob (Globex, starter) NPS 5, Cy (no
/// name or properties) CSAT 1, and an anonymous NPS 0. Returns the surveys.
async fn four_tasks(app: &TestApp) -> (Value, Value) {
    let nps = app
        .create_survey(json!({"kind": "nps", "name": "Q4 NPS", "throttle_days": 0}))
        .await;
    let csat = app
        .create_survey(json!({"kind": "csat", "name": "Support CSAT", "throttle_days": 0}))
        .await;
    let t = tokens(
        app,
        &nps,
        json!([
            {"email": "ada@example.com", "name": "Ada Lovelace",
             "properties": {"company": "Acme Corp", "plan": "enterprise", "value": 1000, "beta": true}},
            {"email": "bob@globex.test", "name": "Bob",
             "properties": {"company": "Globex", "plan": "starter"}}
        ]),
    )
    .await;
    answer(app, &t[0], 3, "Exports are far too slow").await;
    answer(app, &t[1], 5, "Too pricey for 100% of what we use").await;
    let c = tokens(app, &csat, json!([{"email": "cy@x.test"}])).await;
    answer(app, &c[0], 1, "").await;
    let anon = app
        .post(
            "/api/v1/responses",
            json!({"survey_id": nps["id"], "score": 0, "comment": "anonymous rant"}),
        )
        .await;
    assert_eq!(anon.status, 201, "{}", anon.text);
    (nps, csat)
}

async fn tasks_are_listed_with_their_customer_and_survey_by_name(app: TestApp) {
    four_tasks(&app).await;
    let items = list(&app, "").await;
    assert_eq!(items.len(), 4);
    let ada = items
        .iter()
        .find(|t| t["contact_email"] == "ada@example.com")
        .unwrap();
    assert_eq!(ada["contact_name"], "Ada Lovelace");
    assert_eq!(ada["company"], "Acme Corp");
    assert_eq!(ada["survey_name"], "Q4 NPS");
    assert_eq!(ada["priority"], 1000.0, "the most valuable first");
    assert_eq!(items[0]["id"], ada["id"]);
    let cy = items
        .iter()
        .find(|t| t["contact_email"] == "cy@x.test")
        .unwrap();
    assert!(cy["contact_name"].is_null() && cy["company"].is_null());
    assert_eq!(cy["survey_name"], "Support CSAT");
    let anon = items.iter().find(|t| t["contact_id"].is_null()).unwrap();
    assert!(anon["contact_name"].is_null() && anon["contact_email"].is_null());
    assert_eq!(anon["survey_name"], "Q4 NPS");

    // The task itself has the same fields.
    let id = ada["id"].as_str().unwrap();
    let detail = app.get(&format!("/api/v1/followups/{id}")).await;
    assert_eq!(detail.status, 200);
    assert_eq!(
        (
            detail.body["contact_name"].as_str(),
            detail.body["company"].as_str(),
            detail.body["survey_name"].as_str()
        ),
        (Some("Ada Lovelace"), Some("Acme Corp"), Some("Q4 NPS"))
    );

    // An erased contact is no longer named.
    let contact = ada["contact_id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/api/v1/contacts/{contact}"))
            .await
            .status,
        204
    );
    let detail = app.get(&format!("/api/v1/followups/{id}")).await;
    assert!(
        detail.body["contact_name"].is_null()
            && detail.body["contact_email"].is_null()
            && detail.body["company"].is_null(),
        "{}",
        detail.text
    );
    assert_eq!(detail.body["survey_name"], "Q4 NPS");
    assert!(who(&app, "?q=acme").await.is_empty(), "erased: not found");
}

async fn the_list_filters_like_the_inbox_views(app: TestApp) {
    let (nps, _) = four_tasks(&app).await;
    let items = list(&app, "").await;
    let id_of = |email: &str| {
        items.iter().find(|t| t["contact_email"] == email).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (ada, bob) = (id_of("ada@example.com"), id_of("bob@globex.test"));
    let a = app
        .patch(
            &format!("/api/v1/followups/{ada}"),
            json!({"status": "in_progress", "assignee": "Lea@Acme.test"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["assignee"], "lea@acme.test", "emails are lowercased");
    assert_eq!(
        a.body["contact_name"], "Ada Lovelace",
        "PATCH answers the item"
    );
    let a = app
        .patch(
            &format!("/api/v1/followups/{bob}"),
            json!({"status": "resolved", "outcome": "explained"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);

    // Statuses: one, or a list.
    assert_eq!(who(&app, "?status=in_progress").await, ["ada@example.com"]);
    assert_eq!(
        who(&app, "?status=open,in_progress").await,
        ["-", "ada@example.com", "cy@x.test"]
    );
    assert_eq!(
        who(&app, "?status=resolved,dismissed").await,
        ["bob@globex.test"]
    );
    // Assignee: exact, or nobody.
    assert_eq!(
        who(&app, "?assignee=lea@acme.test").await,
        ["ada@example.com"]
    );
    assert_eq!(
        who(&app, "?assignee=none").await,
        ["-", "bob@globex.test", "cy@x.test"]
    );
    assert_eq!(
        who(&app, "?assignee=none&status=open").await,
        ["-", "cy@x.test"]
    );
    // Text: the comment, the name, the email or the company, in any case.
    assert_eq!(who(&app, "?q=ACME").await, ["ada@example.com"]);
    assert_eq!(who(&app, "?q=lovelace").await, ["ada@example.com"]);
    assert_eq!(who(&app, "?q=globex.test").await, ["bob@globex.test"]);
    assert_eq!(who(&app, "?q=far%20too%20SLOW").await, ["ada@example.com"]);
    assert_eq!(who(&app, "?q=rant").await, ["-"]);
    // `%` and `_` are text, not wildcards.
    assert_eq!(who(&app, "?q=100%25").await, ["bob@globex.test"]);
    assert!(who(&app, "?q=e%25s").await.is_empty());
    assert!(who(&app, "?q=_").await.is_empty());
    assert!(who(&app, "?q=nobody-has-this").await.is_empty());
    // Score band.
    assert_eq!(
        who(&app, "?min_score=0&max_score=3").await,
        ["-", "ada@example.com", "cy@x.test"]
    );
    assert_eq!(who(&app, "?min_score=4").await, ["bob@globex.test"]);
    // A property of the contact: text, a number as written, a boolean.
    assert_eq!(
        who(&app, "?property=plan:enterprise").await,
        ["ada@example.com"]
    );
    assert_eq!(
        who(&app, "?property=company:Globex").await,
        ["bob@globex.test"]
    );
    assert_eq!(who(&app, "?property=value:1000").await, ["ada@example.com"]);
    assert_eq!(who(&app, "?property=beta:true").await, ["ada@example.com"]);
    // Values compare ignoring case, as a lead types them.
    assert_eq!(
        who(&app, "?property=plan:Enterprise").await,
        who(&app, "?property=plan:enterprise").await
    );
    assert!(!who(&app, "?property=plan:enterprise").await.is_empty());
    assert!(who(&app, "?property=plan:enterprises").await.is_empty());
    assert!(who(&app, "?property=missing:x").await.is_empty());
    // Survey and answer dates.
    let survey = nps["id"].as_str().unwrap();
    assert_eq!(
        who(&app, &format!("?survey_id={survey}&status=open")).await,
        ["-"]
    );
    let today = chrono::Utc::now().date_naive();
    let tomorrow = today + chrono::TimeDelta::days(1);
    assert_eq!(list(&app, &format!("?since={today}")).await.len(), 4);
    assert!(list(&app, &format!("?since={tomorrow}")).await.is_empty());
    assert_eq!(
        list(&app, &format!("?since={today}&until={tomorrow}"))
            .await
            .len(),
        4
    );
    assert!(list(&app, &format!("?until={today}")).await.is_empty());
    // Everything at once.
    assert_eq!(
        who(
            &app,
            "?status=open,in_progress&assignee=lea@acme.test&q=acme&max_score=6&property=plan:enterprise&sort=due_at"
        )
        .await,
        ["ada@example.com"]
    );

    for (q, field) in [
        ("?status=open,lost", "status"),
        ("?status=open,", "status"),
        ("?min_score=-1", "min_score"),
        ("?max_score=11", "max_score"),
        ("?min_score=5&max_score=2", "max_score"),
        ("?property=plan", "property"),
        ("?property=bad%20key:x", "property"),
        ("?property=:x", "property"),
        ("?since=2026-11-20&until=2026-11-20", "until"),
        ("?since=yesterday", "since"),
    ] {
        let a = app.get(&format!("/api/v1/followups{q}")).await;
        assert_eq!(a.status, 422, "{q}: {}", a.text);
        assert!(!a.field(field).is_empty(), "{q}: {}", a.text);
    }
    let long = "x".repeat(201);
    let a = app.get(&format!("/api/v1/followups?q={long}")).await;
    assert_eq!(a.status, 422);
    assert!(!a.field("q").is_empty());
}

/// The store's view counts, for the `/app` inbox tabs (not an API endpoint).
async fn view_counts_count_each_inbox_view(app: TestApp) {
    four_tasks(&app).await;
    let items = list(&app, "").await;
    let ada = items
        .iter()
        .find(|t| t["contact_email"] == "ada@example.com")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bob = items
        .iter()
        .find(|t| t["contact_email"] == "bob@globex.test")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.patch(
        &format!("/api/v1/followups/{ada}"),
        json!({"assignee": "lea@acme.test"}),
    )
    .await;
    app.patch(
        &format!("/api/v1/followups/{bob}"),
        json!({"status": "dismissed", "outcome": "no_action_needed", "assignee": "lea@acme.test"}),
    )
    .await;
    let state = app.app_state.clone();
    let ada2 = ada.clone();
    let (all, acme, overdue, search) = tokio::task::spawn_blocking(move || {
        use closeloop::store::followups::{self as f, AssigneeFilter, InboxFilter, Sort};
        use closeloop::store::schema::followups;
        use diesel::prelude::*;
        let mut conn = state.db.get().unwrap();
        diesel::update(followups::table.find(&ada2))
            .set(followups::due_at.eq(closeloop::domain::now() - chrono::TimeDelta::hours(1)))
            .execute(&mut conn)
            .unwrap();
        let all = f::view_counts(&mut conn, "lea@acme.test", &InboxFilter::default()).unwrap();
        let acme = f::view_counts(
            &mut conn,
            "lea@acme.test",
            &InboxFilter {
                q: Some("acme".into()),
                // ignored by the counts: each view sets its own
                statuses: vec!["resolved".into()],
                ..Default::default()
            },
        )
        .unwrap();
        let mine_overdue = InboxFilter {
            statuses: vec!["open".into(), "in_progress".into()],
            assignee: AssigneeFilter::Is("lea@acme.test".into()),
            overdue: Some(true),
            ..Default::default()
        };
        let overdue = f::search(&mut conn, &mine_overdue, Sort::DueAt, 0, 10).unwrap();
        let search = f::search(&mut conn, &InboxFilter::default(), Sort::CreatedAt, 1, 2).unwrap();
        (all, acme, overdue, search)
    })
    .await
    .unwrap();
    assert_eq!(
        (
            all.open,
            all.mine,
            all.unassigned,
            all.overdue,
            all.closed,
            all.all
        ),
        (3, 1, 2, 1, 1, 4)
    );
    assert_eq!(
        (
            acme.open,
            acme.mine,
            acme.unassigned,
            acme.overdue,
            acme.closed,
            acme.all
        ),
        (1, 1, 0, 1, 0, 1)
    );
    assert_eq!(overdue.len(), 1);
    let item = &overdue[0];
    assert_eq!(item.task.id, ada);
    assert_eq!(
        (
            item.contact_name.as_deref(),
            item.company.as_deref(),
            item.plan.as_deref(),
            item.value,
            item.survey_name.as_str(),
            item.survey_kind.as_str()
        ),
        (
            Some("Ada Lovelace"),
            Some("Acme Corp"),
            Some("enterprise"),
            Some(1000.0),
            "Q4 NPS",
            "nps"
        )
    );
    assert_eq!(search.len(), 2, "offset 1, limit 2 of 4");
}

async fn a_task_closes_in_one_click_with_an_outcome_and_a_note(engine: Engine) {
    let app = spawn_app_with(engine, &[("FOLLOWUP_OUTCOMES", "fixed,refunded")]).await;
    let s = app.nps_survey().await;
    let t = tokens(
        &app,
        &s,
        json!([{"email": "a@x.test"}, {"email": "b@x.test"}]),
    )
    .await;
    answer(&app, &t[0], 2, "").await;
    answer(&app, &t[1], 4, "").await;
    let items = list(&app, "?sort=created_at").await;
    let path = format!("/api/v1/followups/{}", items[1]["id"].as_str().unwrap());

    // Not an outcome of this installation: 422 listing the allowed ones.
    let a = app
        .patch(&path, json!({"status": "resolved", "outcome": "explained"}))
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert_eq!(a.field("outcome"), ["must be one of fixed, refunded"]);
    // Open → resolved at once, with an outcome and a note, in one change.
    let a = app
        .patch(
            &path,
            json!({"status": "resolved", "outcome": "refunded", "note": "  Refunded the last invoice. "}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        (a.body["status"].as_str(), a.body["outcome"].as_str()),
        (Some("resolved"), Some("refunded"))
    );
    let detail = app.get(&path).await.body;
    let log: Vec<(String, Value)> = detail["activity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["kind"].as_str().unwrap().to_string(), a["body"].clone()))
        .collect();
    assert_eq!(
        log,
        vec![
            ("created".to_string(), Value::Null),
            ("status_changed".to_string(), Value::Null),
            ("note".to_string(), json!("Refunded the last invoice.")),
        ]
    );
    assert_eq!(detail["activity"][2]["actor"], "api-key:test admin");
    // A note alone is a change too; a blank one is refused.
    let a = app
        .patch(&path, json!({"note": "Customer thanked us."}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(app.get(&path).await.body["activity"][3]["kind"], "note");
    for body in [
        json!({"note": " "}),
        json!({"note": ""}),
        json!({"note": null}),
    ] {
        let a = app.patch(&path, body.clone()).await;
        assert_eq!(a.status, 422, "{body}: {}", a.text);
        assert!(!a.field("note").is_empty(), "{body}: {}", a.text);
    }
    // The other task: dismissed at once, without an outcome.
    let other = format!("/api/v1/followups/{}", items[0]["id"].as_str().unwrap());
    let a = app.patch(&other, json!({"status": "dismissed"})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.body["outcome"].is_null());
}

async fn the_default_outcomes_are_offered(app: TestApp) {
    let s = app.nps_survey().await;
    let t = tokens(&app, &s, json!([{"email": "a@x.test"}])).await;
    answer(&app, &t[0], 2, "").await;
    let path = format!(
        "/api/v1/followups/{}",
        list(&app, "").await[0]["id"].as_str().unwrap()
    );
    let a = app
        .patch(&path, json!({"status": "dismissed", "outcome": "spam"}))
        .await;
    assert_eq!(a.status, 422);
    assert_eq!(
        a.field("outcome"),
        ["must be one of resolved_issue, explained, compensated, feature_request, no_action_needed, could_not_reach"]
    );
    let a = app
        .patch(
            &path,
            json!({"status": "dismissed", "outcome": "could_not_reach"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        app.state_outcomes(),
        [
            "resolved_issue",
            "explained",
            "compensated",
            "feature_request",
            "no_action_needed",
            "could_not_reach"
        ]
    );
}

trait Outcomes {
    fn state_outcomes(&self) -> Vec<String>;
}

impl Outcomes for TestApp {
    fn state_outcomes(&self) -> Vec<String> {
        self.app_state.settings.followup_outcomes.clone()
    }
}

async fn mail_app(engine: Engine, smtp: &TestSmtp) -> TestApp {
    let url = smtp.url();
    spawn_app_with(
        engine,
        &[
            ("SMTP_URL", url.as_str()),
            ("TEAM_EMAIL", "support-leads@acme.test"),
            ("PUBLIC_URL", "https://feedback.acme.test/"),
            ("DISPATCH_INTERVAL_MS", "50"),
            ("ALERT_DELAY_SECONDS", "0"),
        ],
    )
    .await
}

/// The alert and the assignment email arrive as multipart messages with the customer and a
/// link to the task's page; assigning yourself sends nothing.
async fn alerts_and_assignments_lead_to_the_task_page(engine: Engine) {
    let smtp = TestSmtp::start();
    let app = mail_app(engine, &smtp).await;
    let s = app
        .create_survey(json!({"kind": "csat", "name": "Support <CSAT>"}))
        .await;
    let t = tokens(
        &app,
        &s,
        json!([{"email": "ada@example.com", "name": "Ada & Co",
                "properties": {"company": "Acme <Corp>", "value": 5000}}]),
    )
    .await;
    answer(&app, &t[0], 1, "Slow <script>alert(1)</script> exports").await;
    let id = list(&app, "").await[0]["id"].as_str().unwrap().to_string();
    let link = format!("https://feedback.acme.test/app/followups/{id}");

    let check = |m: &crate::smtp::Received, what: &str| {
        let msg = m.parsed();
        let text = msg.body_text(0).expect("a text part").to_string();
        let html = msg.body_html(0).expect("an HTML part").to_string();
        assert!(
            mail_parser::MimeHeaders::content_type(&msg).is_some_and(|c| c.ctype() == "multipart"),
            "{what}: multipart"
        );
        for needle in [
            "Customer: Ada & Co",
            "Email: ada@example.com",
            "Company: Acme <Corp>",
            "Value: 5000",
            "Survey: Support <CSAT>",
            "Score: 1/5 (unsatisfied)",
            "Comment: \"Slow <script>alert(1)</script> exports\"",
            &format!("Open the task: {link}"),
        ] {
            assert!(text.contains(needle), "{what}: {needle} in {text}");
        }
        for needle in [
            "Ada &amp; Co",
            "Acme &lt;Corp&gt;",
            "Support &lt;CSAT&gt;",
            "Slow &lt;script&gt;alert(1)&lt;/script&gt; exports",
            &format!("<a href=\"{link}\""),
            "font-family:-apple-system",
        ] {
            assert!(html.contains(needle), "{what}: {needle} in {html}");
        }
        assert!(!html.contains("<script>"), "{what}: escaped");
    };

    let got = smtp.wait_for(1, 10).await;
    assert_eq!(got.len(), 1);
    assert!(got[0]
        .to
        .iter()
        .any(|t| t.contains("support-leads@acme.test")));
    check(&got[0], "alert");

    // Assigned by an API key: the assignee hears of it.
    let agent = app.key_with_role("agent").await;
    let a = app
        .send(
            Method::PATCH,
            &format!("/api/v1/followups/{id}"),
            Some(&agent),
            Some(&json!({"assignee": "lea@acme.test"})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let got = smtp.wait_for(2, 10).await;
    let mail = &got[1];
    assert!(
        mail.to.iter().any(|t| t.contains("lea@acme.test")),
        "{:?}",
        mail.to
    );
    assert_eq!(
        mail.parsed().subject(),
        Some("[Closeloop] Assigned to you: Unsatisfied 1/5 from Ada & Co <ada@example.com> (Support <CSAT>)")
    );
    assert!(mail
        .parsed()
        .body_text(0)
        .unwrap()
        .starts_with("The API key \"agent key\" assigned you a follow-up task."));
    check(mail, "assignment");

    // A team member who takes the task (actor user:<their email>) gets no email; one who
    // gives it to someone else does; a name that is no address gets none either.
    let state = app.app_state.clone();
    let id2 = id.clone();
    let change = |assignee: &str| closeloop::followups::Change {
        assignee: Some(Some(assignee.to_string())),
        ..Default::default()
    };
    closeloop::followups::change(&state, &id2, change("Max@Acme.test"), "user:max@acme.test")
        .await
        .unwrap();
    closeloop::followups::change(&state, &id2, change("Support Team"), "api-key:x")
        .await
        .unwrap();
    closeloop::followups::change(&state, &id2, change("eve@acme.test"), "user:max@acme.test")
        .await
        .unwrap();
    let got = smtp.wait_for(3, 10).await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let got_all = smtp.received();
    assert_eq!(
        got_all.len(),
        3,
        "no email for assigning yourself or a name"
    );
    assert!(got[2].to.iter().any(|t| t.contains("eve@acme.test")));
    assert!(got[2]
        .parsed()
        .body_text(0)
        .unwrap()
        .starts_with("max@acme.test assigned you a follow-up task."));
    let detail = app.get(&format!("/api/v1/followups/{id}")).await.body;
    let actors: Vec<&str> = detail["activity"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "assigned")
        .map(|a| a["actor"].as_str().unwrap())
        .collect();
    assert_eq!(
        actors,
        [
            "api-key:agent key",
            "user:max@acme.test",
            "api-key:x",
            "user:max@acme.test"
        ]
    );
}

both_engines!(
    tasks_are_listed_with_their_customer_and_survey_by_name,
    the_list_filters_like_the_inbox_views,
    view_counts_count_each_inbox_view,
    the_default_outcomes_are_offered,
);

each_engine!(
    a_task_closes_in_one_click_with_an_outcome_and_a_note,
    alerts_and_assignments_lead_to_the_task_page,
);
