use reqwest::Method;
use serde_json::json;

use crate::both_engines;
use crate::helpers::{with_db, TestApp};

async fn requests_without_a_valid_key_are_401(app: TestApp) {
    for key in [None, Some("cl_wrong"), Some("")] {
        let a = app.send(Method::GET, "/api/v1/surveys", key, None).await;
        assert_eq!(a.status, 401, "{key:?}: {}", a.text);
        assert_eq!(a.code(), "unauthorized");
        assert_eq!(a.headers["www-authenticate"], "Bearer");
    }
    let res = app
        .client
        .get(app.url("/api/v1/surveys"))
        .header("authorization", format!("Basic {}", app.key))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

async fn a_created_key_works_once_shown_and_stops_when_revoked(app: TestApp) {
    let a = app
        .post("/api/v1/api-keys", json!({"name": "crm", "role": "reader"}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let key = a.body["key"].as_str().unwrap().to_string();
    let id = a.body["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("cl_") && key.len() > 40);
    assert_eq!(a.body["role"], "reader");
    assert_eq!(a.body["key_prefix"], key[..7]);

    assert_eq!(
        app.send(Method::GET, "/api/v1/surveys", Some(&key), None)
            .await
            .status,
        200
    );

    let list = app.get("/api/v1/api-keys").await;
    assert_eq!(list.status, 200);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|k| k.get("key").is_none() && k.get("key_hash").is_none()),
        "{}",
        list.text
    );
    assert_eq!(items[0]["id"], id, "newest first");

    assert_eq!(
        app.delete(&format!("/api/v1/api-keys/{id}")).await.status,
        204
    );
    assert_eq!(
        app.delete(&format!("/api/v1/api-keys/{id}")).await.status,
        204,
        "revoking twice is harmless"
    );
    let a = app
        .send(Method::GET, "/api/v1/surveys", Some(&key), None)
        .await;
    assert_eq!(a.status, 401);
    let list = app.get("/api/v1/api-keys").await;
    assert!(list.body["items"][0]["revoked_at"].is_string());
}

async fn roles_limit_what_a_key_may_do(app: TestApp) {
    let reader = app.key_with_role("reader").await;
    let agent = app.key_with_role("agent").await;
    let survey = json!({"kind": "nps", "name": "x"});
    for key in [&reader, &agent] {
        let a = app
            .send(Method::POST, "/api/v1/surveys", Some(key), Some(&survey))
            .await;
        assert_eq!(a.status, 403, "{}", a.text);
        assert_eq!(a.code(), "forbidden");
        let a = app
            .send(Method::GET, "/api/v1/api-keys", Some(key), None)
            .await;
        assert_eq!(a.status, 403);
        let a = app
            .send(
                Method::POST,
                "/api/v1/contacts",
                Some(key),
                Some(&json!({"email": "a@b.co"})),
            )
            .await;
        assert_eq!(a.status, 403);
        assert_eq!(
            app.send(Method::GET, "/api/v1/surveys", Some(key), None)
                .await
                .status,
            200
        );
        assert_eq!(
            app.send(Method::GET, "/api/v1/contacts", Some(key), None)
                .await
                .status,
            200
        );
    }
}

async fn bad_key_requests_are_rejected_per_field(app: TestApp) {
    let a = app
        .post("/api/v1/api-keys", json!({"name": "x", "role": "root"}))
        .await;
    assert_eq!(a.status, 422);
    assert!(a.field("role")[0].contains("unknown variant"), "{}", a.text);
    let a = app
        .post("/api/v1/api-keys", json!({"name": "   ", "role": "admin"}))
        .await;
    assert_eq!(a.status, 422);
    assert_eq!(a.field("name"), vec!["must not be blank"]);
    let a = app.post("/api/v1/api-keys", json!({"role": "admin"})).await;
    assert_eq!(a.status, 422);
    assert_eq!(a.field("name"), vec!["is required"]);
    let a = app
        .post(
            "/api/v1/api-keys",
            json!({"name": "a".repeat(101), "role": "admin"}),
        )
        .await;
    assert_eq!(a.status, 422);
    assert_eq!(app.delete("/api/v1/api-keys/key_nope").await.status, 404);
    assert_eq!(
        app.delete("/api/v1/api-keys/key_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2")
            .await
            .status,
        404
    );
}

async fn the_last_active_admin_key_cannot_be_revoked(app: TestApp) {
    let mine = app.get("/api/v1/api-keys").await.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a = app.delete(&format!("/api/v1/api-keys/{mine}")).await;
    assert_eq!(a.status, 409, "{}", a.text);
    assert_eq!(a.code(), "last_admin_key");
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("last active admin key"));
    // Still works.
    assert_eq!(app.get("/api/v1/api-keys").await.status, 200);
    // With a second admin key, the first can go; then the second is the last.
    let second = app
        .post(
            "/api/v1/api-keys",
            json!({"name": "second", "role": "admin"}),
        )
        .await;
    assert_eq!(second.status, 201, "{}", second.text);
    let key = second.body["key"].as_str().unwrap();
    let id = second.body["id"].as_str().unwrap();
    // The second key revokes the first (a key never revokes itself).
    let a = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/api-keys/{mine}"),
            Some(key),
            None,
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    let a = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/api-keys/{id}"),
            Some(key),
            None,
        )
        .await;
    assert_eq!(a.status, 409, "{}", a.text);
    assert_eq!(a.code(), "last_admin_key", "{}", a.text);
    // Revoking an already revoked key stays harmless.
    let a = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/api-keys/{mine}"),
            Some(key),
            None,
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
}

