//! The customer pages, over HTTP as a browser without JavaScript uses them.

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{answer, spawn_app_with, tokens, Engine, TestApp};
use crate::reports::report;

/// A survey and one link invitation; returns (survey, token).
async fn invited(app: &TestApp, survey: Value) -> (Value, String) {
    invited_as(app, survey, "ada@example.com").await
}

/// A survey and one link invitation to `email`; returns (survey, token).
async fn invited_as(app: &TestApp, survey: Value, email: &str) -> (Value, String) {
    let s = app.create_survey(survey).await;
    let a = app
        .post(
            &format!("/api/v1/surveys/{}/invitations", s["id"].as_str().unwrap()),
            json!({"channel": "link", "contacts": [{"email": email, "properties": {"value": 500}}]}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let url = a.body["items"][0]["url"].as_str().unwrap();
    (s, url.rsplit('/').next().unwrap().to_string())
}

async fn post_form(app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn responses(app: &TestApp, survey: &Value) -> Vec<Value> {
    let a = app
        .get(&format!(
            "/api/v1/responses?survey_id={}",
            survey["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["items"].as_array().unwrap().clone()
}

async fn opening_links_never_records_an_answer(app: TestApp) {
    let (s, token) = invited(&app, json!({"kind": "nps", "name": "x", "brand": "Acme"})).await;
    for score in 0..=10 {
        let res = app
            .client
            .get(app.url(&format!("/s/{token}?score={score}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let html = res.text().await.unwrap();
        assert!(html.contains(&format!("value=\"{score}\" checked")));
        assert!(html.contains("How likely are you to recommend Acme to a friend or colleague?"));
    }
    let res = app
        .client
        .head(app.url(&format!("/s/{token}?score=0")))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success() || res.status() == 405);
    assert!(
        responses(&app, &s).await.is_empty(),
        "a GET recorded an answer"
    );
    let inv = app.get("/api/v1/invitations").await;
    assert_eq!(inv.body["items"][0]["status"], "sent");
}

async fn an_answer_is_recorded_by_post_and_shown_on_the_thank_you_page(app: TestApp) {
    let (s, token) = invited(&app, json!({"kind": "nps", "name": "x"})).await;
    let res = post_form(
        &app,
        &format!("/s/{token}"),
        &[("score", "3"), ("comment", "  Too slow  ")],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], format!("/s/{token}/thanks"));
    let thanks = app
        .client
        .get(app.url(&format!("/s/{token}/thanks")))
        .send()
        .await
        .unwrap();
    assert_eq!(thanks.status(), 200);
    let html = thanks.text().await.unwrap();
    assert!(
        html.contains("Thank you!")
            && html.contains("<strong>3</strong>")
            && html.contains(">Too slow</textarea>"),
        "{html}"
    );
    let rs = responses(&app, &s).await;
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0]["score"], 3);
    assert_eq!(rs[0]["category"], "detractor");
    assert_eq!(rs[0]["comment"], "Too slow");
    assert_eq!(rs[0]["channel"], "link");
    let inv = app
        .get(&format!(
            "/api/v1/invitations/{}",
            rs[0]["invitation_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(inv.body["status"], "responded");
    assert!(inv.body["responded_at"].is_string());
    let contact = app
        .get(&format!(
            "/api/v1/contacts/{}",
            rs[0]["contact_id"].as_str().unwrap()
        ))
        .await;
    assert!(contact.body["last_responded_at"].is_string());
    // The survey page now shows the recorded answer.
    let page = app
        .client
        .get(app.url(&format!("/s/{token}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("value=\"3\" checked") && page.contains(">Too slow</textarea>"));
}

async fn answering_again_updates_the_one_response(app: TestApp) {
    let (s, token) = invited(&app, json!({"kind": "csat", "name": "x"})).await;
    post_form(
        &app,
        &format!("/s/{token}"),
        &[("score", "2"), ("comment", "bad")],
    )
    .await;
    let first = responses(&app, &s).await[0].clone();
    let res = post_form(
        &app,
        &format!("/s/{token}"),
        &[("score", "5"), ("comment", "fixed now")],
    )
    .await;
    assert_eq!(res.status(), 303);
    let rs = responses(&app, &s).await;
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0]["id"], first["id"]);
    assert_eq!(rs[0]["score"], 5);
    assert_eq!(rs[0]["category"], "satisfied");
    assert_eq!(rs[0]["comment"], "fixed now");
    assert_eq!(rs[0]["created_at"], first["created_at"]);
    assert_ne!(rs[0]["updated_at"], first["updated_at"]);
    // The thank-you form posts the score back with the new comment; an empty one clears it.
    post_form(
        &app,
        &format!("/s/{token}"),
        &[("score", "5"), ("comment", "")],
    )
    .await;
    assert_eq!(responses(&app, &s).await[0]["comment"], Value::Null);
}

async fn concurrent_double_submits_make_one_response(app: TestApp) {
    let (s, token) = invited(&app, json!({"kind": "nps", "name": "x"})).await;
    let posts = (0..10).map(|i| {
        let client = app.client.clone();
        let url = app.url(&format!("/s/{token}"));
        async move {
            client
                .post(url)
                .form(&[
                    ("score", (i % 11).to_string()),
                    ("comment", format!("c{i}")),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == 303), "{statuses:?}");
    assert_eq!(responses(&app, &s).await.len(), 1);
}

/// Answers refused (after the edit window) and answers taken arrive at once, so the group
/// commit puts both in its batches: each refusal reaches only its own request, every accepted
/// answer is stored once, and the report's counters (written once per batch) count each once.
async fn a_refused_answer_does_not_undo_the_answers_committed_with_it(app: TestApp) {
    let n = 24;
    let people = |tag: &str| -> Value {
        (0..n)
            .map(|i| json!({"email": format!("{tag}{i}@example.com")}))
            .collect()
    };
    let closed = app
        .create_survey(json!({"kind": "nps", "name": "closed", "edit_window_hours": 0}))
        .await;
    let closed_tokens = tokens(&app, &closed, people("c")).await;
    let open = app
        .create_survey(json!({"kind": "nps", "name": "open"}))
        .await;
    let open_tokens = tokens(&app, &open, people("o")).await;
    for t in &closed_tokens {
        answer(&app, t, 9, "").await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let refused = closed_tokens.iter().map(|t| {
        let app = &app;
        async move {
            post_form(app, &format!("/s/{t}"), &[("score", "1")])
                .await
                .status()
                .as_u16()
        }
    });
    let taken = open_tokens.iter().enumerate().map(|(i, t)| {
        let app = &app;
        let score = (i % 11).to_string();
        async move {
            post_form(app, &format!("/s/{t}"), &[("score", score.as_str())])
                .await
                .status()
                .as_u16()
        }
    });
    let (refused, taken) = futures_util::future::join(
        futures_util::future::join_all(refused),
        futures_util::future::join_all(taken),
    )
    .await;
    assert!(refused.iter().all(|s| *s == 409), "{refused:?}");
    assert!(taken.iter().all(|s| *s == 303), "{taken:?}");
    let stored = responses(&app, &open).await;
    assert_eq!(stored.len(), n);
    assert!(responses(&app, &closed)
        .await
        .iter()
        .all(|r| r["score"] == 9));
    // Whole days only, so the report reads the counters, not the answers.
    let today = chrono::Utc::now().date_naive();
    let range = format!(
        "from={}T00:00:00Z&to={}T00:00:00Z",
        today.pred_opt().unwrap(),
        today.succ_opt().unwrap()
    );
    for survey in [&open, &closed] {
        assert_eq!(report(&app, survey, &range).await["responses"], n as i64);
    }
}

async fn after_the_edit_window_an_answer_cannot_change(app: TestApp) {
    let (s, token) = invited(
        &app,
        json!({"kind": "nps", "name": "x", "edit_window_hours": 0}),
    )
    .await;
    assert_eq!(
        post_form(&app, &format!("/s/{token}"), &[("score", "9")])
            .await
            .status(),
        303
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let res = post_form(&app, &format!("/s/{token}"), &[("score", "1")]).await;
    assert_eq!(res.status(), 409);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("This answer can no longer be changed"),
        "{html}"
    );
    assert_eq!(responses(&app, &s).await[0]["score"], 9);
    let thanks = app
        .client
        .get(app.url(&format!("/s/{token}/thanks")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !thanks.contains("<textarea"),
        "no edit form after the window"
    );
}

async fn invalid_answers_get_a_page_that_keeps_what_was_typed(app: TestApp) {
    let (s, token) = invited(&app, json!({"kind": "nps", "name": "x"})).await;
    let path = format!("/s/{token}");
    let res = post_form(&app, &path, &[("comment", "<b>kept</b> & \"quoted\"")]).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("Please choose a score."), "{html}");
    assert!(
        html.contains("&#60;b&#62;kept&#60;/b&#62; &#38; &#34;quoted&#34;")
            || html.contains("&lt;b&gt;kept&lt;/b&gt; &amp; &quot;quoted&quot;"),
        "{html}"
    );
    assert!(!html.contains("<b>kept</b>"));
    for bad in ["11", "-1", "abc", "", "3.5"] {
        let res = post_form(&app, &path, &[("score", bad)]).await;
        assert_eq!(res.status(), 422, "score {bad:?}");
    }
    let long = "x".repeat(2001);
    let res = post_form(&app, &path, &[("score", "7"), ("comment", long.as_str())]).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("under 2000 characters") && html.contains("value=\"7\" checked"));
    let res = app
        .client
        .post(app.url(&path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'%'; 70_000])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413, "over-large form");
    let res = app
        .client
        .post(app.url(&path))
        .header("content-type", "text/plain")
        .body("score=3")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    assert!(responses(&app, &s).await.is_empty());
}

async fn pages_carry_strict_security_headers(app: TestApp) {
    let (_, token) = invited(
        &app,
        json!({"kind": "nps", "name": "x", "brand_color": "#0a7d4f"}),
    )
    .await;
    for path in [
        format!("/s/{token}"),
        format!("/u/{token}"),
        "/s/unknown".to_string(),
        // Any unknown URL outside the API.
        "/no/such/page".to_string(),
    ] {
        let res = app.client.get(app.url(&path)).send().await.unwrap();
        let h = res.headers().clone();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("script-src"),
            "{csp}"
        );
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-frame-options"], "DENY");
        let html = res.text().await.unwrap();
        assert!(!html.contains("<script"));
        // The one inline style block is the one the CSP hash allows.
        let style = html
            .split("<style>")
            .nth(1)
            .unwrap()
            .split("</style>")
            .next()
            .unwrap();
        use base64::Engine;
        use sha2::Digest;
        let hash = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(style.as_bytes()));
        assert!(
            csp.contains(&format!("'sha256-{hash}'")),
            "{csp} vs {style}"
        );
    }
    let css = app
        .client
        .get(app.url("/assets/closeloop.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
}

async fn unknown_archived_and_cancelled_links_get_friendly_pages(app: TestApp) {
    let res = app
        .client
        .get(app.url(&format!("/s/{}", "A".repeat(43))))
        .header("accept-language", "de-DE,de;q=0.9")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Umfrage nicht gefunden") && html.contains("lang=\"de\""),
        "{html}"
    );
    for path in ["/s/short", "/u/short", "/l/nope", "/s/..%2F..%2Fetc"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    assert_eq!(
        post_form(&app, &format!("/s/{}", "A".repeat(43)), &[("score", "1")])
            .await
            .status(),
        404
    );
    let (s, token) = invited(
        &app,
        json!({"kind": "nps", "name": "x", "public_link": true}),
    )
    .await;
    let slug = s["public_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    app.post(
        &format!("/api/v1/surveys/{}/archive", s["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    for path in [format!("/s/{token}"), format!("/l/{slug}")] {
        let res = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), 410, "{path}");
        assert!(res.text().await.unwrap().contains("This survey is closed"));
    }
    assert_eq!(
        post_form(&app, &format!("/s/{token}"), &[("score", "1")])
            .await
            .status(),
        410
    );
}

async fn the_public_link_records_anonymous_answers_once_per_form(app: TestApp) {
    let s = app
        .create_survey(json!({"kind": "csat", "name": "x", "public_link": true, "locale": "fr"}))
        .await;
    let slug = s["public_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let html = app
        .client
        .get(app.url(&format!("/l/{slug}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("lang=\"fr\"") && html.contains("Envoyer"));
    let submission = html
        .split("name=\"submission_id\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert!(html.contains("name=\"website\""), "honeypot");
    let res = post_form(
        &app,
        &format!("/l/{slug}"),
        &[("score", "2"), ("submission_id", &submission)],
    )
    .await;
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, format!("/l/{slug}/r/{submission}"));
    // The same form posted again (double click, reload) updates the same response.
    post_form(
        &app,
        &format!("/l/{slug}"),
        &[
            ("score", "4"),
            ("submission_id", &submission),
            ("comment", "ok"),
        ],
    )
    .await;
    let rs = responses(&app, &s).await;
    assert_eq!(rs.len(), 1);
    assert_eq!(
        (rs[0]["score"].as_i64(), rs[0]["channel"].as_str()),
        (Some(4), Some("public"))
    );
    assert!(rs[0]["invitation_id"].is_null() && rs[0]["contact_id"].is_null());
    let thanks = app
        .client
        .get(app.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(thanks.contains("Merci") && thanks.contains("<strong>4</strong>"));
    // "Change your answer" reopens this submission's form, not a blank one.
    let change = format!("/l/{slug}?s={submission}");
    assert!(thanks.contains(&format!("href=\"{change}\"")), "{thanks}");
    let form = app
        .client
        .get(app.url(&change))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        form.contains("value=\"4\" checked") && form.contains(&format!("value=\"{submission}\""))
    );
    post_form(
        &app,
        &format!("/l/{slug}"),
        &[("score", "1"), ("submission_id", &submission)],
    )
    .await;
    let rs = responses(&app, &s).await;
    assert_eq!((rs.len(), rs[0]["score"].as_i64()), (1, Some(1)));
    // A bot filling the honeypot is thanked and ignored.
    let res = post_form(
        &app,
        &format!("/l/{slug}"),
        &[("score", "1"), ("website", "http://spam")],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(responses(&app, &s).await.len(), 1);
}

async fn unsubscribing_needs_a_post_and_is_idempotent(app: TestApp) {
    let (_, token) = invited(&app, json!({"kind": "nps", "name": "x", "brand": "Acme"})).await;
    let page = app
        .client
        .get(app.url(&format!("/u/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("Stop receiving feedback surveys from Acme?"));
    let contact = &app.get("/api/v1/contacts").await.body["items"][0];
    assert!(
        contact["unsubscribed_at"].is_null(),
        "GET must not unsubscribe"
    );
    let form = reqwest::multipart::Form::new().text("List-Unsubscribe", "One-Click");
    let res = app
        .client
        .post(app.url(&format!("/u/{token}")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "RFC 8058: 200, no redirect");
    assert!(res.text().await.unwrap().contains("You are unsubscribed"));
    let first = app.get("/api/v1/contacts").await.body["items"][0]["unsubscribed_at"].clone();
    assert!(first.is_string());
    assert_eq!(
        post_form(&app, &format!("/u/{token}"), &[]).await.status(),
        200
    );
    assert_eq!(
        app.get("/api/v1/contacts").await.body["items"][0]["unsubscribed_at"],
        first
    );
}

async fn responses_can_be_captured_and_read_through_the_api(app: TestApp) {
    let (s, token) = invited(&app, json!({"kind": "nps", "name": "x"})).await;
    let a = app
        .post(
            "/api/v1/responses",
            json!({"invitation_token": token, "score": 6, "comment": "meh"}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(
        (a.body["category"].as_str(), a.body["channel"].as_str()),
        (Some("detractor"), Some("api"))
    );
    let again = app
        .post(
            "/api/v1/responses",
            json!({"invitation_token": token, "score": 10}),
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["id"], a.body["id"]);
    let sid = s["id"].as_str().unwrap();
    let anon = app
        .post("/api/v1/responses", json!({"survey_id": sid, "score": 8}))
        .await;
    assert_eq!(anon.status, 201);
    let got = app
        .get(&format!(
            "/api/v1/responses/{}",
            a.body["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(got.body["score"], 10);
    let promoters = app
        .get(&format!(
            "/api/v1/responses?survey_id={sid}&category=promoter"
        ))
        .await;
    assert_eq!(promoters.body["items"].as_array().unwrap().len(), 1);
    let none = app
        .get("/api/v1/responses?since=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(none.body["items"].as_array().unwrap().len(), 0);
    for (body, status) in [
        (json!({"survey_id": sid, "score": 11}), 422),
        (json!({"survey_id": sid, "score": "9"}), 422),
        (json!({"score": 5}), 422),
        (
            json!({"survey_id": sid, "invitation_token": token, "score": 5}),
            422,
        ),
        (json!({"invitation_token": "nope", "score": 5}), 404),
        (
            json!({"survey_id": "srv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2", "score": 5}),
            404,
        ),
    ] {
        let a = app.post("/api/v1/responses", body.clone()).await;
        assert_eq!(a.status, status, "{body}: {}", a.text);
    }
    let reader = app.key_with_role("reader").await;
    let a = app
        .send(
            Method::POST,
            "/api/v1/responses",
            Some(&reader),
            Some(&json!({"survey_id": sid, "score": 5})),
        )
        .await;
    assert_eq!(a.status, 403);
    assert_eq!(
        app.get("/api/v1/responses?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z")
            .await
            .status,
        422
    );
    app.post(&format!("/api/v1/surveys/{sid}/archive"), json!({}))
        .await;
    let a = app
        .post("/api/v1/responses", json!({"survey_id": sid, "score": 5}))
        .await;
    assert_eq!((a.status, a.code()), (409, "survey_archived"));
}

/// The page's text without tags, with whitespace runs as one space.
fn visible(html: &str) -> String {
    // Style blocks are not text.
    let mut html = html.to_string();
    while let (Some(a), Some(b)) = (html.find("<style>"), html.find("</style>")) {
        html.replace_range(a..b + "</style>".len(), "");
    }
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    // ASCII whitespace only: U+202F (narrow no-break space) is whitespace to Unicode.
    out.split(|c: char| c.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

async fn page(app: &TestApp, path: &str) -> (u16, String) {
    let res = app.client.get(app.url(path)).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// The stored invitation and contact rows, straight from the database.
async fn invitation_row(app: &TestApp, token: &str) -> closeloop::store::models::InvitationRow {
    let state = app.app_state.clone();
    let token = token.to_string();
    tokio::task::spawn_blocking(move || {
        let mut conn = state.db.get().unwrap();
        closeloop::store::invitations::find_by_token(&mut conn, &token)
            .unwrap()
            .unwrap()
    })
    .await
    .unwrap()
}

async fn an_erased_contacts_links_are_no_longer_valid(app: TestApp) {
    let (s, token) = invited(&app, json!({"kind": "nps", "name": "x", "brand": "Acme"})).await;
    let path = format!("/s/{token}");
    post_form(&app, &path, &[("score", "3"), ("comment", "slow")]).await;
    let before = responses(&app, &s).await[0].clone();
    let tasks_before = app.get("/api/v1/followups").await.body["items"].clone();
    assert_eq!(tasks_before.as_array().unwrap().len(), 1);
    let contact = before["contact_id"].as_str().unwrap().to_string();
    assert_eq!(
        app.delete(&format!("/api/v1/contacts/{contact}"))
            .await
            .status,
        204
    );

    for p in [
        format!("{path}?score=1"),
        path.clone(),
        format!("{path}/thanks"),
    ] {
        let (status, html) = page(&app, &p).await;
        assert_eq!(status, 410, "{p}");
        assert!(html.contains("This link is no longer valid"), "{html}");
        assert!(
            !html.contains("value=\"3\"") && !html.contains("<form"),
            "{html}"
        );
    }
    let res = post_form(&app, &path, &[("score", "1"), ("comment", "still here")]).await;
    assert_eq!(res.status(), 410);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("This link is no longer valid"));
    // The API refuses it too.
    let a = app
        .post(
            "/api/v1/responses",
            json!({"invitation_token": token, "score": 1}),
        )
        .await;
    assert_eq!((a.status, a.code()), (409, "contact_erased"), "{}", a.text);
    // Nothing new stored, no task changed.
    let after = responses(&app, &s).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["score"], 3);
    assert_eq!(after[0]["comment"], Value::Null, "the erase blanked it");
    assert_eq!(after[0]["updated_at"], before["updated_at"]);
    let tasks = app.get("/api/v1/followups").await.body["items"].clone();
    assert_eq!(
        (
            tasks[0]["status"].clone(),
            tasks[0]["score"].clone(),
            tasks[0]["updated_at"].clone()
        ),
        (
            tasks_before[0]["status"].clone(),
            tasks_before[0]["score"].clone(),
            tasks_before[0]["updated_at"].clone()
        )
    );
    // Unsubscribe links keep working.
    assert_eq!(page(&app, &format!("/u/{token}")).await.0, 200);
    assert_eq!(
        post_form(&app, &format!("/u/{token}"), &[]).await.status(),
        200
    );
}

async fn a_closed_answer_is_shown_without_a_form(app: TestApp) {
    let (s, token) = invited(
        &app,
        json!({"kind": "nps", "name": "x", "edit_window_hours": 0}),
    )
    .await;
    let path = format!("/s/{token}");
    post_form(&app, &path, &[("score", "9"), ("comment", "Great support")]).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (status, html) = page(&app, &format!("{path}?score=1")).await;
    assert_eq!(status, 200);
    let text = visible(&html);
    assert!(text.contains("You answered 9 on "), "{text}");
    assert!(text.contains(" UTC"), "the date and time: {text}");
    assert!(text.contains("Great support"), "{text}");
    assert!(
        text.contains("This answer can no longer be changed"),
        "{text}"
    );
    assert!(
        !html.contains("<form") && !html.contains("<textarea") && !html.contains("type=\"radio\"")
    );
    let res = post_form(&app, &path, &[("score", "1")]).await;
    assert_eq!(res.status(), 409);
    assert_eq!(responses(&app, &s).await[0]["score"], 9);
}

async fn unsubscribed_customers_can_resubscribe_for_30_days(app: TestApp) {
    let (_, token) = invited(&app, json!({"kind": "nps", "name": "x", "brand": "Acme"})).await;
    let u = format!("/u/{token}");
    let (status, html) = page(&app, &u).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("a•••@example.com") && !html.contains("ada@"),
        "{html}"
    );
    let res = post_form(&app, &u, &[]).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("You are unsubscribed") && html.contains("a•••@example.com"));
    assert!(
        html.contains(&format!("action=\"/u/{token}/resubscribe\""))
            && html.contains(">Re-subscribe</button>"),
        "{html}"
    );
    let contact_id = app.get("/api/v1/contacts").await.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let contact_path = format!("/api/v1/contacts/{contact_id}");
    assert!(app.get(&contact_path).await.body["unsubscribed_at"].is_string());
    // The page shows the same offer later (GET changes nothing).
    let (_, html) = page(&app, &u).await;
    assert!(html.contains(">Re-subscribe</button>"), "{html}");
    let res = post_form(&app, &format!("{u}/resubscribe"), &[]).await;
    assert_eq!(res.status(), 200);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("You are subscribed again"));
    assert!(app.get(&contact_path).await.body["unsubscribed_at"].is_null());
    // 31 days after unsubscribing, the page no longer offers it and refuses it.
    post_form(&app, &u, &[]).await;
    let state = app.app_state.clone();
    let cid = contact_id.clone();
    tokio::task::spawn_blocking(move || {
        use closeloop::store::schema::contacts::dsl::*;
        use diesel::prelude::*;
        let mut conn = state.db.get().unwrap();
        diesel::update(contacts.find(cid))
            .set(unsubscribed_at.eq(Some(closeloop::domain::now() - chrono::TimeDelta::days(31))))
            .execute(&mut conn)
            .unwrap();
    })
    .await
    .unwrap();
    let (_, html) = page(&app, &u).await;
    assert!(
        html.contains("You are unsubscribed") && !html.contains("Re-subscribe"),
        "{html}"
    );
    let res = post_form(&app, &format!("{u}/resubscribe"), &[]).await;
    assert_eq!(res.status(), 409);
    assert!(app.get(&contact_path).await.body["unsubscribed_at"].is_string());
}

async fn admins_can_resubscribe_a_contact_through_the_api(app: TestApp) {
    let (_, token) = invited(&app, json!({"kind": "nps", "name": "x"})).await;
    post_form(&app, &format!("/u/{token}"), &[]).await;
    let id = app.get("/api/v1/contacts").await.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/contacts/{id}");
    for role in ["agent", "reader"] {
        let key = app.key_with_role(role).await;
        let a = app
            .send(
                Method::PATCH,
                &path,
                Some(&key),
                Some(&json!({"unsubscribed": false})),
            )
            .await;
        assert_eq!(a.status, 403, "{role}");
    }
    let a = app.patch(&path, json!({"unsubscribed": false})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.body["unsubscribed_at"].is_null());
    assert!(app.get(&path).await.body["unsubscribed_at"].is_null());
    let a = app.patch(&path, json!({"unsubscribed": true})).await;
    assert!(a.body["unsubscribed_at"].is_string());
    let a = app.patch(&path, json!({"email": "x@example.com"})).await;
    assert!(a.status == 400 || a.status == 422, "{}", a.text);
    app.delete(&path).await;
    assert_eq!(
        app.patch(&path, json!({"unsubscribed": false}))
            .await
            .status,
        404
    );
}

async fn the_survey_page_says_the_score_is_not_sent_yet(app: TestApp) {
    let (s, token) = invited(
        &app,
        json!({"kind": "nps", "name": "x", "public_link": true}),
    )
    .await;
    let path = format!("/s/{token}");
    // HEAD (a scanner) notes nothing.
    let res = app
        .client
        .head(app.url(&format!("{path}?score=3")))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    assert!(invitation_row(&app, &token).await.opened_at.is_none());
    let (status, html) = page(&app, &format!("{path}?score=3")).await;
    assert_eq!(status, 200);
    let text = visible(&html);
    assert!(text.contains("Your score: 3, not sent yet"), "{text}");
    let scale = html.find("class=\"options").unwrap();
    let send = html.find(">Send</button>").expect("a Send button");
    let comment = html.find("<textarea").unwrap();
    assert!(
        scale < send && send < comment,
        "Send sits right under the scale"
    );
    assert!(html.find("not sent yet").unwrap() < scale, "near the top");
    // Opening is noted on the invitation (the first time), not as an answer.
    assert!(responses(&app, &s).await.is_empty());
    let opened = invitation_row(&app, &token)
        .await
        .opened_at
        .expect("opened_at");
    let inv = app.get("/api/v1/invitations").await.body["items"][0].clone();
    assert!(inv["opened_at"].is_string(), "{inv}");
    assert_eq!(inv["status"], "sent");
    page(&app, &path).await;
    assert_eq!(invitation_row(&app, &token).await.opened_at, Some(opened));
    // Without a score there is nothing pending; the Send button ends the form.
    let (_, html) = page(&app, &path).await;
    assert!(!html.contains("not sent yet"));
    assert!(html.find(">Send</button>").unwrap() > html.find("<textarea").unwrap());
    // The public link preselects the same way.
    let slug = s["public_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let (_, html) = page(&app, &format!("/l/{slug}?score=4")).await;
    assert!(html.contains("value=\"4\" checked"), "{html}");
    assert!(visible(&html).contains("Your score: 4, not sent yet"));
    assert!(responses(&app, &s).await.is_empty());
}

/// The survey email as written to the outbox: (text part, HTML part).
async fn sent_email(app: &TestApp, survey: &Value, email: &str) -> (String, String) {
    let batch = app
        .post(
            &format!(
                "/api/v1/surveys/{}/invitations",
                survey["id"].as_str().unwrap()
            ),
            json!({"channel": "email", "contacts": [{"email": email}]}),
        )
        .await;
    let id = batch.body["items"][0]["invitation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = app.outbox.path().join(format!("{id}.eml"));
    let data = crate::helpers::eventually(10, "the email", || {
        let path = path.clone();
        async move { std::fs::read(&path).ok() }
    })
    .await;
    let msg = mail_parser::MessageParser::default().parse(&data).unwrap();
    (
        msg.body_text(0).unwrap().to_string(),
        msg.body_html(0).unwrap().to_string(),
    )
}

fn contrast_with_white(hex: &str) -> f64 {
    let ch = |i: usize| {
        let c = u8::from_str_radix(&hex[i..i + 2], 16).unwrap() as f64 / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let l = 0.2126 * ch(1) + 0.7152 * ch(3) + 0.0722 * ch(5);
    1.05 / (l + 0.05)
}

async fn a_light_brand_colour_falls_back_to_a_dark_variant_on_white(app: TestApp) {
    let (s, token) = invited(
        &app,
        json!({"kind": "nps", "name": "x", "brand": "Sunny", "brand_color": "#ffd400"}),
    )
    .await;
    let (_, html) = page(&app, &format!("/s/{token}")).await;
    let ink = html
        .split("--brand-ink:")
        .nth(1)
        .expect("--brand-ink")
        .get(..7)
        .unwrap()
        .to_string();
    assert_ne!(ink, "#ffd400");
    assert!(contrast_with_white(&ink) >= 4.5, "{ink}");
    let (_, email_html) = sent_email(&app, &s, "sun@example.com").await;
    assert!(
        !email_html.contains("color:#ffd400;\">Sunny"),
        "the brand name is not printed in the raw colour on white"
    );
    let brand_colour = email_html
        .split("\">Sunny</td>")
        .next()
        .unwrap()
        .rsplit("color:")
        .next()
        .unwrap()
        .get(..7)
        .unwrap()
        .to_string();
    assert!(contrast_with_white(&brand_colour) >= 4.5, "{brand_colour}");
    // A dark brand colour is used as it is.
    let (_, token) = invited_as(
        &app,
        json!({"kind": "nps", "name": "y", "brand_color": "#0a7d4f"}),
        "grace@example.com",
    )
    .await;
    let (_, html) = page(&app, &format!("/s/{token}")).await;
    assert!(html.contains("--brand-ink:#0a7d4f"), "{html}");
}

async fn the_wording_is_right_in_every_language(app: TestApp) {
    let s = app
        .create_survey(json!({"kind": "csat", "name": "x", "brand": "Acme"}))
        .await;
    let (text, html) = sent_email(&app, &s, "w@example.com").await;
    for part in [&text, &html] {
        assert!(part.contains("You are receiving this email"), "{part}");
        assert!(part.contains("Very dissatisfied"));
        assert!(
            !part.contains("Click a score to answer"),
            "no one-click promise"
        );
        assert!(part.contains("then press Send"), "{part}");
    }
    // French: a narrow no-break space before every colon, question and exclamation mark.
    let fr = app
        .create_survey(json!({"kind": "nps", "name": "fr", "brand": "Acme", "locale": "fr"}))
        .await;
    let (text, html) = sent_email(&app, &fr, "f@example.com").await;
    let (_, token) = invited(&app, json!({"kind": "nps", "name": "fr2", "locale": "fr"})).await;
    let (_, form) = page(&app, &format!("/s/{token}?score=2")).await;
    post_form(
        &app,
        &format!("/s/{token}"),
        &[("score", "2"), ("comment", "bof")],
    )
    .await;
    let (_, thanks) = page(&app, &format!("/s/{token}/thanks")).await;
    for t in [text, visible(&html), visible(&form), visible(&thanks)] {
        for bad in [" :", " ?", " !"] {
            assert!(!t.contains(bad), "{bad:?} with a plain space in: {t}");
        }
        let bare = t.match_indices(':').filter(|(i, _)| {
            let after = &t[*i + 1..];
            !t[..*i].ends_with('\u{202F}')
                && !after.starts_with("//")
                && !after.starts_with(|c: char| c.is_ascii_digit())
        });
        assert_eq!(bare.count(), 0, "a colon without U+202F in: {t}");
        assert!(t.contains("\u{202F}:"), "{t}");
    }
}

async fn pages_name_the_surveys_brand_or_none(app: TestApp) {
    let (status, html) = page(&app, &format!("/s/{}", "A".repeat(43))).await;
    assert_eq!(status, 404);
    assert!(!html.contains("Closeloop"), "{html}");
    let (status, html) = page(&app, "/nowhere").await;
    assert_eq!(status, 404);
    assert!(!html.contains("Closeloop"), "{html}");
    // An unbranded survey shows no name rather than ours.
    let (_, token) = invited(&app, json!({"kind": "nps", "name": "x"})).await;
    for p in [format!("/s/{token}"), format!("/u/{token}")] {
        let (_, html) = page(&app, &p).await;
        assert!(!html.contains("Closeloop"), "{p}: {html}");
    }
    let (_, html) = page(&app, &format!("/u/{token}")).await;
    assert!(visible(&html).contains("Stop receiving feedback surveys from us?"));
}

async fn the_thank_you_and_change_pages_say_what_was_recorded(app: TestApp) {
    let (_, token) = invited(&app, json!({"kind": "nps", "name": "x"})).await;
    let path = format!("/s/{token}");
    post_form(&app, &path, &[("score", "3")]).await;
    let (_, thanks) = page(&app, &format!("{path}/thanks")).await;
    assert!(!thanks.contains("Your comment was saved"), "no comment yet");
    post_form(&app, &path, &[("score", "3"), ("comment", "Too slow")]).await;
    let (_, thanks) = page(&app, &format!("{path}/thanks")).await;
    assert!(
        visible(&thanks).contains("Your comment was saved."),
        "{thanks}"
    );
    // "Change your answer" says what they answered, and when.
    let (_, change) = page(&app, &path).await;
    let text = visible(&change);
    assert!(text.contains("You answered 3 on "), "{text}");
    assert!(text.contains("You can change your answer until "), "{text}");
    assert!(!text.contains("not sent yet"));
    // With a new score from the email, both show.
    let (_, change) = page(&app, &format!("{path}?score=8")).await;
    let text = visible(&change);
    assert!(text.contains("Your score: 8, not sent yet") && text.contains("You answered 3 on "));
}

both_engines!(
    a_refused_answer_does_not_undo_the_answers_committed_with_it,
    an_erased_contacts_links_are_no_longer_valid,
    a_closed_answer_is_shown_without_a_form,
    unsubscribed_customers_can_resubscribe_for_30_days,
    admins_can_resubscribe_a_contact_through_the_api,
    the_survey_page_says_the_score_is_not_sent_yet,
    a_light_brand_colour_falls_back_to_a_dark_variant_on_white,
    the_wording_is_right_in_every_language,
    pages_name_the_surveys_brand_or_none,
    the_thank_you_and_change_pages_say_what_was_recorded,
    opening_links_never_records_an_answer,
    an_answer_is_recorded_by_post_and_shown_on_the_thank_you_page,
    answering_again_updates_the_one_response,
    concurrent_double_submits_make_one_response,
    after_the_edit_window_an_answer_cannot_change,
    invalid_answers_get_a_page_that_keeps_what_was_typed,
    pages_carry_strict_security_headers,
    unknown_archived_and_cancelled_links_get_friendly_pages,
    the_public_link_records_anonymous_answers_once_per_form,
    unsubscribing_needs_a_post_and_is_idempotent,
    responses_can_be_captured_and_read_through_the_api,
);

/// A public link's slug, from the survey JSON.
fn slug_of(survey: &Value) -> String {
    survey["public_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

/// Posts one answer to a public link, with `X-Forwarded-For` when given; returns the status.
async fn post_public(app: &TestApp, slug: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(&format!("/l/{slug}")))
        .form(&[("score", "9"), ("comment", "")]);
    if let Some(ip) = forwarded_for {
        req = req.header("X-Forwarded-For", ip);
    }
    req.send().await.unwrap()
}

/// Only answers count against the public link's limit: page views never get a 429 (an office
/// behind one address must be able to open the link), and past the burst a submission gets a
/// 429 page in the survey's brand with Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_link_limits_submissions_per_client_not_page_views() {
    let app = spawn_app_with(
        Engine::Sqlite,
        &[("PUBLIC_LINK_PER_MINUTE", "1"), ("PUBLIC_LINK_BURST", "3")],
    )
    .await;
    let s = app
        .create_survey(
            json!({"kind": "nps", "name": "x", "brand": "Acme Cloud", "locale": "de", "public_link": true}),
        )
        .await;
    let slug = slug_of(&s);
    for _ in 0..25 {
        let res = app
            .client
            .get(app.url(&format!("/l/{slug}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "page views are never limited");
    }
    let mut codes = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let res = post_public(&app, &slug, None).await;
        codes.push(res.status().as_u16());
        last = Some(res);
    }
    assert_eq!(codes, vec![303, 303, 303, 429, 429]);
    let last = last.unwrap();
    assert!(last.headers().contains_key("retry-after"));
    let body = last.text().await.unwrap();
    // In the survey's brand and language, never ours.
    assert!(
        body.contains("Zu viele Anfragen")
            && body.contains("Acme Cloud")
            && body.contains("lang=\"de\""),
        "{body}"
    );
    assert!(!body.contains("Closeloop"), "{body}");
    // Without a trusted proxy, X-Forwarded-For is ignored: it cannot buy a fresh bucket.
    assert_eq!(
        post_public(&app, &slug, Some("198.51.100.1"))
            .await
            .status(),
        429
    );
}

/// Behind a trusted proxy (`TRUSTED_PROXIES`), each forwarded client has its own bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let app = spawn_app_with(
        Engine::Sqlite,
        &[
            ("PUBLIC_LINK_PER_MINUTE", "1"),
            ("PUBLIC_LINK_BURST", "2"),
            ("TRUSTED_PROXIES", "127.0.0.0/8, ::1"),
        ],
    )
    .await;
    let s = app
        .create_survey(json!({"kind": "nps", "name": "x", "public_link": true}))
        .await;
    let slug = slug_of(&s);
    let a = "203.0.113.10";
    let b = "203.0.113.20";
    assert_eq!(post_public(&app, &slug, Some(a)).await.status(), 303);
    assert_eq!(post_public(&app, &slug, Some(a)).await.status(), 303);
    assert_eq!(post_public(&app, &slug, Some(a)).await.status(), 429);
    assert_eq!(
        post_public(&app, &slug, Some(b)).await.status(),
        303,
        "another client behind the proxy"
    );
    assert_eq!(
        post_public(&app, &slug, Some(&format!("6.6.6.6, {a}")))
            .await
            .status(),
        429,
        "the nearest untrusted hop counts, not a spoofed first entry"
    );
}
