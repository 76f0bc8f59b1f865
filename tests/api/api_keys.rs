use reqwest::Method;
use serde_json::json;

use crate::both_engines;
use crate::helpers::TestApp;

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

both_engines!(
    the_last_active_admin_key_cannot_be_revoked,
    requests_without_a_valid_key_are_401,
    a_created_key_works_once_shown_and_stops_when_revoked,
    roles_limit_what_a_key_may_do,
    bad_key_requests_are_rejected_per_field,
);
