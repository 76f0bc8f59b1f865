//! Webhooks: the admin API, and events reaching a real HTTP receiver, signed, with retries.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{eventually, spawn_app_with, Engine, TestApp};
use crate::{both_engines, each_engine};

/// A scripted answer that never comes (the receiver holds the connection for 5 s).
const HANG: u16 = 0;
/// A scripted 200 that takes 4 s (a slow receiver).
const SLOW: u16 = 1;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    method: String,
    path: String,
    /// Lower-cased names.
    headers: HashMap<String, String>,
    pub(crate) body: Vec<u8>,
    /// Unix seconds when it arrived.
    at: i64,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// A tiny HTTP/1.1 server on a random loopback port that records every request and answers
/// with the scripted statuses in order, then with `then`.
#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) url: String,
    got: Arc<Mutex<Vec<Received>>>,
    /// Header lines added to every answer that is not a 2xx (e.g. `Retry-After: 60`).
    extra: Arc<Mutex<String>>,
}

impl Receiver {
    pub(crate) async fn start(script: &[u16], then: u16) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let extra = Arc::new(Mutex::new(String::new()));
        let (g, s, e) = (got.clone(), script.clone(), extra.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, g.clone(), s.clone(), e.clone(), then));
            }
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            got,
            extra,
        }
    }

    /// Adds `name: value` to every later answer that is not a 2xx.
    pub(crate) fn add_error_header(&self, name: &str, value: &str) {
        self.extra
            .lock()
            .unwrap()
            .push_str(&format!("{name}: {value}\r\n"));
    }

    pub(crate) fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    pub(crate) fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    pub(crate) async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let what = format!("{n} webhook request(s) at {}", self.url);
        eventually(secs, &what, || async {
            let all = self.all();
            (all.len() >= n).then_some(all)
        })
        .await
    }
}