/// `last_used_at` of key `id` in the list.
async fn last_used(app: &TestApp, id: &str) -> serde_json::Value {
    let list = app.get("/api/v1/api-keys?limit=100").await;
    assert_eq!(list.status, 200, "{}", list.text);
    list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .expect("the key is listed")["last_used_at"]
        .clone()
}

/// Sets `last_used_at` of key `id` to `seconds` ago.
async fn used_ago(app: &TestApp, id: &str, seconds: i64) -> chrono::NaiveDateTime {
    let id = id.to_string();
    with_db(app, move |conn| {
        use closeloop::store::schema::api_keys;
        use diesel::prelude::*;
        let t = closeloop::domain::now() - chrono::TimeDelta::seconds(seconds);
        diesel::update(api_keys::table.find(id))
            .set(api_keys::last_used_at.eq(Some(t)))
            .execute(conn)
            .unwrap();
        t
    })
    .await
}

async fn last_used_at_is_written_when_a_key_is_used_at_most_once_a_minute(app: TestApp) {
    let created = app
        .post("/api/v1/api-keys", json!({"name": "crm", "role": "reader"}))
        .await;
    let id = created.body["id"].as_str().unwrap().to_string();
    let key = created.body["key"].as_str().unwrap().to_string();
    assert_eq!(created.body["last_used_at"], serde_json::Value::Null);
    assert_eq!(
        last_used(&app, &id).await,
        serde_json::Value::Null,
        "never used"
    );

    let before = chrono::Utc::now() - chrono::TimeDelta::seconds(1);
    let a = app
        .send(Method::GET, "/api/v1/surveys", Some(&key), None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let first = last_used(&app, &id).await;
    let at = chrono::DateTime::parse_from_rfc3339(first.as_str().expect("set after use")).unwrap();
    assert!(at >= before && at <= chrono::Utc::now(), "{first}");

    // Used again within the minute: not rewritten.
    let t = used_ago(&app, &id, 30).await;
    app.send(Method::GET, "/api/v1/surveys", Some(&key), None)
        .await;
    let again = last_used(&app, &id).await;
    let again = chrono::DateTime::parse_from_rfc3339(again.as_str().unwrap()).unwrap();
    assert!(
        (again.naive_utc() - t).num_milliseconds().abs() < 1000,
        "kept at 30 s ago: {again} vs {t}"
    );
    // A minute later: written again.
    used_ago(&app, &id, 61).await;
    app.send(Method::GET, "/api/v1/surveys", Some(&key), None)
        .await;
    let later = last_used(&app, &id).await;
    let later = chrono::DateTime::parse_from_rfc3339(later.as_str().unwrap()).unwrap();
    assert!(
        later >= chrono::Utc::now() - chrono::TimeDelta::seconds(5),
        "rewritten: {later}"
    );
    // A refused request (wrong role) still authenticated the key: it counts as a use.
    used_ago(&app, &id, 120).await;
    let a = app
        .send(
            Method::DELETE,
            &format!("/api/v1/api-keys/{id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(a.status, 403);
    let refused = last_used(&app, &id).await;
    let refused = chrono::DateTime::parse_from_rfc3339(refused.as_str().unwrap()).unwrap();
    assert!(refused >= chrono::Utc::now() - chrono::TimeDelta::seconds(5));
}

both_engines!(
    the_last_active_admin_key_cannot_be_revoked,
    requests_without_a_valid_key_are_401,
    a_created_key_works_once_shown_and_stops_when_revoked,
    roles_limit_what_a_key_may_do,
    bad_key_requests_are_rejected_per_field,
    last_used_at_is_written_when_a_key_is_used_at_most_once_a_minute,
);
