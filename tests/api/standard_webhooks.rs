//! Standard Webhooks v1: a stock verifier library accepts real deliveries; 410 disables;
//! `Retry-After` is honoured; secret rotation signs with both secrets during the overlap; an
//! endpoint failing for `WEBHOOK_DISABLE_AFTER_HOURS` is disabled and its admins are emailed.

use std::process::Command;

use closeloop::domain::Role;
use serde_json::json;

use crate::each_engine;
use crate::helpers::{eventually, Engine, TestApp};
use crate::webhooks::{
    check_signed, deliveries, expected_signature, fast_app, signatures, subscribe, wait_delivery,
    Received, Receiver,
};

/// Printed when the stock verifier is missing. `.ci/run` sets `REQUIRE_STANDARDWEBHOOKS=1`,
/// which turns the skip into a failure.
const NOT_INSTALLED: &str =
    "STANDARD WEBHOOKS VERIFIER NOT RUN: the `standardwebhooks` Python package is not installed \
(python3 -m pip install standardwebhooks==1.1.0)";

/// Verifies one received request with the `standardwebhooks` package from PyPI (the
/// reference library of the spec's authors): `Some(Ok(type))` when it accepts the request,
/// `Some(Err(message))` when it refuses it, `None` when the package is not installed.
fn stock_verify(secret: &str, r: &Received, body: &[u8]) -> Option<Result<String, String>> {
    const SCRIPT: &str = r#"
import sys
try:
    from standardwebhooks import Webhook
except ImportError:
    sys.exit(3)
secret, msg_id, ts, sig, path = sys.argv[1:]
body = open(path, "rb").read()
headers = {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": sig}
try:
    payload = Webhook(secret).verify(body, headers)
except Exception as e:
    print(f"{type(e).__name__}: {e}")
    sys.exit(1)
print(payload["type"])
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("body");
    std::fs::write(&path, body).unwrap();
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(secret)
        .arg(r.header("webhook-id"))
        .arg(r.header("webhook-timestamp"))
        .arg(r.header("webhook-signature"))
        .arg(&path)
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match out.status.code() {
        Some(0) => Some(Ok(text)),
        Some(3) => None,
        _ => Some(Err(format!(
            "{text} {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

fn stock_library_installed() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("REQUIRE_STANDARDWEBHOOKS").is_none(),
            "{NOT_INSTALLED}, and REQUIRE_STANDARDWEBHOOKS is set"
        );
        eprintln!("{NOT_INSTALLED}");
    }
    ok
}

/// Sends a `webhook.test` event to `hook` and returns the request the receiver got.
async fn send_test(app: &TestApp, hook: &str, receiver: &Receiver, n: usize) -> Received {
    let a = app
        .post(&format!("/api/v1/webhooks/{hook}/test"), json!({}))
        .await;
    assert_eq!(a.status, 202, "{}", a.text);
    receiver.wait_for(n, 10).await[n - 1].clone()
}

async fn a_stock_standard_webhooks_library_verifies_a_real_delivery(engine: Engine) {
    if !stock_library_installed() {
        return;
    }
    let app = fast_app(engine, &[]).await;
    let receiver = Receiver::start(&[], 200).await;
    let (hook, secret) = subscribe(&app, &receiver.url, &["response.created"]).await;
    assert!(
        secret.starts_with("whsec_") && secret.ends_with('='),
        "{secret}"
    );

    // A real event: an answer.
    let s = app.nps_survey().await;
    let a = app
        .post(
            "/api/v1/responses",
            json!({"survey_id": s["id"], "score": 2, "comment": "Too slow"}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let got = receiver.wait_for(1, 10).await;
    let r = &got[0];
    check_signed(r, &secret, "response.created");
    assert_eq!(
        stock_verify(&secret, r, &r.body).unwrap(),
        Ok("response.created".to_string())
    );

    // The same library refuses a changed body and another secret: the check can fail.
    let mut forged = r.body.clone();
    forged.extend_from_slice(b" ");
    assert!(stock_verify(&secret, r, &forged).unwrap().is_err());
    let other = subscribe(&app, &receiver.url, &["followup.updated"])
        .await
        .1;
    assert!(stock_verify(&other, r, &r.body).unwrap().is_err());

    // A test event too.
    let r = send_test(&app, &hook, &receiver, 2).await;
    assert_eq!(
        stock_verify(&secret, &r, &r.body).unwrap(),
        Ok("webhook.test".to_string())
    );
}

async fn a_410_answer_disables_the_webhook_with_a_reason(engine: Engine) {
    let app = fast_app(engine, &[]).await;
    let receiver = Receiver::start(&[410], 200).await;
    let (hook, secret) = subscribe(&app, &receiver.url, &["response.created"]).await;
    let r = send_test(&app, &hook, &receiver, 1).await;
    check_signed(&r, &secret, "webhook.test");
    let d = wait_delivery(&app, &hook, r.header("webhook-id"), "failed").await;
    assert_eq!(d["last_status_code"], 410);
    assert_eq!(d["attempt_count"], 1);

    let w = app.get(&format!("/api/v1/webhooks/{hook}")).await;
    assert_eq!(w.body["active"], false, "{}", w.text);
    assert_eq!(w.body["disabled_reason"], "the endpoint answered 410 Gone");
    let admin = app.sign_in("boss@acme.test", "Bea Boss", Role::Admin).await;
    let (_, page) = app
        .get_page(&format!("/app/settings/webhooks/{hook}"), &admin.cookie)
        .await;
    assert!(
        page.contains("Closeloop turned this webhook off: the endpoint answered 410 Gone."),
        "{page}"
    );
    // Nothing more is sent: events are not queued, a test is refused.
    let s = app.nps_survey().await;
    app.post(
        "/api/v1/responses",
        json!({"survey_id": s["id"], "score": 9}),
    )
    .await;
    let t = app
        .post(&format!("/api/v1/webhooks/{hook}/test"), json!({}))
        .await;
    assert_eq!(t.status, 409, "{}", t.text);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 1);
    assert_eq!(deliveries(&app, &hook).await.len(), 1);

    // Turned on again, the reason goes and events flow.
    let on = app
        .patch(&format!("/api/v1/webhooks/{hook}"), json!({"active": true}))
        .await;
    assert_eq!(on.status, 200, "{}", on.text);
    assert_eq!(on.body["active"], true);
    assert!(on.body["disabled_reason"].is_null(), "{}", on.text);
    let r = send_test(&app, &hook, &receiver, 2).await;
    wait_delivery(&app, &hook, r.header("webhook-id"), "delivered").await;
}

async fn a_redirect_is_a_failure_and_is_not_followed(engine: Engine) {
    let app = fast_app(engine, &[]).await;
    let receiver = Receiver::start(&[307], 200).await;
    // The redirect points back at the receiver: following it would show as a second request.
    receiver.add_error_header("Location", &format!("{}/moved", receiver.url));
    let (hook, _) = subscribe(&app, &receiver.url, &["response.created"]).await;
    let r = send_test(&app, &hook, &receiver, 1).await;
    let d = wait_delivery(&app, &hook, r.header("webhook-id"), "failed").await;
    assert_eq!(d["last_status_code"], 307);
    assert!(
        d["last_error"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed"),
        "{d}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 1, "not followed, not retried");
    let w = app.get(&format!("/api/v1/webhooks/{hook}")).await;
    assert_eq!(w.body["active"], true, "a 3xx does not disable");
}

/// The next attempt of the only delivery of `hook`, in seconds after its first attempt.
async fn retry_delay(app: &TestApp, hook: &str) -> i64 {
    let d = eventually(10, "a pending delivery with one attempt", || async {
        deliveries(app, hook)
            .await
            .into_iter()
            .find(|d| d["status"] == "pending" && d["attempts"].as_array().unwrap().len() == 1)
    })
    .await;
    let at = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .timestamp()
    };
    at(&d["next_attempt_at"]) - at(&d["attempts"][0]["attempted_at"])
}

async fn retry_after_sets_the_next_attempt_of_429_and_5xx(engine: Engine) {
    // Retries are immediate here (WEBHOOK_RETRY_BASE_SECONDS=0) unless Retry-After says otherwise.
    let app = fast_app(engine, &[]).await;

    let seconds = Receiver::start(&[503], 200).await;
    seconds.add_error_header("Retry-After", "3600");
    let (hook, _) = subscribe(&app, &seconds.url, &["response.created"]).await;
    send_test(&app, &hook, &seconds, 1).await;
    let delay = retry_delay(&app, &hook).await;
    assert!(
        (3598..=3602).contains(&delay),
        "Retry-After: 3600 gave {delay} s"
    );

    let date = Receiver::start(&[429], 200).await;
    let when = chrono::Utc::now() + chrono::TimeDelta::seconds(7200);
    date.add_error_header(
        "Retry-After",
        &when.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
    );
    let (hook, _) = subscribe(&app, &date.url, &["response.created"]).await;
    send_test(&app, &hook, &date, 1).await;
    let delay = retry_delay(&app, &hook).await;
    assert!(
        (7195..=7202).contains(&delay),
        "an HTTP date 2 h ahead gave {delay} s"
    );

    // More than a day is cut to a day.
    let long = Receiver::start(&[500], 200).await;
    long.add_error_header("Retry-After", "999999");
    let (hook, _) = subscribe(&app, &long.url, &["response.created"]).await;
    send_test(&app, &hook, &long, 1).await;
    let delay = retry_delay(&app, &hook).await;
    assert!(
        (86_398..=86_402).contains(&delay),
        "capped at a day: {delay} s"
    );

    // Without Retry-After the usual backoff applies (0 s here): the retry comes at once.
    let plain = Receiver::start(&[503], 200).await;
    let (hook, _) = subscribe(&app, &plain.url, &["response.created"]).await;
    let r = send_test(&app, &hook, &plain, 2).await;
    wait_delivery(&app, &hook, r.header("webhook-id"), "delivered").await;
}

/// Rotates the secret of `hook`; returns the new secret and until when the old one signs.
async fn rotate(app: &TestApp, hook: &str) -> (String, i64) {
    let a = app
        .post(&format!("/api/v1/webhooks/{hook}/rotate-secret"), json!({}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["id"], hook);
    let until = chrono::DateTime::parse_from_rfc3339(
        a.body["previous_secret_expires_at"].as_str().unwrap(),
    )
    .unwrap()
    .timestamp();
    (a.body["secret"].as_str().unwrap().to_string(), until)
}

fn signed_with(r: &Received, secret: &str) -> bool {
    let want = expected_signature(
        secret,
        r.header("webhook-id"),
        r.header("webhook-timestamp"),
        &r.body,
    );
    signatures(r).contains(&want)
}

async fn a_rotated_secret_signs_beside_the_old_one_for_the_overlap(engine: Engine) {
    let app = fast_app(engine, &[]).await;
    let receiver = Receiver::start(&[], 200).await;
    let (hook, first) = subscribe(&app, &receiver.url, &["response.created"]).await;

    let (second, until) = rotate(&app, &hook).await;
    assert_ne!(second, first);
    assert!(second.starts_with("whsec_"));
    let in_a_day = chrono::Utc::now().timestamp() + 24 * 3600;
    assert!((until - in_a_day).abs() <= 5, "24 h overlap: {until}");
    let r = send_test(&app, &hook, &receiver, 1).await;
    assert_eq!(signatures(&r).len(), 2, "{}", r.header("webhook-signature"));
    assert_eq!(
        signatures(&r)[0],
        expected_signature(
            &second,
            r.header("webhook-id"),
            r.header("webhook-timestamp"),
            &r.body
        ),
        "the new secret first"
    );
    assert!(signed_with(&r, &first));
    check_signed(&r, &second, "webhook.test");
    if stock_library_installed() {
        for secret in [&first, &second] {
            assert_eq!(
                stock_verify(secret, &r, &r.body).unwrap(),
                Ok("webhook.test".to_string())
            );
        }
    }

    // A second rotation during the overlap drops the oldest secret.
    let (third, _) = rotate(&app, &hook).await;
    let r = send_test(&app, &hook, &receiver, 2).await;
    assert_eq!(signatures(&r).len(), 2);
    assert!(signed_with(&r, &third) && signed_with(&r, &second));
    assert!(!signed_with(&r, &first));

    // The page of the webhook says until when the previous secret signs.
    let admin = app.sign_in("boss@acme.test", "Bea Boss", Role::Admin).await;
    let (status, page) = app
        .get_page(&format!("/app/settings/webhooks/{hook}"), &admin.cookie)
        .await;
    assert_eq!(status, 200);
    assert!(
        page.contains("The previous secret still signs until"),
        "{page}"
    );
}

async fn after_the_overlap_only_the_new_secret_signs(engine: Engine) {
    // No overlap at all (WEBHOOK_ROTATION_OVERLAP_HOURS=0): the overlap is over at once.
    let app = fast_app(engine, &[("WEBHOOK_ROTATION_OVERLAP_HOURS", "0")]).await;
    let receiver = Receiver::start(&[], 200).await;
    let (hook, old) = subscribe(&app, &receiver.url, &["response.created"]).await;
    let (new, _) = rotate(&app, &hook).await;
    let r = send_test(&app, &hook, &receiver, 1).await;
    assert_eq!(signatures(&r).len(), 1, "{}", r.header("webhook-signature"));
    check_signed(&r, &new, "webhook.test");
    assert!(!signed_with(&r, &old));
    let admin = app.sign_in("boss@acme.test", "Bea Boss", Role::Admin).await;
    let (_, page) = app
        .get_page(&format!("/app/settings/webhooks/{hook}"), &admin.cookie)
        .await;
    assert!(
        page.contains("The current one stops signing at once."),
        "{page}"
    );
    assert!(!page.contains("previous secret still signs"), "{page}");
    if stock_library_installed() {
        assert!(stock_verify(&old, &r, &r.body).unwrap().is_err());
        assert!(stock_verify(&new, &r, &r.body).unwrap().is_ok());
    }
}

async fn rotating_needs_an_admin_and_a_live_webhook(engine: Engine) {
    let app = fast_app(engine, &[]).await;
    let (hook, _) = subscribe(&app, "http://127.0.0.1:9/hook", &["response.created"]).await;
    let reader = app.key_with_role("reader").await;
    let res = app
        .client
        .post(app.url(&format!("/api/v1/webhooks/{hook}/rotate-secret")))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    for path in [
        "/api/v1/webhooks/whk_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2/rotate-secret".to_string(),
        "/api/v1/webhooks/nope/rotate-secret".to_string(),
    ] {
        let a = app.post(&path, json!({})).await;
        assert_eq!(a.status, 404, "{path}: {}", a.text);
    }
    assert_eq!(
        app.delete(&format!("/api/v1/webhooks/{hook}")).await.status,
        204
    );
    let a = app
        .post(&format!("/api/v1/webhooks/{hook}/rotate-secret"), json!({}))
        .await;
    assert_eq!(a.status, 404, "{}", a.text);
}

async fn the_settings_page_rotates_the_secret_and_shows_it_once(engine: Engine) {
    let app = fast_app(engine, &[]).await;
    let receiver = Receiver::start(&[], 200).await;
    let (hook, old) = subscribe(&app, &receiver.url, &["response.created"]).await;
    let admin = app.sign_in("boss@acme.test", "Bea Boss", Role::Admin).await;
    let path = format!("/app/settings/webhooks/{hook}");
    let (status, page) = app.get_page(&path, &admin.cookie).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("action=\"{path}/rotate-secret\"")),
        "{page}"
    );
    assert!(!page.contains(&old), "the secret is never shown again");
    assert!(page.contains("keeps signing beside it for a day"), "{page}");

    // Without the CSRF token: refused, nothing changes.
    let res = app
        .post_form(&format!("{path}/rotate-secret"), Some(&admin.cookie), &[])
        .await;
    assert_eq!(res.status().as_u16(), 403);

    let (status, _, page) = app
        .post_as(&admin, &format!("{path}/rotate-secret"), &[])
        .await;
    assert_eq!(status, 200, "{page}");
    let new = page
        .split(|c: char| !(c.is_ascii_alphanumeric() || "_+/=".contains(c)))
        .find(|w| w.starts_with("whsec_"))
        .expect("the new secret on the page")
        .to_string();
    assert_ne!(new, old);
    let r = send_test(&app, &hook, &receiver, 1).await;
    assert!(signed_with(&r, &new) && signed_with(&r, &old));
    let (_, page) = app.get_page(&path, &admin.cookie).await;
    assert!(!page.contains(&new), "shown once");

    // Agents cannot rotate.
    let agent = app.sign_in("al@acme.test", "Al Agent", Role::Agent).await;
    let (status, _, _) = app
        .post_as(&agent, &format!("{path}/rotate-secret"), &[])
        .await;
    assert_eq!(status, 403);
}

async fn an_endpoint_failing_for_the_set_time_is_disabled_and_its_admins_are_emailed(
    engine: Engine,
) {
    // The rule is "every delivery failed for WEBHOOK_DISABLE_AFTER_HOURS (120 = 5 days)"; 0
    // makes the first failed attempt old enough, so the whole path runs in a test.
    let app = fast_app(
        engine,
        &[
            ("WEBHOOK_DISABLE_AFTER_HOURS", "0"),
            ("DISPATCH_INTERVAL_MS", "50"),
        ],
    )
    .await;
    app.new_member("boss@acme.test", "Bea Boss", Role::Admin)
        .await;
    app.new_member("al@acme.test", "Al Agent", Role::Agent)
        .await;
    let receiver = Receiver::start(&[], 500).await;
    let (hook, _) = subscribe(&app, &receiver.url, &["response.created"]).await;
    send_test(&app, &hook, &receiver, 1).await;
    let w = eventually(10, "the webhook to be disabled", || async {
        let w = app.get(&format!("/api/v1/webhooks/{hook}")).await;
        (w.body["active"] == false).then_some(w.body)
    })
    .await;
    let reason = w["disabled_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("every delivery failed since"),
        "{reason}"
    );

    let mails = eventually(15, "the admin's email in the outbox", || async {
        let found = disabled_emails(&app);
        (!found.is_empty()).then_some(found)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        disabled_emails(&app).len(),
        1,
        "one email, to the one admin"
    );
    let (to, subject, text) = &mails[0];
    assert_eq!(to, "boss@acme.test");
    assert!(subject.contains(&receiver.url), "{subject}");
    assert!(text.contains(reason), "{text}");
    assert!(
        text.contains(&format!("/app/settings/webhooks/{hook}")),
        "{text}"
    );

    // The default (5 days) does not disable a webhook after one failure.
    let patient = fast_app(engine, &[]).await;
    let failing = Receiver::start(&[], 500).await;
    let (hook, _) = subscribe(&patient, &failing.url, &["response.created"]).await;
    send_test(&patient, &hook, &failing, 2).await;
    eventually(10, "two failed attempts recorded", || async {
        deliveries(&patient, &hook)
            .await
            .into_iter()
            .find(|d| d["attempts"].as_array().is_some_and(|a| a.len() >= 2))
    })
    .await;
    let w = patient.get(&format!("/api/v1/webhooks/{hook}")).await;
    assert_eq!(w.body["active"], true, "{}", w.text);
}

async fn secrets_made_before_the_migration_keep_their_key_bytes(engine: Engine) {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    use closeloop::store::{DbConnection, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
    use diesel::migration::MigrationSource;
    use diesel::RunQueryDsl;
    use diesel_migrations::MigrationHarness;

    let app = fast_app(engine, &[]).await;
    let key = [0xfbu8; 32];
    let old = format!("whsec_{}", URL_SAFE_NO_PAD.encode(key));
    assert!(old.contains('-') && old.contains('_'), "{old}");
    let hook = "whk_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2";
    let stored = {
        let old = old.clone();
        crate::helpers::with_db(&app, move |conn| {
            // Back to the schema before the migration, a webhook as it was stored then, and
            // the migration again.
            let mine = |name: String| name.ends_with("_webhook_standard");
            macro_rules! redo {
                ($c:expr, $set:expr, $backend:ty) => {{
                    let m = MigrationSource::<$backend>::migrations(&$set)
                        .unwrap()
                        .into_iter()
                        .find(|m| mine(m.name().to_string()))
                        .expect("the migration");
                    $c.revert_migration(&*m).unwrap();
                    diesel::sql_query(format!(
                        "INSERT INTO webhooks (id, url, secret, events, active, created_at) \
VALUES ('{hook}', 'http://127.0.0.1:9/hook', '{old}', '[\"response.created\"]', TRUE, CURRENT_TIMESTAMP)"
                    ))
                    .execute($c)
                    .unwrap();
                    $c.run_migration(&*m).unwrap();
                }};
            }
            match conn {
                DbConnection::Sqlite(c) => redo!(c, SQLITE_MIGRATIONS, diesel::sqlite::Sqlite),
                DbConnection::Postgres(c) => redo!(c, POSTGRES_MIGRATIONS, diesel::pg::Pg),
            }
            closeloop::store::webhooks::get(conn, hook).unwrap().secret
        })
        .await
    };
    assert_eq!(stored, format!("whsec_{}", STANDARD.encode(key)));

    // Deliveries are signed with the same key bytes.
    let receiver = Receiver::start(&[], 200).await;
    let a = app
        .patch(
            &format!("/api/v1/webhooks/{hook}"),
            json!({"url": receiver.url}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let r = send_test(&app, hook, &receiver, 1).await;
    check_signed(&r, &stored, "webhook.test");
}

/// The "Webhook disabled" emails in the app's outbox folder: (to, subject, plain text).
fn disabled_emails(app: &TestApp) -> Vec<(String, String, String)> {
    let Ok(dir) = std::fs::read_dir(app.outbox.path()) else {
        return Vec::new();
    };
    dir.filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .filter_map(|data| {
            let msg = mail_parser::MessageParser::default().parse(&data)?;
            let subject = msg.subject()?.to_string();
            if !subject.starts_with("Webhook disabled") {
                return None;
            }
            let to = msg.to()?.first()?.address()?.to_string();
            Some((to, subject, msg.body_text(0)?.to_string()))
        })
        .collect()
}

each_engine!(
    a_stock_standard_webhooks_library_verifies_a_real_delivery,
    a_410_answer_disables_the_webhook_with_a_reason,
    a_redirect_is_a_failure_and_is_not_followed,
    retry_after_sets_the_next_attempt_of_429_and_5xx,
    a_rotated_secret_signs_beside_the_old_one_for_the_overlap,
    after_the_overlap_only_the_new_secret_signs,
    rotating_needs_an_admin_and_a_live_webhook,
    the_settings_page_rotates_the_secret_and_shows_it_once,
    secrets_made_before_the_migration_keep_their_key_bytes,
    an_endpoint_failing_for_the_set_time_is_disabled_and_its_admins_are_emailed,
);