async fn serve(
    mut stream: TcpStream,
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    extra: Arc<Mutex<String>>,
    then: u16,
) {
    let mut buf = Vec::new();
    loop {
        // Headers.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or("").split(' ');
        let method = request_line.next().unwrap_or("").to_string();
        let path = request_line.next().unwrap_or("").to_string();
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // Body.
        let body_start = head_end + 4;
        while buf.len() < body_start + len {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[body_start..body_start + len].to_vec();
        buf.drain(..body_start + len);
        got.lock().unwrap().push(Received {
            method,
            path,
            headers,
            body,
            at: chrono::Utc::now().timestamp(),
        });
        let mut status = script.lock().unwrap().pop_front().unwrap_or(then);
        if status == HANG {
            tokio::time::sleep(Duration::from_secs(5)).await;
            return;
        }
        if status == SLOW {
            tokio::time::sleep(Duration::from_secs(4)).await;
            status = 200;
        }
        let text = format!("answer {status}");
        let extra = if (200..300).contains(&status) {
            String::new()
        } else {
            extra.lock().unwrap().clone()
        };
        let answer = format!(
            "HTTP/1.1 {status} Scripted\r\ncontent-type: text/plain\r\n{extra}content-length: {}\r\n\r\n{text}",
            text.len()
        );
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// The Standard Webhooks signature entry a receiver expects for `secret`, computed here
/// independently of the service's code: HMAC-SHA256 keyed with the base64-decoded secret
/// after `whsec_`, over `{id}.{timestamp}.{body}`, in standard base64.
pub(crate) fn expected_signature(secret: &str, id: &str, t: &str, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ secret"))
        .expect("standard base64 after whsec_");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{t}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The space-separated entries of a request's `webhook-signature`.
pub(crate) fn signatures(r: &Received) -> Vec<String> {
    r.header("webhook-signature")
        .split(' ')
        .map(str::to_string)
        .collect()
}

/// Checks the headers and signature of one request; returns the parsed body.
pub(crate) fn check_signed(r: &Received, secret: &str, event: &str) -> Value {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hook");
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("user-agent"), "Closeloop-Webhooks/1");
    assert!(
        !r.headers.keys().any(|k| k.starts_with("closeloop-")),
        "no Closeloop-* headers any more: {:?}",
        r.headers
    );
    let id = r.header("webhook-id");
    assert!(id.starts_with("dlv_"), "{id}");
    let t = r.header("webhook-timestamp");
    let expected = expected_signature(secret, id, t, &r.body);
    assert!(
        signatures(r).contains(&expected),
        "bad signature: {:?}, expected {expected}",
        r.header("webhook-signature")
    );
    let t: i64 = t.parse().expect("unix seconds");
    assert!(
        (r.at - t).abs() <= 5,
        "the timestamp is fresh: signed {t}, received {}",
        r.at
    );
    let body = r.json();
    assert_eq!(body["type"], event);
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "type, timestamp and data: {body}");
    assert!(body["data"].is_object(), "{body}");
    let stamp = body["timestamp"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(stamp).is_ok() && stamp.ends_with('Z'),
        "{stamp}"
    );
    body
}

pub(crate) async fn fast_app(engine: Engine, extra: &[(&str, &str)]) -> TestApp {
    let mut settings = vec![
        ("WEBHOOK_RETRY_BASE_SECONDS", "0"),
        ("DISPATCH_INTERVAL_MS", "50"),
        ("WEBHOOK_TIMEOUT_SECONDS", "2"),
    ];
    settings.extend_from_slice(extra);
    spawn_app_with(engine, &settings).await
}

/// Creates a webhook; returns its id and secret.
pub(crate) async fn subscribe(app: &TestApp, url: &str, events: &[&str]) -> (String, String) {
    let a = app
        .post("/api/v1/webhooks", json!({"url": url, "events": events}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    (
        a.body["id"].as_str().unwrap().to_string(),
        a.body["secret"].as_str().unwrap().to_string(),
    )
}

/// A survey and one link invitation; returns (survey id, invitation token).
async fn survey_and_token(app: &TestApp) -> (String, String) {
    let s = app.nps_survey().await;
    let sid = s["id"].as_str().unwrap().to_string();
    let a = app
        .post(
            &format!("/api/v1/surveys/{sid}/invitations"),
            json!({"channel": "link", "contacts": [{"email": "ada@example.com"}]}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let url = a.body["items"][0]["url"].as_str().unwrap();
    (sid, url.rsplit('/').next().unwrap().to_string())
}

async fn answer(app: &TestApp, body: Value) -> Value {
    let a = app.post("/api/v1/responses", body).await;
    assert!(a.status == 201 || a.status == 200, "{}", a.text);
    a.body
}

pub(crate) async fn deliveries(app: &TestApp, webhook_id: &str) -> Vec<Value> {
    let a = app
        .get(&format!("/api/v1/webhooks/{webhook_id}/deliveries"))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["items"].as_array().unwrap().clone()
}

/// Waits until the delivery `id` of the webhook has `status`.
pub(crate) async fn wait_delivery(
    app: &TestApp,
    webhook_id: &str,
    id: &str,
    status: &str,
) -> Value {
    let what = format!("delivery {id} to be {status}");
    eventually(10, &what, || async {
        deliveries(app, webhook_id)
            .await
            .into_iter()
            .find(|d| d["id"] == id && d["status"] == status)
    })
    .await
}

async fn webhooks_are_created_listed_read_and_deleted(app: TestApp) {
    let a = app
        .post(
            "/api/v1/webhooks",
            json!({"url": "https://crm.example.com/hooks?x=1", "events": ["response.created", "followup.created"]}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("whk_"), "{id}");
    assert_eq!(a.body["url"], "https://crm.example.com/hooks?x=1");
    assert_eq!(
        a.body["events"],
        json!(["response.created", "followup.created"])
    );
    assert_eq!(a.body["active"], true);
    assert!(a.body["created_at"].as_str().unwrap().ends_with('Z'));
    let secret = a.body["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );

    // Ids sort by creation time to the millisecond.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = subscribe(&app, "http://10.0.0.1:9000/in", &["followup.updated"])
        .await
        .0;

    let got = app.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body["id"], id.as_str());
    assert_eq!(
        got.body["events"],
        json!(["response.created", "followup.created"])
    );
    assert!(got.body.get("secret").is_none(), "the secret is shown once");

    let list = app.get("/api/v1/webhooks").await;
    assert_eq!(list.status, 200);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], second.as_str(), "newest first");
    assert!(items.iter().all(|w| w.get("secret").is_none()));
    let page = app.get("/api/v1/webhooks?limit=1").await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 1);
    let cursor = page.body["next_cursor"].as_str().unwrap().to_string();
    let page2 = app
        .get(&format!("/api/v1/webhooks?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(page2.body["items"][0]["id"], id.as_str());
    assert!(page2.body["next_cursor"].is_null());

    assert!(deliveries(&app, &id).await.is_empty());

    let del = app.delete(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(del.status, 204, "{}", del.text);
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}")).await.status, 404);
    let again = app.delete(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(again.status, 404);
    assert_eq!(again.code(), "not_found");
    let list = app.get("/api/v1/webhooks").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    // The delivery log of a deleted webhook stays readable.
    assert!(deliveries(&app, &id).await.is_empty());
}

async fn bad_webhook_requests_are_4xx(app: TestApp) {
    let long = format!("https://example.com/{}", "a".repeat(2000));
    for (body, field) in [
        (json!({"events": ["response.created"]}), "url"),
        (
            json!({"url": "ftp://example.com/x", "events": ["response.created"]}),
            "url",
        ),
        (
            json!({"url": "not a url", "events": ["response.created"]}),
            "url",
        ),
        (
            json!({"url": "/relative/path", "events": ["response.created"]}),
            "url",
        ),
        (
            json!({"url": "mailto:ops@example.com", "events": ["response.created"]}),
            "url",
        ),
        (json!({"url": long, "events": ["response.created"]}), "url"),
        (json!({"url": 42, "events": ["response.created"]}), "url"),
        (json!({"url": "https://example.com"}), "events"),
        (
            json!({"url": "https://example.com", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://example.com", "events": ["response.created", "response.created"]}),
            "events",
        ),
        (
            json!({"url": "https://example.com", "events": ["response.created", "response.deleted"]}),
            "events[1]",
        ),
        (
            json!({"url": "https://example.com", "events": "response.created"}),
            "events",
        ),
        (
            json!({"url": "https://example.com", "events": ["response.created"], "secret": "mine"}),
            "secret",
        ),
    ] {
        let a = app.post("/api/v1/webhooks", body.clone()).await;
        assert_eq!(a.status, 422, "{body}: {}", a.text);
        assert_eq!(a.code(), "validation_failed");
        assert!(
            !a.field(field).is_empty(),
            "{body}: no message for {field}: {}",
            a.text
        );
    }
    let list = app.get("/api/v1/webhooks").await;
    assert!(list.body["items"].as_array().unwrap().is_empty());

    // Roles: webhooks are admin only.
    let reader = app.key_with_role("reader").await;
    let agent = app.key_with_role("agent").await;
    let body = json!({"url": "https://example.com/in", "events": ["response.created"]});
    for key in [&reader, &agent] {
        let a = app
            .send(Method::POST, "/api/v1/webhooks", Some(key), Some(&body))
            .await;
        assert_eq!(a.status, 403, "{}", a.text);
        assert_eq!(a.code(), "forbidden");
        let a = app
            .send(Method::GET, "/api/v1/webhooks", Some(key), None)
            .await;
        assert_eq!(a.status, 403, "{}", a.text);
    }
    let a = app
        .send(Method::POST, "/api/v1/webhooks", None, Some(&body))
        .await;
    assert_eq!(a.status, 401);

    // Unknown ids.
    for path in [
        "/api/v1/webhooks/whk_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2",
        "/api/v1/webhooks/nope",
        "/api/v1/webhooks/srv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2",
        "/api/v1/webhooks/whk_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2/deliveries",
    ] {
        let a = app.get(path).await;
        assert_eq!(a.status, 404, "{path}: {}", a.text);
        assert_eq!(a.code(), "not_found");
    }
    let a = app
        .delete("/api/v1/webhooks/whk_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2")
        .await;
    assert_eq!(a.status, 404);

    // Bad list parameters.
    let (id, _) = subscribe(&app, "https://example.com/in", &["response.created"]).await;
    for path in [
        "/api/v1/webhooks?limit=0".to_string(),
        "/api/v1/webhooks?cursor=srv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2".to_string(),
        format!("/api/v1/webhooks/{id}/deliveries?status=lost"),
        format!("/api/v1/webhooks/{id}/deliveries?limit=101"),
        format!("/api/v1/webhooks/{id}/deliveries?cursor=whk_x"),
    ] {
        let a = app.get(&path).await;
        assert_eq!(a.status, 422, "{path}: {}", a.text);
    }
    let a = app.get("/api/v1/webhooks?limit=abc").await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert_eq!(a.field("limit"), ["must be an integer"]);
}

async fn answers_reach_the_receiver_signed(engine: Engine) {
    let app = fast_app(engine, &[]).await;
    let receiver = Receiver::start(&[], 200).await;
    let (hook, secret) = subscribe(
        &app,
        &receiver.url,
        &["response.created", "response.updated"],
    )
    .await;
    let (sid, token) = survey_and_token(&app).await;

    let created = answer(
        &app,
        json!({"invitation_token": token, "score": 3, "comment": "Slow"}),
    )
    .await;
    let got = receiver.wait_for(1, 10).await;
    let body = check_signed(&got[0], &secret, "response.created");
    let data = &body["data"];
    assert_eq!(data["id"], created["id"]);
    assert_eq!(data["survey_id"], sid.as_str());
    assert_eq!(data["invitation_id"], created["invitation_id"]);
    assert_eq!(data["contact_id"], created["contact_id"]);
    assert_eq!(data["score"], 3);
    assert_eq!(data["category"], "detractor");
    assert_eq!(data["comment"], "Slow");
    assert_eq!(data["channel"], "api");
    assert!(data.get("previous_score").is_none());

    // The same invitation answered again: an update, with the previous score.
    answer(&app, json!({"invitation_token": token, "score": 9})).await;
    let got = receiver.wait_for(2, 10).await;
    let body = check_signed(&got[1], &secret, "response.updated");
    assert_eq!(body["data"]["id"], created["id"]);
    assert_eq!(body["data"]["score"], 9);
    assert_eq!(body["data"]["category"], "promoter");
    assert_eq!(body["data"]["previous_score"], 3);
    assert_ne!(got[0].header("webhook-id"), got[1].header("webhook-id"));

    // A double submit that changes nothing sends nothing.
    answer(&app, json!({"invitation_token": token, "score": 9})).await;
    assert_eq!(deliveries(&app, &hook).await.len(), 2);

    // An anonymous answer by survey id.
    let anon = answer(&app, json!({"survey_id": sid, "score": 10})).await;
    let got = receiver.wait_for(3, 10).await;
    let body = check_signed(&got[2], &secret, "response.created");
    assert_eq!(body["data"]["id"], anon["id"]);
    assert!(body["data"]["invitation_id"].is_null());

    // An answer through the customer page fires too.
    let (_, token2) = {
        let a = app
            .post(
                &format!("/api/v1/surveys/{sid}/invitations"),
                json!({"channel": "link", "contacts": [{"email": "grace@example.com"}]}),
            )
            .await;
        let url = a.body["items"][0]["url"].as_str().unwrap().to_string();
        (url.clone(), url.rsplit('/').next().unwrap().to_string())
    };
    let res = app
        .client
        .post(app.url(&format!("/s/{token2}")))
        .form(&[("score", "6"), ("comment", "meh")])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    let got = receiver.wait_for(4, 10).await;
    let body = check_signed(&got[3], &secret, "response.created");
    assert_eq!(body["data"]["score"], 6);
    assert_eq!(body["data"]["channel"], "link");

    // Every delivery is recorded as delivered, with its one attempt and payload.
    for r in &got {
        let id = r.header("webhook-id");
        let d = wait_delivery(&app, &hook, id, "delivered").await;
        assert_eq!(d["webhook_id"], hook.as_str());
        assert_eq!(d["attempt_count"], 1);
        assert_eq!(d["attempts"].as_array().unwrap().len(), 1);
        assert_eq!(d["attempts"][0]["status_code"], 200);
        assert!(d["attempts"][0]["error"].is_null());
        assert!(d["attempts"][0]["duration_ms"].as_i64().unwrap() >= 0);
        assert!(d["delivered_at"].is_string());
        assert!(d["next_attempt_at"].is_null());
        assert_eq!(d["event"], r.json()["type"]);
        assert_eq!(d["payload"], r.json(), "the payload is the body sent");
    }
    let list = deliveries(&app, &hook).await;
    assert_eq!(list.len(), 4);
    assert_eq!(list[3]["id"], got[0].header("webhook-id"), "newest first");
}

async fn a_failing_receiver_gets_the_same_delivery_until_it_succeeds(engine: Engine) {
    let app = fast_app(engine, &[]).await;
    let receiver = Receiver::start(&[500, 500], 200).await;
    let (hook, secret) = subscribe(&app, &receiver.url, &["response.created"]).await;
    let s = app.nps_survey().await;
    answer(&app, json!({"survey_id": s["id"], "score": 8})).await;

    let got = receiver.wait_for(3, 15).await;
    let id = got[0].header("webhook-id").to_string();
    for r in &got {
        assert_eq!(r.header("webhook-id"), id, "retries keep the id");
        assert_eq!(r.body, got[0].body, "retries send the same body");
        check_signed(r, &secret, "response.created");
    }
    let d = wait_delivery(&app, &hook, &id, "delivered").await;
    assert_eq!(d["attempt_count"], 3);
    let codes: Vec<i64> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![500, 500, 200]);
    assert!(d["attempts"][0]["error"].as_str().unwrap().contains("500"));
    assert!(d["attempts"][2]["error"].is_null());
    assert!(d["last_error"].is_null());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 3, "nothing more after success");
}

async fn a_4xx_answer_is_not_retried(engine: Engine) {
    let app = fast_app(engine, &[]).await;
    let receiver = Receiver::start(&[400], 200).await;
    let (hook, _) = subscribe(&app, &receiver.url, &["response.created"]).await;
    let s = app.nps_survey().await;
    answer(&app, json!({"survey_id": s["id"], "score": 8})).await;
    let got = receiver.wait_for(1, 10).await;
    let id = got[0].header("webhook-id");
    let d = wait_delivery(&app, &hook, id, "failed").await;
    assert_eq!(d["attempt_count"], 1);
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(d["attempts"][0]["status_code"], 400);
    assert_eq!(d["last_status_code"], 400);
    assert!(d["last_error"].as_str().unwrap().contains("400"), "{d}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 1, "a 400 is not retried");
    let failed = app
        .get(&format!("/api/v1/webhooks/{hook}/deliveries?status=failed"))
        .await;
    assert_eq!(failed.body["items"].as_array().unwrap().len(), 1);
    let delivered = app
        .get(&format!(
            "/api/v1/webhooks/{hook}/deliveries?status=delivered"
        ))
        .await;
    assert!(delivered.body["items"].as_array().unwrap().is_empty());
}

async fn timeouts_and_connection_errors_are_retried_then_given_up(engine: Engine) {
    let app = fast_app(
        engine,
        &[
            ("WEBHOOK_TIMEOUT_SECONDS", "1"),
            ("WEBHOOK_MAX_ATTEMPTS", "2"),
        ],
    )
    .await;
    // A receiver that hangs once, then answers.
    let slow = Receiver::start(&[HANG], 204).await;
    let (slow_hook, _) = subscribe(&app, &slow.url, &["response.created"]).await;
    // Nothing listens on this port.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (dead_hook, _) = subscribe(
        &app,
        &format!("http://127.0.0.1:{closed}/hook"),
        &["response.created"],
    )
    .await;
    let s = app.nps_survey().await;
    answer(&app, json!({"survey_id": s["id"], "score": 8})).await;

    let got = slow.wait_for(2, 15).await;
    let id = got[0].header("webhook-id");
    let d = wait_delivery(&app, &slow_hook, id, "delivered").await;
    assert_eq!(d["attempt_count"], 2);
    assert!(d["attempts"][0]["status_code"].is_null());
    assert!(
        d["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{d}"
    );
    assert!(d["attempts"][0]["duration_ms"].as_i64().unwrap() >= 900);
    assert_eq!(d["attempts"][1]["status_code"], 204);

    let dead = eventually(15, "the dead webhook's delivery to fail", || async {
        deliveries(&app, &dead_hook)
            .await
            .into_iter()
            .find(|d| d["status"] == "failed")
    })
    .await;
    assert_eq!(dead["attempt_count"], 2, "WEBHOOK_MAX_ATTEMPTS=2");
    let attempts = dead["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    for a in attempts {
        assert!(a["status_code"].is_null());
        assert!(a["error"].as_str().unwrap().contains("connection"), "{a}");
    }
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap()
            .starts_with("gave up after 2 attempts"),
        "{dead}"
    );
}

async fn a_webhook_gets_only_its_events(engine: Engine) {
    let app = fast_app(engine, &[]).await;
    let followups = Receiver::start(&[], 200).await;
    let responses = Receiver::start(&[], 200).await;
    let (followup_hook, _) = subscribe(
        &app,
        &followups.url,
        &["followup.created", "followup.updated"],
    )
    .await;
    let (updates_hook, _) = subscribe(&app, &responses.url, &["response.updated"]).await;
    let (created_hook, _) = subscribe(&app, &responses.url, &["response.created"]).await;
    let (_, token) = survey_and_token(&app).await;
    // A promoter: no follow-up task, so no follow-up event either.
    answer(&app, json!({"invitation_token": token, "score": 9})).await;
    let got = responses.wait_for(1, 10).await;
    assert_eq!(got[0].json()["type"], "response.created");
    assert_eq!(deliveries(&app, &created_hook).await.len(), 1);
    assert!(deliveries(&app, &updates_hook).await.is_empty());
    assert!(deliveries(&app, &followup_hook).await.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(followups.count(), 0);
    assert_eq!(responses.count(), 1);
}

async fn follow_up_events_track_the_task(engine: Engine) {
    let app = fast_app(engine, &[]).await;
    let receiver = Receiver::start(&[], 200).await;
    let (_, secret) = subscribe(
        &app,
        &receiver.url,
        &["followup.created", "followup.updated"],
    )
    .await;
    let (_, token) = survey_and_token(&app).await;
    answer(&app, json!({"invitation_token": token, "score": 2})).await;
    let got = receiver.wait_for(1, 10).await;
    let created = check_signed(&got[0], &secret, "followup.created");
    assert_eq!(created["data"]["score"], 2);
    assert_eq!(created["data"]["status"], "open");
    assert_eq!(created["data"]["change"], "created");
    assert_eq!(created["data"]["actor"], "system");
    assert!(created["data"]["actor_name"].is_null());
    let id = created["data"]["id"].as_str().unwrap().to_string();
    let a = app
        .patch(
            &format!("/api/v1/followups/{id}"),
            json!({"status": "in_progress", "assignee": "lea@acme.test"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let got = receiver.wait_for(2, 10).await;
    let updated = check_signed(&got[1], &secret, "followup.updated");
    assert_eq!(updated["data"]["status"], "in_progress");
    assert_eq!(updated["data"]["assignee"], "lea@acme.test");
    assert_eq!(updated["data"]["change"], "status_changed,assigned");
    assert_eq!(updated["data"]["actor"], "api-key:test admin");
    assert_eq!(updated["data"]["actor_name"], "test admin");
    app.post(
        &format!("/api/v1/followups/{id}/notes"),
        json!({"body": "called"}),
    )
    .await;
    // The customer raises the score: the task is resolved, and the app hears of it.
    answer(&app, json!({"invitation_token": token, "score": 10})).await;
    let got = receiver.wait_for(4, 10).await;
    let changes: Vec<String> = got
        .iter()
        .map(|r| r.json()["data"]["change"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        changes,
        vec![
            "created",
            "status_changed,assigned",
            "note",
            "answer_changed"
        ]
    );
    let last = check_signed(&got[3], &secret, "followup.updated");
    assert_eq!(
        (
            last["data"]["status"].as_str(),
            last["data"]["outcome"].as_str()
        ),
        (Some("resolved"), Some("score_raised"))
    );
}

async fn a_deleted_webhook_receives_nothing_more(engine: Engine) {
    let app = fast_app(engine, &[("WEBHOOK_RETRY_BASE_SECONDS", "1")]).await;
    let receiver = Receiver::start(&[], 503).await;
    let (hook, _) = subscribe(&app, &receiver.url, &["response.created"]).await;
    let s = app.nps_survey().await;
    answer(&app, json!({"survey_id": s["id"], "score": 8})).await;
    receiver.wait_for(1, 10).await;
    let del = app.delete(&format!("/api/v1/webhooks/{hook}")).await;
    assert_eq!(del.status, 204);
    let seen = receiver.count();
    answer(&app, json!({"survey_id": s["id"], "score": 9})).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        receiver.count(),
        seen,
        "no retry and no new event after delete"
    );
    let list = deliveries(&app, &hook).await;
    assert_eq!(list.len(), 1, "nothing is queued for a deleted webhook");
    assert_eq!(list[0]["status"], "failed");
    assert_eq!(list[0]["last_error"], "webhook deleted");
    assert!(list[0]["next_attempt_at"].is_null());
}

/// Two replicas on one PostgreSQL database deliver each event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_on_one_postgres_deliver_each_event_once() {
    if std::env::var("TEST_POSTGRES_URL")
        .map(|v| v.is_empty())
        .unwrap_or(true)
    {
        eprintln!("TEST_POSTGRES_URL is not set: PostgreSQL variant not run");
        return;
    }
    let app = fast_app(Engine::Postgres, &[]).await;
    let (replica, _outbox) = crate::helpers::spawn_replica(
        &app,
        &[
            ("WEBHOOK_RETRY_BASE_SECONDS", "0"),
            ("DISPATCH_INTERVAL_MS", "20"),
        ],
    )
    .await;
    tokio::spawn(replica.run_until_stopped());
    let receiver = Receiver::start(&[], 200).await;
    for _ in 0..5 {
        subscribe(&app, &receiver.url, &["response.created"]).await;
    }
    let s = app.nps_survey().await;
    let sid = s["id"].as_str().unwrap().to_string();
    let app_ref = &app;
    let answers = (0..30).map(|i| {
        let body = json!({"survey_id": sid, "score": i % 11});
        async move { answer(app_ref, body).await }
    });
    futures_util::future::join_all(answers).await;
    receiver.wait_for(150, 30).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = receiver.all();
    assert_eq!(got.len(), 150, "no delivery was sent twice");
    let ids: std::collections::HashSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), 150);
}

/// Two replicas, a receiver slower than the whole lease: the worker that holds the
/// deliveries keeps extending its lease, so the other never takes them and nothing is
/// delivered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_slower_than_the_lease_gets_each_delivery_once_from_two_replicas() {
    if std::env::var("TEST_POSTGRES_URL")
        .map(|v| v.is_empty())
        .unwrap_or(true)
    {
        eprintln!("TEST_POSTGRES_URL is not set: PostgreSQL variant not run");
        return;
    }
    let settings = [
        ("WEBHOOK_RETRY_BASE_SECONDS", "0"),
        ("DISPATCH_INTERVAL_MS", "50"),
        ("WEBHOOK_TIMEOUT_SECONDS", "10"),
        ("WEBHOOK_LEASE_SECONDS", "3"),
    ];
    let app = fast_app(Engine::Postgres, &settings).await;
    let (replica, _outbox) = crate::helpers::spawn_replica(&app, &settings).await;
    tokio::spawn(replica.run_until_stopped());
    let receiver = Receiver::start(&[], SLOW).await;
    subscribe(&app, &receiver.url, &["response.created"]).await;
    let s = app.nps_survey().await;
    let sid = s["id"].as_str().unwrap().to_string();
    for i in 0..4 {
        answer(&app, json!({"survey_id": sid, "score": i})).await;
    }
    receiver.wait_for(4, 15).await;
    // Past the lease again: a replica that took deliveries over would send them now.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let got = receiver.all();
    let ids: std::collections::HashSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(got.len(), 4, "no delivery was sent twice");
}

async fn patch_changes_url_events_and_active(app: TestApp) {
    let (hook, secret) = subscribe(&app, "https://a.example.com/h", &["response.created"]).await;
    let a = app
        .patch(
            &format!("/api/v1/webhooks/{hook}"),
            json!({"events": ["followup.created", "followup.updated"]}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.body["events"],
        json!(["followup.created", "followup.updated"])
    );
    assert_eq!(a.body["url"], "https://a.example.com/h");
    assert!(
        a.body.get("secret").is_none(),
        "the secret is never shown again"
    );
    let a = app
        .patch(
            &format!("/api/v1/webhooks/{hook}"),
            json!({"url": "https://b.example.com/x", "active": false}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["url"], "https://b.example.com/x");
    assert_eq!(a.body["active"], false);
    assert_eq!(
        a.body["events"],
        json!(["followup.created", "followup.updated"])
    );
    // An empty body changes nothing.
    let a = app
        .patch(&format!("/api/v1/webhooks/{hook}"), json!({}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["url"], "https://b.example.com/x");
    let got = app.get(&format!("/api/v1/webhooks/{hook}")).await;
    assert_eq!(got.body["active"], false);
    assert_eq!(got.body["url"], "https://b.example.com/x");
    assert!(!secret.is_empty());
}

async fn patch_test_and_redeliver_refuse_bad_requests(app: TestApp) {
    let (hook, _) = subscribe(&app, "https://a.example.com/h", &["response.created"]).await;
    let path = format!("/api/v1/webhooks/{hook}");
    for (body, field) in [
        (json!({"events": []}), "events"),
        (
            json!({"events": ["response.created", "response.created"]}),
            "events",
        ),
        (json!({"events": ["webhook.test"]}), ""),
        (json!({"url": "ftp://x.example.com"}), "url"),
        (json!({"active": "yes"}), ""),
        (json!({"secret": "whsec_x"}), ""),
    ] {
        let a = app.patch(&path, body.clone()).await;
        assert!(
            a.status == 422 || a.status == 400,
            "{body}: {} {}",
            a.status,
            a.text
        );
        if !field.is_empty() {
            assert_eq!(a.status, 422, "{body}");
            assert!(!a.field(field).is_empty(), "{body}: {}", a.text);
        }
    }
    let ghost = "whk_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2";
    let dlv = "dlv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2";
    for (method, p) in [
        (Method::PATCH, format!("/api/v1/webhooks/{ghost}")),
        (Method::POST, format!("/api/v1/webhooks/{ghost}/test")),
        (
            Method::POST,
            format!("/api/v1/webhooks/{ghost}/deliveries/{dlv}/redeliver"),
        ),
        (
            Method::POST,
            format!("/api/v1/webhooks/{hook}/deliveries/{dlv}/redeliver"),
        ),
        (Method::POST, "/api/v1/webhooks/nope/test".to_string()),
        (
            Method::POST,
            format!("/api/v1/webhooks/{hook}/deliveries/nope/redeliver"),
        ),
    ] {
        let a = app
            .send(method.clone(), &p, Some(&app.key), Some(&json!({})))
            .await;
        assert_eq!(a.status, 404, "{method} {p}: {}", a.text);
        assert_eq!(a.code(), "not_found");
    }
    // Agents and readers may not.
    let agent = app.key_with_role("agent").await;
    for (method, p) in [
        (Method::PATCH, path.clone()),
        (Method::POST, format!("{path}/test")),
        (Method::POST, format!("{path}/deliveries/{dlv}/redeliver")),
    ] {
        let a = app
            .send(method.clone(), &p, Some(&agent), Some(&json!({})))
            .await;
        assert_eq!(a.status, 403, "{method} {p}: {}", a.text);
        let a = app.send(method.clone(), &p, None, Some(&json!({}))).await;
        assert_eq!(a.status, 401, "{method} {p}: {}", a.text);
    }
    // A paused webhook gets no test event.
    app.patch(&path, json!({"active": false})).await;
    let a = app.post(&format!("{path}/test"), json!({})).await;
    assert_eq!(a.status, 409, "{}", a.text);
    assert_eq!(a.code(), "webhook_inactive");
    assert!(deliveries(&app, &hook).await.is_empty());
    // A deleted one is gone.
    app.delete(&path).await;
    let a = app.patch(&path, json!({"active": true})).await;
    assert_eq!(a.status, 404, "{}", a.text);
}

async fn a_test_event_reaches_the_receiver_and_redeliver_sends_it_again(engine: Engine) {
    let app = fast_app(engine, &[]).await;
    let receiver = Receiver::start(&[], 200).await;
    let (hook, secret) = subscribe(&app, &receiver.url, &["followup.created"]).await;
    let a = app
        .post(&format!("/api/v1/webhooks/{hook}/test"), json!({}))
        .await;
    assert_eq!(a.status, 202, "{}", a.text);
    assert_eq!(a.body["event"], "webhook.test");
    assert_eq!(a.body["status"], "pending");
    let id = a.body["id"].as_str().unwrap().to_string();
    let got = receiver.wait_for(1, 10).await;
    let body = check_signed(&got[0], &secret, "webhook.test");
    assert_eq!(got[0].header("webhook-id"), id);
    assert_eq!(body["data"]["webhook_id"], hook);
    let d = wait_delivery(&app, &hook, &id, "delivered").await;
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(d["attempts"][0]["status_code"], 200);

    // Redeliver: the same delivery and payload, a second attempt in its log.
    let a = app
        .post(
            &format!("/api/v1/webhooks/{hook}/deliveries/{id}/redeliver"),
            json!({}),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.text);
    assert_eq!(a.body["id"], id);
    let got = receiver.wait_for(2, 10).await;
    assert_eq!(got[1].header("webhook-id"), id);
    assert_eq!(got[1].body, got[0].body, "the same payload");
    check_signed(&got[1], &secret, "webhook.test");
    let d = eventually(10, "two attempts", || async {
        deliveries(&app, &hook).await.into_iter().find(|d| {
            d["id"] == id
                && d["status"] == "delivered"
                && d["attempts"].as_array().unwrap().len() == 2
        })
    })
    .await;
    assert_eq!(d["attempt_count"], 2);
    assert_eq!(receiver.count(), 2);
}

async fn a_failed_delivery_is_redelivered_once(engine: Engine) {
    let app = fast_app(engine, &[]).await;
    let receiver = Receiver::start(&[400], 200).await;
    let (hook, _) = subscribe(&app, &receiver.url, &["response.created"]).await;
    let a = app
        .post(&format!("/api/v1/webhooks/{hook}/test"), json!({}))
        .await;
    let id = a.body["id"].as_str().unwrap().to_string();
    let d = wait_delivery(&app, &hook, &id, "failed").await;
    assert_eq!(d["last_status_code"], 400);
    let a = app
        .post(
            &format!("/api/v1/webhooks/{hook}/deliveries/{id}/redeliver"),
            json!({}),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.text);
    assert_eq!(
        a.body["attempts"].as_array().unwrap().len(),
        1,
        "the log so far"
    );
    let d = wait_delivery(&app, &hook, &id, "delivered").await;
    let codes: Vec<&Value> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status_code"])
        .collect();
    assert_eq!(codes, [&json!(400), &json!(200)]);
    assert_eq!(d["last_error"], Value::Null);
    assert_eq!(receiver.count(), 2);
}

both_engines!(
    webhooks_are_created_listed_read_and_deleted,
    bad_webhook_requests_are_4xx,
    patch_changes_url_events_and_active,
    patch_test_and_redeliver_refuse_bad_requests,
);
each_engine!(
    answers_reach_the_receiver_signed,
    a_failing_receiver_gets_the_same_delivery_until_it_succeeds,
    a_4xx_answer_is_not_retried,
    timeouts_and_connection_errors_are_retried_then_given_up,
    a_webhook_gets_only_its_events,
    follow_up_events_track_the_task,
    a_deleted_webhook_receives_nothing_more,
    a_test_event_reaches_the_receiver_and_redeliver_sends_it_again,
    a_failed_delivery_is_redelivered_once,
);
