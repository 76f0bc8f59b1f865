//! `/app/settings` (admins only): API keys shown once, last used, revoked; webhooks with their
//! secret shown once, changed, tested against a real receiver and redelivered.

use closeloop::domain::Role;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{eventually, Engine, TestApp};
use crate::webhooks::{check_signed, deliveries, fast_app, subscribe, Receiver};
use crate::{both_engines, each_engine};

/// The value of the read-only input holding a secret shown once.
fn shown_secret(page: &str) -> String {
    let at = page.find("id=\"secret\"").expect("the secret field");
    let rest = &page[at..];
    let v = rest.find("value=\"").expect("a value") + "value=\"".len();
    rest[v..v + rest[v..].find('"').unwrap()].to_string()
}

async fn settings_are_for_admins_only(app: TestApp) {
    let admin = app.sign_in("boss@acme.test", "Bea Boss", Role::Admin).await;
    let agent = app
        .sign_in("agent@acme.test", "Al Agent", Role::Agent)
        .await;
    let (status, page) = app.get_page("/app/settings", &admin.cookie).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("aria-current=\"page\">Settings"));
    let (_, inbox) = app.get_page("/app/followups", &agent.cookie).await;
    assert!(
        !inbox.contains("href=\"/app/settings\""),
        "no Settings link for agents"
    );
    let (_, inbox) = app.get_page("/app/followups", &admin.cookie).await;
    assert!(inbox.contains("href=\"/app/settings\""));
    let (status, _) = app.get_page("/app/settings", &agent.cookie).await;
    assert_eq!(status, 403);
    let hook = subscribe(&app, "https://a.example.com/h", &["response.created"])
        .await
        .0;
    for (path, form) in [
        (
            "/app/settings/keys".to_string(),
            vec![("name", "x"), ("role", "admin")],
        ),
        (
            "/app/settings/webhooks".to_string(),
            vec![
                ("url", "https://x.example.com"),
                ("events", "response.created"),
            ],
        ),
        (
            format!("/app/settings/webhooks/{hook}"),
            vec![
                ("url", "https://x.example.com"),
                ("events", "response.created"),
            ],
        ),
        (format!("/app/settings/webhooks/{hook}/test"), vec![]),
    ] {
        let (status, _, _) = app.post_as(&agent, &path, &form).await;
        assert_eq!(status, 403, "{path}");
        let mut bad = vec![("csrf_token", "wrong")];
        bad.extend_from_slice(&form);
        let res = app.post_form(&path, Some(&admin.cookie), &bad).await;
        assert_eq!(res.status(), 403, "{path} without the CSRF token");
    }
    let (status, _) = app
        .get_page(&format!("/app/settings/webhooks/{hook}"), &agent.cookie)
        .await;
    assert_eq!(status, 403);
    let keys = app.get("/api/v1/api-keys").await;
    assert_eq!(
        keys.body["items"].as_array().unwrap().len(),
        1,
        "no key was made"
    );
}

async fn a_key_is_shown_once_works_shows_its_last_use_and_is_revoked(app: TestApp) {
    let admin = app.sign_in("boss@acme.test", "Bea Boss", Role::Admin).await;
    let (status, _, page) = app
        .post_as(
            &admin,
            "/app/settings/keys",
            &[("name", "CRM sync"), ("role", "reader")],
        )
        .await;
    assert_eq!(status, 201, "{page}");
    let key = shown_secret(&page);
    assert!(key.starts_with("cl_"), "{key}");
    assert!(page.contains("data-copy=\"secret\""), "a copy button");
    assert!(page.contains("shown only this once"));

    let (_, settings) = app.get_page("/app/settings", &admin.cookie).await;
    assert!(settings.contains("CRM sync"));
    assert!(
        settings.contains(&format!("{}…", &key[..7])),
        "the prefix is listed"
    );
    assert!(!settings.contains(&key), "the key is never shown again");
    let row = |page: &str| -> String {
        let at = page
            .find("<td class=\"strong\">CRM sync")
            .expect("the key's row");
        page[at..at + page[at..].find("</tr>").unwrap()].to_string()
    };
    assert!(row(&settings).contains("never"), "{}", row(&settings));

    let a = app
        .send(Method::GET, "/api/v1/surveys", Some(&key), None)
        .await;
    assert_eq!(a.status, 200, "the key works: {}", a.text);
    let (_, settings) = app.get_page("/app/settings", &admin.cookie).await;
    assert!(row(&settings).contains("just now"), "{}", row(&settings));
    assert!(!row(&settings).contains("never"));

    let list = app.get("/api/v1/api-keys").await;
    let id = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "CRM sync")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let confirm = format!("/app/settings/keys/{id}/revoke");
    let (status, page) = app.get_page(&confirm, &admin.cookie).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Revoke the key “CRM sync”?"));
    let (status, to, _) = app.post_as(&admin, &confirm, &[]).await;
    assert_eq!(status, 303);
    let (_, settings) = app.get_page(&to, &admin.cookie).await;
    assert!(settings.contains("is revoked"));
    assert!(
        row(&settings).contains("revoked <time"),
        "{}",
        row(&settings)
    );
    let a = app
        .send(Method::GET, "/api/v1/surveys", Some(&key), None)
        .await;
    assert_eq!(a.status, 401, "a revoked key stops working");

    // Refused input: the form again, with a message, and no key.
    let (status, _, page) = app
        .post_as(
            &admin,
            "/app/settings/keys",
            &[("name", "  "), ("role", "reader")],
        )
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("Give the key a name"));
    let (status, _, page) = app
        .post_as(
            &admin,
            "/app/settings/keys",
            &[("name", "x"), ("role", "owner")],
        )
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("Choose a role"));
    let (status, _) = app
        .get_page(
            "/app/settings/keys/key_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2/revoke",
            &admin.cookie,
        )
        .await;
    assert_eq!(status, 404);
}

