//! The task page `/app/followups/{id}`: what it shows, and assign, status, notes and reply
//! from the browser, with the checks every POST goes through.

use closeloop::domain::Role;
use serde_json::{json, Value};

use crate::helpers::{answer, spawn_app_with, tokens, Engine, TestApp};
use crate::smtp::TestSmtp;
use crate::{both_engines, each_engine};

/// A detractor task of Ada (value 120000, plan enterprise); returns its id.
async fn ada_task(app: &TestApp) -> String {
    let survey = app
        .create_survey(
            json!({"kind": "nps", "name": "Q4 NPS", "brand": "Acme", "throttle_days": 0}),
        )
        .await;
    let t = tokens(
        app,
        &survey,
        json!([{"email": "ada@example.com", "name": "Ada Lovelace", "external_id": "cus_42",
                "properties": {"plan": "enterprise", "value": 120000}}]),
    )
    .await;
    // Answered 4, then changed to 3, then the comment changed: a history of changes.
    answer(app, &t[0], 4, "Slow exports").await;
    answer(app, &t[0], 3, "Slow exports").await;
    answer(
        app,
        &t[0],
        3,
        "Exports are <b>far</b> too slow\nsecond line",
    )
    .await;
    let list = app.get("/api/v1/followups?status=open").await;
    list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["score"] == 3)
        .expect("Ada's task")["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn detail(app: &TestApp, id: &str) -> Value {
    let a = app.get(&format!("/api/v1/followups/{id}")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body
}

async fn the_page_shows_the_answer_customer_and_timeline(app: TestApp) {
    let id = ada_task(&app).await;
    // An earlier task of the same customer, on another survey.
    let other = app
        .create_survey(json!({"kind": "csat", "name": "Support CSAT", "throttle_days": 0}))
        .await;
    let t = tokens(&app, &other, json!([{"email": "ada@example.com"}])).await;
    answer(&app, &t[0], 1, "Nobody answered").await;
    let lead = app
        .sign_in("lead@acme.test", "Lena Lead", Role::Agent)
        .await;

    let (status, page) = app
        .get_page(&format!("/app/followups/{id}"), &lead.cookie)
        .await;
    assert_eq!(status, 200, "{page}");
    // The answer, escaped, with its category in words.
    assert!(page.contains("3/10 detractor"), "{page}");
    assert!(page.contains("score-bad"));
    assert!(
        page.contains("Exports are &#60;b&#62;far&#60;/b&#62; too slow")
            || page.contains("Exports are &lt;b&gt;far&lt;/b&gt; too slow"),
        "{page}"
    );
    assert!(!page.contains("<b>far</b>"));
    assert!(page.contains("Q4 NPS"));
    // The customer card.
    for s in [
        "Ada Lovelace",
        "ada@example.com",
        "cus_42",
        "enterprise",
        "120,000",
        "Subscribed",
        "Support CSAT",
        "1/5 unsatisfied",
    ] {
        assert!(page.contains(s), "{s} missing");
    }
    // The earlier task links to its page.
    let tasks = app.get("/api/v1/followups").await;
    let csat_task = tasks.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["score"] == 1)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        page.contains(&format!("href=\"/app/followups/{csat_task}\"")),
        "{page}"
    );
    // The timeline, the due countdown, the actions with their keyboard hooks.
    assert!(page.contains("opened the task (score 4)"), "{page}");
    assert!(page.contains(">in 47 h<"), "{page}");
    assert!(page.contains("Changes by the customer"), "{page}");
    assert!(page.contains("Score from 4 to 3"), "{page}");
    assert!(page.contains("Comment changed to"), "{page}");
    assert!(
        page.contains("Customer</span> changed the score from 4 to 3"),
        "{page}"
    );
    assert!(page.contains("data-key-assign-me"));
    assert!(page.contains("Start working"));
    assert!(
        page.contains("Re: A quick question from Acme"),
        "the subject is prefilled"
    );
    assert!(page.contains("Hi Ada,"), "a greeting");
    assert!(
        page.contains("&gt; Exports are") || page.contains("&#62; Exports are"),
        "the comment is quoted"
    );
    assert!(!page.contains("style="), "no inline style (CSP)");

    // A reader sees the same page without any action form.
    let reader = app
        .sign_in("reader@acme.test", "Rita Reader", Role::Reader)
        .await;
    let (status, page) = app
        .get_page(&format!("/app/followups/{id}"), &reader.cookie)
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("Ada Lovelace") && page.contains("opened the task"));
    assert!(
        !page.contains(&format!("action=\"/app/followups/{id}/")),
        "{page}"
    );
    assert!(!page.contains("data-key-assign-me"));

    // An anonymous answer: the page says so and offers no reply.
    let surveys = app.get("/api/v1/surveys").await.body["items"].clone();
    let survey_id = surveys
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Q4 NPS")
        .unwrap()["id"]
        .clone();
    let anon = app
        .post(
            "/api/v1/responses",
            json!({"survey_id": survey_id, "score": 0}),
        )
        .await;
    assert_eq!(anon.status, 201, "{}", anon.text);
    let all = app.get("/api/v1/followups").await;
    let anon_id = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["contact_id"].is_null())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, page) = app
        .get_page(&format!("/app/followups/{anon_id}"), &lead.cookie)
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("given anonymously"), "{page}");
    assert!(page.contains("You cannot reply: the answer is anonymous"));
    assert!(!page.contains(&format!("/app/followups/{anon_id}/reply")));
}

