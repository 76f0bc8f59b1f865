//! Hostile input on every write endpoint and customer page: NUL characters, CR/LF, duplicate
//! JSON keys, huge and deeply nested bodies, NUL in query filters and paths. No request may
//! get a 500, the refused ones get a 4xx, and nothing already stored changes.

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::TestApp;

/// What is stored, as the API shows it: every list, and the details of the follow-up.
async fn snapshot(app: &TestApp, followup: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for path in [
        "/api/v1/surveys?limit=100",
        "/api/v1/contacts?limit=100",
        "/api/v1/invitations?limit=100",
        "/api/v1/responses?limit=100",
        "/api/v1/followups?limit=100",
        "/api/v1/webhooks?limit=100",
        "/api/v1/api-keys?limit=100",
    ] {
        let a = app.get(path).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        out.push((path.to_string(), a.body["items"].clone()));
    }
    let a = app.get(&format!("/api/v1/followups/{followup}")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    out.push(("followup".into(), a.body));
    out
}

/// Items of `before` must be unchanged in `after` (new items may appear).
fn assert_unchanged(before: &[(String, Value)], after: &[(String, Value)]) {
    for ((path, b), (_, a)) in before.iter().zip(after) {
        match (b.as_array(), a.as_array()) {
            (Some(old), Some(new)) => {
                for item in old {
                    let same = new.iter().find(|n| n["id"] == item["id"]);
                    assert_eq!(same, Some(item), "{path}: an existing item changed");
                }
            }
            _ => assert_eq!(a, b, "{path} changed"),
        }
    }
}

/// Every string in `base` (also nested) replaced by `s`, one at a time.
fn each_string_replaced(base: &Value, s: &str) -> Vec<Value> {
    fn walk(v: &Value, s: &str, out: &mut Vec<Value>, rebuild: &dyn Fn(Value) -> Value) {
        match v {
            Value::String(_) => out.push(rebuild(Value::String(s.to_string()))),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let items = items.clone();
                    walk(item, s, out, &|x| {
                        let mut items = items.clone();
                        items[i] = x;
                        rebuild(Value::Array(items))
                    });
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    let map = map.clone();
                    walk(item, s, out, &|x| {
                        let mut map = map.clone();
                        map.insert(k.clone(), x);
                        rebuild(Value::Object(map))
                    });
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(base, s, &mut out, &|x| x);
    out
}

/// `{"k": v, ...}` with its first key given a second time.
fn with_duplicate_first_key(base: &Value) -> (String, String) {
    let map = base.as_object().unwrap();
    let (k, v) = map.iter().next().unwrap();
    let text = serde_json::to_string(base).unwrap();
    let dup = format!("{{{}:{},{}", json!(k), v, &text[1..]);
    (k.clone(), dup)
}

async fn send_json(app: &TestApp, method: &Method, path: &str, body: Vec<u8>) -> (u16, String) {
    let a = app
        .send_raw(method.clone(), path, "application/json", body)
        .await;
    (a.status, a.text)
}

async fn hostile_input_never_gets_a_500_or_changes_what_is_stored(app: TestApp) {
    // Something stored: a survey with a public link, a contact, invitations, an answer with a
    // follow-up, a webhook.
    let survey = app
        .create_survey(
            json!({"kind": "nps", "name": "stored", "public_link": true, "throttle_days": 0}),
        )
        .await;
    let sid = survey["id"].as_str().unwrap().to_string();
    let slug = survey["public_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let batch = app
        .post(
            &format!("/api/v1/surveys/{sid}/invitations"),
            json!({"channel": "link", "contacts": [
                {"email": "stored@example.com", "name": "Stored", "properties": {"plan": "pro"}},
                {"email": "other@example.com"}
            ]}),
        )
        .await;
    assert_eq!(batch.status, 200, "{}", batch.text);
    let token = |i: usize| {
        batch.body["items"][i]["url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string()
    };
    let (token, token2) = (token(0), token(1));
    let res = app
        .client
        .post(app.url(&format!("/s/{token}")))
        .form(&[("score", "2"), ("comment", "slow")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let followups = app.get("/api/v1/followups").await;
    let fid = followups.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let hook = app
        .post(
            "/api/v1/webhooks",
            json!({"url": "https://hooks.example.com/x", "events": ["response.created"]}),
        )
        .await;
    assert_eq!(hook.status, 201, "{}", hook.text);
    let before = snapshot(&app, &fid).await;

    // Every JSON write endpoint with a valid body to start from. PATCH and the follow-up
    // actions target what is stored.
    let endpoints: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            "/api/v1/surveys".into(),
            json!({"kind": "nps", "name": "n", "brand": "b", "question": "q?", "locale": "en"}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/surveys/{sid}"),
            json!({"name": "n", "brand": "b", "topic": "t"}),
        ),
        (
            Method::POST,
            "/api/v1/contacts".into(),
            json!({"email": "stored@example.com", "name": "n", "external_id": "e", "properties": {"plan": "p"}}),
        ),
        (
            Method::POST,
            format!("/api/v1/surveys/{sid}/invitations"),
            json!({"channel": "link", "contacts": [{"email": "stored@example.com", "name": "n", "properties": {"plan": "p"}}]}),
        ),
        (
            Method::POST,
            "/api/v1/responses".into(),
            json!({"invitation_token": token, "score": 9, "comment": "c"}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/followups/{fid}"),
            json!({"status": "in_progress", "assignee": "a@example.com"}),
        ),
        (
            Method::POST,
            format!("/api/v1/followups/{fid}/notes"),
            json!({"body": "note"}),
        ),
        (
            Method::POST,
            format!("/api/v1/followups/{fid}/reply"),
            json!({"subject": "s", "body": "reply"}),
        ),
        (
            Method::POST,
            "/api/v1/webhooks".into(),
            json!({"url": "https://hooks.example.com/y", "events": ["response.created"]}),
        ),
        (
            Method::POST,
            "/api/v1/api-keys".into(),
            json!({"name": "k", "role": "reader"}),
        ),
    ];
    let mut problems: Vec<String> = Vec::new();
    fn expect_4xx(problems: &mut Vec<String>, what: String, status: u16, text: &str) {
        if !(400..500).contains(&status) {
            problems.push(format!("{what}: {status} {text}"));
        }
    }
    let huge = "x".repeat(2 * 1024 * 1024);
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    for (method, path, base) in &endpoints {
        // NUL in every string, and in a key.
        for body in each_string_replaced(base, "a\u{0}b") {
            let (status, text) = send_json(&app, method, path, body.to_string().into()).await;
            expect_4xx(
                &mut problems,
                format!("{method} {path} NUL {body}"),
                status,
                &text,
            );
        }
        let mut keyed = base.as_object().unwrap().clone();
        keyed.insert("x\u{0}".into(), json!(1));
        let (status, text) =
            send_json(&app, method, path, Value::Object(keyed).to_string().into()).await;
        expect_4xx(
            &mut problems,
            format!("{method} {path} NUL key"),
            status,
            &text,
        );
        // A key given twice: a 400 that names it.
        let (key, dup) = with_duplicate_first_key(base);
        let (status, text) = send_json(&app, method, path, dup.into()).await;
        if status != 400 || !text.contains(&format!("`{key}`")) {
            problems.push(format!(
                "{method} {path} duplicate `{key}`: {status} {text}"
            ));
        }
        // Huge and deeply nested.
        let mut big = base.as_object().unwrap().clone();
        let first = big.keys().next().unwrap().clone();
        big.insert(first, json!(huge));
        let (status, text) =
            send_json(&app, method, path, Value::Object(big).to_string().into()).await;
        expect_4xx(
            &mut problems,
            format!("{method} {path} huge"),
            status,
            &text,
        );
        let (status, text) = send_json(&app, method, path, deep.clone().into()).await;
        expect_4xx(
            &mut problems,
            format!("{method} {path} deep"),
            status,
            &text,
        );
        let nested = format!("{{\"name\": {}1{}}}", "[".repeat(120), "]".repeat(120));
        let (status, text) = send_json(&app, method, path, nested.into()).await;
        expect_4xx(
            &mut problems,
            format!("{method} {path} nested 120"),
            status,
            &text,
        );
    }

    // Customer forms.
    let forms: Vec<(String, Vec<(&str, String)>)> = vec![
        (
            format!("/s/{token}"),
            vec![("score", "9".into()), ("comment", "a\u{0}b".into())],
        ),
        (
            format!("/s/{token}"),
            vec![("score", "9\u{0}".into()), ("comment", "ok".into())],
        ),
        (
            format!("/s/{token}"),
            vec![("score", "9".into()), ("comment", "x".repeat(100_000))],
        ),
        (
            format!("/l/{slug}"),
            vec![("score", "9".into()), ("comment", "a\u{0}b".into())],
        ),
    ];
    for (path, form) in &forms {
        let res = app
            .client
            .post(app.url(path))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        expect_4xx(
            &mut problems,
            format!(
                "POST {path} {:?}",
                &form[1].1.chars().take(20).collect::<String>()
            ),
            status,
            "",
        );
    }

    // NUL in query filters and paths.
    for path in [
        "/api/v1/responses?contact_id=%00",
        "/api/v1/responses?survey_id=a%00",
        "/api/v1/responses?category=%00",
        "/api/v1/responses?cursor=%00",
        "/api/v1/contacts?email=a%00@example.com",
        "/api/v1/contacts?external_id=%00",
        "/api/v1/invitations?survey_id=%00",
        "/api/v1/invitations?status=%00",
        "/api/v1/invitations?contact_id=%00",
        "/api/v1/followups?status=%00",
        "/api/v1/followups?assignee=%00",
        "/api/v1/followups?survey_id=%00",
        "/api/v1/surveys?cursor=%00",
        "/api/v1/api-keys?cursor=%00",
        "/api/v1/surveys/srv_%00",
        "/api/v1/contacts/%00",
    ] {
        let a = app.get(path).await;
        expect_4xx(&mut problems, format!("GET {path}"), a.status, &a.text);
        if path.contains('?') && a.status == 400 {
            let param = path.split('?').nth(1).unwrap().split('=').next().unwrap();
            assert!(a.text.contains(&format!("`{param}`")), "{path}: {}", a.text);
        }
    }
    for path in [
        format!("/api/v1/surveys/{sid}/report?segment=%00"),
        format!("/s/{token}?score=%00"),
        format!("/l/{slug}?s=%00"),
        "/l/%00".to_string(),
        "/s/%00".to_string(),
        "/u/%00".to_string(),
    ] {
        let res = app.client.get(app.url(&path)).send().await.unwrap();
        expect_4xx(
            &mut problems,
            format!("GET {path}"),
            res.status().as_u16(),
            "",
        );
    }
    let res = app
        .client
        .post(app.url("/l/a%00b"))
        .form(&[("score", "9")])
        .send()
        .await
        .unwrap();
    expect_4xx(
        &mut problems,
        "POST /l/a%00b".into(),
        res.status().as_u16(),
        "",
    );

    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_unchanged(&before, &snapshot(&app, &fid).await);

    // CR/LF is ordinary text in most fields and may be refused in some (header-bound ones):
    // either way, never a 500.
    for (method, path, base) in &endpoints {
        for crlf in ["a\r\nBcc: evil@example.com", "a\nb", "a\rb"] {
            for body in each_string_replaced(base, crlf) {
                let (status, text) = send_json(&app, method, path, body.to_string().into()).await;
                assert!(
                    status < 500,
                    "{method} {path} CR/LF {body}: {status} {text}"
                );
            }
        }
    }
    // A NUL submission id is not one: the answer gets a fresh one.
    let res = app
        .client
        .post(app.url(&format!("/l/{slug}")))
        .form(&[
            ("score", "9"),
            ("comment", "ok"),
            ("submission_id", "\u{0}"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    for path in [
        format!("/s/{token2}"),
        format!("/l/{slug}"),
        format!("/u/{token2}"),
    ] {
        let res = app
            .client
            .post(app.url(&path))
            .form(&[("score", "9"), ("comment", "line one\r\nline two\rthree\n")])
            .send()
            .await
            .unwrap();
        assert!(
            res.status().as_u16() < 500,
            "POST {path} CR/LF: {}",
            res.status()
        );
    }
}

both_engines!(hostile_input_never_gets_a_500_or_changes_what_is_stored);