async fn a_webhook_shows_its_secret_once_and_its_events_change(app: TestApp) {
    let admin = app.sign_in("boss@acme.test", "Bea Boss", Role::Admin).await;
    let (status, _, page) = app
        .post_as(
            &admin,
            "/app/settings/webhooks",
            &[
                ("url", "https://crm.example.com/hooks"),
                ("events", "response.created"),
                ("events", "followup.created"),
            ],
        )
        .await;
    assert_eq!(status, 201, "{page}");
    let secret = shown_secret(&page);
    assert!(secret.starts_with("whsec_"), "{secret}");
    let list = app.get("/api/v1/webhooks").await;
    let hook = &list.body["items"][0];
    assert_eq!(hook["url"], "https://crm.example.com/hooks");
    assert_eq!(
        hook["events"],
        json!(["response.created", "followup.created"])
    );
    let id = hook["id"].as_str().unwrap().to_string();
    let path = format!("/app/settings/webhooks/{id}");
    let (status, page) = app.get_page(&path, &admin.cookie).await;
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains(&secret), "the secret is never shown again");
    let (_, settings) = app.get_page("/app/settings", &admin.cookie).await;
    assert!(!settings.contains(&secret));
    assert!(settings.contains("https://crm.example.com/hooks"));

    let (status, to, _) = app
        .post_as(
            &admin,
            &path,
            &[
                ("url", "https://crm.example.com/v2"),
                ("events", "followup.updated"),
                ("active", "true"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let got = app.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(got.body["events"], json!(["followup.updated"]));
    assert_eq!(got.body["url"], "https://crm.example.com/v2");
    assert_eq!(got.body["active"], true);
    let (_, page) = app.get_page(&to, &admin.cookie).await;
    assert!(page.contains("Saved."));
    // Unticking "active" pauses it.
    app.post_as(
        &admin,
        &path,
        &[
            ("url", "https://crm.example.com/v2"),
            ("events", "followup.updated"),
        ],
    )
    .await;
    assert_eq!(
        app.get(&format!("/api/v1/webhooks/{id}")).await.body["active"],
        false
    );

    // Refused input: the form again, with the message; nothing changes.
    for (form, says) in [
        (
            vec![("url", "https://crm.example.com/v3")],
            "at least one event",
        ),
        (
            vec![
                ("url", "ftp://x.example.com"),
                ("events", "followup.updated"),
            ],
            "The URL must be",
        ),
        (
            vec![("url", "https://x.example.com"), ("events", "webhook.test")],
            "Choose events from the list",
        ),
    ] {
        let (status, _, page) = app.post_as(&admin, &path, &form).await;
        assert_eq!(status, 422, "{form:?}");
        assert!(page.contains(says), "{says}:\n{page}");
        let (status, _, page) = app.post_as(&admin, "/app/settings/webhooks", &form).await;
        assert_eq!(status, 422, "{form:?}");
        assert!(page.contains(says), "{says}:\n{page}");
    }
    assert_eq!(
        app.get(&format!("/api/v1/webhooks/{id}")).await.body["url"],
        "https://crm.example.com/v2"
    );
    assert_eq!(
        app.get("/api/v1/webhooks").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (status, _) = app
        .get_page(
            "/app/settings/webhooks/whk_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2",
            &admin.cookie,
        )
        .await;
    assert_eq!(status, 404);
}

async fn a_test_event_from_the_page_reaches_the_receiver_and_is_redelivered(engine: Engine) {
    let app = fast_app(engine, &[]).await;
    let receiver = Receiver::start(&[], 200).await;
    let (id, secret) = subscribe(&app, &receiver.url, &["followup.created"]).await;
    let admin = app.sign_in("boss@acme.test", "Bea Boss", Role::Admin).await;
    let path = format!("/app/settings/webhooks/{id}");
    let (status, to, _) = app.post_as(&admin, &format!("{path}/test"), &[]).await;
    assert_eq!(status, 303);
    assert!(to.starts_with(&path), "{to}");
    let got = receiver.wait_for(1, 10).await;
    check_signed(&got[0], &secret, "webhook.test");
    let delivery = got[0].header("webhook-id").to_string();
    eventually(10, "the delivery is delivered", || async {
        deliveries(&app, &id)
            .await
            .into_iter()
            .find(|d| d["status"] == "delivered")
    })
    .await;
    let (_, page) = app.get_page(&path, &admin.cookie).await;
    for s in [
        "webhook.test",
        "delivered",
        "HTTP 200",
        &delivery,
        "Redeliver",
    ] {
        assert!(page.contains(s), "{s} missing:\n{page}");
    }

    let (status, _, _) = app
        .post_as(
            &admin,
            &format!("{path}/deliveries/{delivery}/redeliver"),
            &[],
        )
        .await;
    assert_eq!(status, 303);
    let got = receiver.wait_for(2, 10).await;
    assert_eq!(got[1].header("webhook-id"), delivery);
    let (status, _, page) = app
        .post_as(
            &admin,
            &format!("{path}/deliveries/dlv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2/redeliver"),
            &[],
        )
        .await;
    assert_eq!(status, 404, "{page}");
}

both_engines!(
    settings_are_for_admins_only,
    a_key_is_shown_once_works_shows_its_last_use_and_is_revoked,
    a_webhook_shows_its_secret_once_and_its_events_change,
);
each_engine!(a_test_event_from_the_page_reaches_the_receiver_and_is_redelivered);
