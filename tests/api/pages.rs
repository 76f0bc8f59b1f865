//! The customer pages, over HTTP as a browser without JavaScript uses them.

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{spawn_app_with, Engine, TestApp};

/// A survey and one link invitation; returns (survey, token).
async fn invited(app: &TestApp, survey: Value) -> (Value, String) {
    let s = app.create_survey(survey).await;
    let a = app
        .post(
            &format!("/api/v1/surveys/{}/invitations", s["id"].as_str().unwrap()),
            json!({"channel": "link", "contacts": [{"email": "ada@example.com", "properties": {"value": 500}}]}),
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

both_engines!(
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

/// Past its burst, the public link answers 429 with a page and Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_link_is_rate_limited_per_client() {
    let app = spawn_app_with(
        Engine::Sqlite,
        &[("PUBLIC_LINK_PER_MINUTE", "1"), ("PUBLIC_LINK_BURST", "3")],
    )
    .await;
    let s = app
        .create_survey(json!({"kind": "nps", "name": "x", "public_link": true}))
        .await;
    let slug = s["public_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            app.client
                .get(app.url(&format!("/l/{slug}")))
                .send()
                .await
                .unwrap(),
        );
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(codes, vec![200, 200, 200, 429, 429]);
    let last = statuses.pop().unwrap();
    assert!(last.headers().contains_key("retry-after"));
    assert!(last.text().await.unwrap().contains("Too many requests"));
    // Invitation pages are not limited by it.
    let _ = app.send(Method::GET, "/healthz", None, None).await;
}