async fn a_lead_triages_a_detractor_on_the_page(engine: Engine) {
    let smtp = TestSmtp::start();
    let url = smtp.url();
    let app = spawn_app_with(
        engine,
        &[
            ("SMTP_URL", url.as_str()),
            ("SMTP_FROM", "Surveys <surveys@acme.test>"),
            ("DISPATCH_INTERVAL_MS", "50"),
            ("ALERT_DELAY_SECONDS", "0"),
        ],
    )
    .await;
    let id = ada_task(&app).await;
    let lead = app
        .sign_in("lead@acme.test", "Lena Lead", Role::Agent)
        .await;
    app.sign_in("sam@acme.test", "Sam Support", Role::Agent)
        .await;
    let page = format!("/app/followups/{id}");
    let q = "?view=open&sort=priority";

    // Assign to me, from the inbox's view: back to the page with the same query.
    let (status, to, _) = app
        .post_as(
            &lead,
            &format!("{page}/assign{q}"),
            &[("assignee", "lead@acme.test")],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(to, format!("{page}{q}&notice=assigned"));
    assert_eq!(detail(&app, &id).await["assignee"], "lead@acme.test");
    // To another member.
    let (status, _, _) = app
        .post_as(
            &lead,
            &format!("{page}/assign"),
            &[("assignee", "sam@acme.test")],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(detail(&app, &id).await["assignee"], "sam@acme.test");
    // Not a member: refused, nothing changed.
    let (status, _, body) = app
        .post_as(
            &lead,
            &format!("{page}/assign"),
            &[("assignee", "eve@evil.test")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(detail(&app, &id).await["assignee"], "sam@acme.test");

    // A note.
    let (status, to, _) = app
        .post_as(
            &lead,
            &format!("{page}/notes{q}"),
            &[("body", "Called Ada; fix ships Friday.")],
        )
        .await;
    assert_eq!(
        (status, to.as_str()),
        (303, format!("{page}{q}&notice=noted").as_str())
    );

    // Preview the reply, then send it.
    let (status, _, body) = app
        .post_as(
            &lead,
            &format!("{page}/reply{q}"),
            &[
                ("subject", "Re: your answer"),
                ("body", "Hi Ada,\nexports are fixed."),
                ("action", "preview"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("Preview") && body.contains("Acme &lt;surveys@acme.test&gt;")
            || body.contains("Acme &#60;surveys@acme.test&#62;"),
        "{body}"
    );
    let to_ada = |r: &crate::smtp::Received| r.to.iter().any(|t| t.contains("ada@example.com"));
    assert!(
        !smtp.received().iter().any(to_ada),
        "a preview sends nothing"
    );
    let (status, to, _) = app
        .post_as(
            &lead,
            &format!("{page}/reply{q}"),
            &[
                ("subject", "Re: your answer"),
                ("body", "Hi Ada,\nexports are fixed."),
                ("action", "send"),
            ],
        )
        .await;
    assert_eq!(
        (status, to.as_str()),
        (303, format!("{page}{q}&notice=replied").as_str())
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let reply = loop {
        if let Some(r) = smtp.received().into_iter().find(|r| to_ada(r)) {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reply reaches the customer"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    let msg = reply.parsed();
    // Assigning Sam sent Sam the assignment email, with the task's link.
    assert!(smtp
        .received()
        .iter()
        .any(|r| r.to.iter().any(|t| t == "sam@acme.test")));
    assert_eq!(msg.subject(), Some("Re: your answer"));
    assert!(msg.body_text(0).unwrap().contains("exports are fixed"));
    // The page shows the reply's delivery state.
    crate::helpers::eventually(10, "the reply is shown as sent", || async {
        let (_, p) = app.get_page(&page, &lead.cookie).await;
        p.contains("delivery-sent").then_some(())
    })
    .await;

    // Start, then resolve with an outcome and a note.
    let (status, _, body) = app
        .post_as(
            &lead,
            &format!("{page}/status{q}"),
            &[("status", "in_progress")],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, p) = app.get_page(&format!("{page}{q}"), &lead.cookie).await;
    assert!(
        p.contains("data-key-resolve") && p.contains("Resolved issue"),
        "{p}"
    );
    let (status, _, body) = app
        .post_as(
            &lead,
            &format!("{page}/status{q}"),
            &[
                ("status", "resolved"),
                ("outcome", "resolved_issue"),
                ("note", "Fixed in 4.2"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let d = detail(&app, &id).await;
    assert_eq!(
        (d["status"].as_str(), d["outcome"].as_str()),
        (Some("resolved"), Some("resolved_issue"))
    );
    let acts = d["activity"].as_array().unwrap();
    let closed = acts
        .iter()
        .find(|a| a["kind"] == "status_changed" && a["data"]["to"] == "resolved")
        .unwrap();
    assert_eq!(closed["actor"], format!("user:{}", lead.email));
    assert!(acts
        .iter()
        .any(|a| a["kind"] == "note" && a["body"] == "Fixed in 4.2"));
    assert!(acts.iter().all(|a| a["actor"] != "user:sam@acme.test"));
    // The closed page shows the outcome and offers Reopen; the timeline names the lead.
    let (_, p) = app.get_page(&format!("{page}{q}"), &lead.cookie).await;
    assert!(
        p.contains("Reopen") && !p.contains("data-key-resolve"),
        "{p}"
    );
    assert!(p.contains("Lena Lead</span> changed the status from In progress to Resolved (outcome: Resolved issue)"), "{p}");
    assert!(p.contains("assigned it to Sam Support"), "{p}");
    assert!(
        p.contains(&format!("{}</span> added a note", lead.name)),
        "{p}"
    );
    assert!(
        p.contains(&format!("href=\"/app/followups{q}\"").replace('&', "&#38;")),
        "the way back keeps the view"
    );
}

async fn readers_and_forged_posts_change_nothing(app: TestApp) {
    let id = ada_task(&app).await;
    let page = format!("/app/followups/{id}");
    let reader = app
        .sign_in("reader@acme.test", "Rita Reader", Role::Reader)
        .await;
    let agent = app
        .sign_in("agent@acme.test", "Al Agent", Role::Agent)
        .await;
    let before = detail(&app, &id).await["activity"]
        .as_array()
        .unwrap()
        .len();
    for (path, form) in [
        ("assign", vec![("assignee", "reader@acme.test")]),
        ("status", vec![("status", "in_progress")]),
        ("notes", vec![("body", "hello")]),
        (
            "reply",
            vec![("subject", "Re"), ("body", "hello"), ("action", "send")],
        ),
    ] {
        let (status, _, body) = app.post_as(&reader, &format!("{page}/{path}"), &form).await;
        assert_eq!(status, 403, "reader {path}: {body}");
        assert!(body.contains("Not allowed"), "{body}");
        // Without the token (an agent): refused before anything else.
        let res = app
            .post_form(&format!("{page}/{path}"), Some(&agent.cookie), &form)
            .await;
        assert_eq!(res.status().as_u16(), 403, "no token {path}");
        let body = res.text().await.unwrap();
        assert!(body.contains("This form has expired"), "{body}");
        // A wrong token.
        let mut wrong = vec![("csrf_token", "nope")];
        wrong.extend(form.iter().cloned());
        let res = app
            .post_form(&format!("{page}/{path}"), Some(&agent.cookie), &wrong)
            .await;
        assert_eq!(res.status().as_u16(), 403, "wrong token {path}");
    }
    let d = detail(&app, &id).await;
    assert_eq!(
        d["activity"].as_array().unwrap().len(),
        before,
        "nothing was logged"
    );
    assert_eq!(
        (d["status"].as_str(), d["assignee"].as_str()),
        (Some("open"), None)
    );
}

async fn bad_input_gets_a_page_not_a_500(app: TestApp) {
    let id = ada_task(&app).await;
    let page = format!("/app/followups/{id}");
    let agent = app
        .sign_in("agent@acme.test", "Al Agent", Role::Agent)
        .await;
    let unknown = "fup_01ARZ3NDEKTSV4RRFFQ69G5FAV";
    for path in [
        format!("/app/followups/{unknown}"),
        "/app/followups/nope".to_string(),
        "/app/followups/fup_%3Cscript%3E".to_string(),
    ] {
        let (status, body) = app.get_page(&path, &agent.cookie).await;
        assert_eq!(status, 404, "{path}");
        assert!(body.contains("There is no such follow-up"), "{body}");
    }
    let (status, _, _) = app
        .post_as(
            &agent,
            &format!("/app/followups/{unknown}/notes"),
            &[("body", "x")],
        )
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = app
        .post_as(&agent, "/app/followups/nope/status", &[("status", "open")])
        .await;
    assert_eq!(status, 404);
    // Unknown status and outcome.
    let (status, _, body) = app
        .post_as(&agent, &format!("{page}/status"), &[("status", "done")])
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("There is no status"), "{body}");
    app.post_as(
        &agent,
        &format!("{page}/status"),
        &[("status", "in_progress")],
    )
    .await;
    let (status, _, body) = app
        .post_as(
            &agent,
            &format!("{page}/status"),
            &[("status", "resolved"), ("outcome", "bribed")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // No outcome: the page again, with the reason and the note kept.
    let (status, _, body) = app
        .post_as(
            &agent,
            &format!("{page}/status"),
            &[("status", "resolved"), ("note", "keep me")],
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("Choose an outcome") && body.contains("keep me"),
        "{body}"
    );
    // A transition that is not allowed: 409 with the reason.
    let (status, _, body) = app
        .post_as(&agent, &format!("{page}/status"), &[("status", "open")])
        .await;
    assert_eq!(status, 409, "{body}");
    // Notes: empty, too long (the text is kept), NUL.
    let (status, _, body) = app
        .post_as(&agent, &format!("{page}/notes"), &[("body", "   ")])
        .await;
    assert_eq!(status, 422);
    assert!(body.contains("Write the note first"), "{body}");
    let long = format!("{}END", "n".repeat(10_000));
    let (status, _, body) = app
        .post_as(&agent, &format!("{page}/notes"), &[("body", &long)])
        .await;
    assert_eq!(status, 422);
    assert!(
        body.contains("the limit is 10000") && body.contains("nnnEND"),
        "the text is kept"
    );
    let (status, _, body) = app
        .post_as(&agent, &format!("{page}/notes"), &[("body", "a\0b")])
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("NUL"));
    let (status, _, body) = app
        .post_as(
            &agent,
            &format!("{page}/reply"),
            &[("subject", ""), ("body", "x"), ("action", "send")],
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let d = detail(&app, &id).await;
    assert_eq!(d["status"], "in_progress");
    assert!(d["activity"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["kind"] != "note" && a["kind"] != "replied"));
}

async fn previous_and_next_follow_the_view(app: TestApp) {
    let survey = app
        .create_survey(json!({"kind": "nps", "name": "N", "throttle_days": 0}))
        .await;
    let t = tokens(
        &app,
        &survey,
        json!([{"email": "a@x.co", "properties": {"value": 300}},
               {"email": "b@x.co", "properties": {"value": 200}},
               {"email": "c@x.co", "properties": {"value": 100}}]),
    )
    .await;
    for tok in &t {
        answer(&app, tok, 2, "").await;
    }
    let items = app.get("/api/v1/followups?sort=priority").await.body["items"].clone();
    let ids: Vec<String> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    let agent = app
        .sign_in("agent@acme.test", "Al Agent", Role::Agent)
        .await;
    let q = "?view=open&sort=priority";
    let (_, p) = app
        .get_page(&format!("/app/followups/{}{q}", ids[1]), &agent.cookie)
        .await;
    let link = |id: &str| format!("href=\"/app/followups/{id}?view=open&#38;sort=priority\"");
    assert!(
        p.contains(&format!("{} rel=\"prev\"", link(&ids[0]))),
        "{p}"
    );
    assert!(
        p.contains(&format!("{} rel=\"next\"", link(&ids[2]))),
        "{p}"
    );
    // Resolved, the task keeps its place: next still goes on.
    let page = format!("/app/followups/{}", ids[1]);
    app.post_as(
        &agent,
        &format!("{page}/status{q}"),
        &[("status", "in_progress")],
    )
    .await;
    app.post_as(
        &agent,
        &format!("{page}/status{q}"),
        &[("status", "dismissed"), ("outcome", "no_action_needed")],
    )
    .await;
    let (_, p) = app.get_page(&format!("{page}{q}"), &agent.cookie).await;
    assert!(
        p.contains(&format!("{} rel=\"next\"", link(&ids[2]))),
        "{p}"
    );
    // The first of the view has no previous.
    let (_, p) = app
        .get_page(&format!("/app/followups/{}{q}", ids[0]), &agent.cookie)
        .await;
    assert!(
        !p.contains("rel=\"prev\"") && p.contains(&link(&ids[2])),
        "{p}"
    );
}

both_engines!(
    the_page_shows_the_answer_customer_and_timeline,
    readers_and_forged_posts_change_nothing,
    bad_input_gets_a_page_not_a_500,
    previous_and_next_follow_the_view,
);
each_engine!(a_lead_triages_a_detractor_on_the_page);
