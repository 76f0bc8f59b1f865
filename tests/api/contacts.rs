use serde_json::json;

use crate::both_engines;
use crate::helpers::TestApp;

async fn contacts_are_upserted_by_email_and_external_id(app: TestApp) {
    let a = app
        .post("/api/v1/contacts", json!({"email": " Ada@Example.COM ", "name": "Ada", "properties": {"plan": "pro", "value": 1200}}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["id"].as_str().unwrap().to_string();
    assert_eq!(a.body["email"], "ada@example.com");
    assert_eq!(a.body["properties"], json!({"plan": "pro", "value": 1200}));

    // Same email, other case: the same contact, properties merged, a null removes a key.
    let a = app
        .post("/api/v1/contacts", json!({"email": "ADA@example.com", "external_id": "cus_1", "properties": {"plan": null, "segment": "smb"}}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["id"], id.as_str());
    assert_eq!(a.body["name"], "Ada");
    assert_eq!(a.body["external_id"], "cus_1");
    assert_eq!(
        a.body["properties"],
        json!({"segment": "smb", "value": 1200})
    );

    // By external id, the email can change.
    let a = app
        .post(
            "/api/v1/contacts",
            json!({"external_id": "cus_1", "email": "ada@new.example"}),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["id"], id.as_str());
    assert_eq!(a.body["email"], "ada@new.example");

    let a = app.get("/api/v1/contacts?email=ADA@new.example").await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 1);
    let a = app.get("/api/v1/contacts?external_id=cus_1").await;
    assert_eq!(a.body["items"][0]["id"], id.as_str());
    let a = app.get("/api/v1/contacts?email=nobody@example.com").await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 0);
    let a = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(a.status, 200);
}

async fn an_email_owned_by_another_contact_is_a_conflict(app: TestApp) {
    app.post("/api/v1/contacts", json!({"email": "a@example.com"}))
        .await;
    app.post(
        "/api/v1/contacts",
        json!({"external_id": "x1", "email": "b@example.com"}),
    )
    .await;
    let a = app
        .post(
            "/api/v1/contacts",
            json!({"external_id": "x1", "email": "a@example.com"}),
        )
        .await;
    assert_eq!(a.status, 409, "{}", a.text);
    assert_eq!(a.code(), "contact_conflict");
}

async fn concurrent_upserts_of_one_new_contact_make_one_contact(app: TestApp) {
    let mut handles = Vec::new();
    for i in 0..8 {
        let client = app.client.clone();
        let url = app.url("/api/v1/contacts");
        let key = app.key.clone();
        handles.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"email": "race@example.com", "properties": {format!("k{i}"): i}}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for h in handles {
        statuses.push(h.await.unwrap());
    }
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 201),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    let a = app.get("/api/v1/contacts?email=race@example.com").await;
    let items = a.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["properties"].as_object().unwrap().len(),
        8,
        "no update was lost: {}",
        a.text
    );
}

async fn erasing_a_contact_removes_their_personal_data(app: TestApp) {
    let a = app
        .post("/api/v1/contacts", json!({"email": "erase@example.com", "name": "Eve", "external_id": "e1", "properties": {"value": 5}}))
        .await;
    let id = a.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.delete(&format!("/api/v1/contacts/{id}")).await.status,
        204
    );
    assert_eq!(app.get(&format!("/api/v1/contacts/{id}")).await.status, 404);
    assert_eq!(
        app.delete(&format!("/api/v1/contacts/{id}")).await.status,
        404
    );
    let a = app.get("/api/v1/contacts?email=erase@example.com").await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 0);
    // The address is free again: a new contact, not the erased one.
    let a = app
        .post("/api/v1/contacts", json!({"email": "erase@example.com"}))
        .await;
    assert_eq!(a.status, 201);
    assert_ne!(a.body["id"], id.as_str());
    assert_eq!(a.body["name"], serde_json::Value::Null);
    // Nothing personal is left in the stored row.
    let state = app.app_state.clone();
    let row = tokio::task::spawn_blocking(move || {
        let mut conn = state.db.get().unwrap();
        use diesel::prelude::*;
        closeloop::store::schema::contacts::table
            .find(&id)
            .select(closeloop::store::models::ContactRow::as_select())
            .first(&mut conn)
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        (
            row.email,
            row.name,
            row.external_id,
            row.properties.as_str()
        ),
        (None, None, None, "{}")
    );
    assert!(row.erased_at.is_some());
}

async fn bad_contact_input_is_reported_per_field(app: TestApp) {
    let cases = [
        (json!({}), "email"),
        (json!({"name": "x"}), "email"),
        (json!({"email": "not-an-email"}), "email"),
        (
            json!({"email": "a@b.co", "properties": {"value": "lots"}}),
            "properties.value",
        ),
        (
            json!({"email": "a@b.co", "properties": {"value": -3}}),
            "properties.value",
        ),
        (
            json!({"email": "a@b.co", "properties": [1, 2]}),
            "properties",
        ),
        (json!({"email": "a@b.co", "external_id": ""}), "external_id"),
        (json!({"email": "a@b.co", "name": "n".repeat(201)}), "name"),
        (json!({"email": "a@b.co", "phone": "123"}), "phone"),
        (json!({"email": 42}), "email"),
    ];
    for (body, field) in cases {
        let a = app.post("/api/v1/contacts", body.clone()).await;
        assert_eq!(a.status, 422, "{body}: {}", a.text);
        assert!(
            !a.field(field).is_empty(),
            "{body}: expected {field}: {}",
            a.text
        );
    }
    let many: serde_json::Map<String, serde_json::Value> =
        (0..51).map(|i| (format!("k{i}"), json!(i))).collect();
    let a = app
        .post(
            "/api/v1/contacts",
            json!({"email": "a@b.co", "properties": many}),
        )
        .await;
    assert_eq!(a.status, 422);
    assert_eq!(app.get("/api/v1/contacts/con_x").await.status, 404);
    assert_eq!(
        app.get("/api/v1/contacts?cursor=srv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2")
            .await
            .status,
        422
    );
}

async fn contacts_are_found_by_text_and_by_property(app: TestApp) {
    for c in [
        json!({"email": "ada@example.com", "name": "Ada Lovelace", "external_id": "cus_42",
               "properties": {"plan": "Enterprise", "value": 120000, "beta": true}}),
        json!({"email": "bob@other.test", "name": "Bob Babbage", "external_id": "cus_7",
               "properties": {"plan": "starter", "value": 10}}),
        json!({"email": "cleo_x@example.com", "name": "Cleo 100% Real"}),
    ] {
        let a = app.post("/api/v1/contacts", c).await;
        assert_eq!(a.status, 201, "{}", a.text);
    }
    let emails = |a: &crate::helpers::Answer| -> Vec<String> {
        let mut v: Vec<String> = a.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["email"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    for (query, want) in [
        ("q=LOVELACE", vec!["ada@example.com"]),
        (
            "q=example.com",
            vec!["ada@example.com", "cleo_x@example.com"],
        ),
        ("q=cus_", vec!["ada@example.com", "bob@other.test"]),
        ("q=CUS_7", vec!["bob@other.test"]),
        // `%` and `_` are text, not wildcards.
        ("q=100%25", vec!["cleo_x@example.com"]),
        ("q=o_x", vec!["cleo_x@example.com"]),
        ("q=nobody", vec![]),
        ("property=plan:enterprise", vec!["ada@example.com"]),
        ("property=value:10", vec!["bob@other.test"]),
        ("property=beta:true", vec!["ada@example.com"]),
        ("property=plan:ent", vec![]),
        ("q=a&property=plan:starter", vec!["bob@other.test"]),
        ("email=ADA@example.com", vec!["ada@example.com"]),
    ] {
        let a = app.get(&format!("/api/v1/contacts?{query}")).await;
        assert_eq!(a.status, 200, "{query}: {}", a.text);
        assert_eq!(emails(&a), want, "{query}");
    }
    for bad in ["property=plan", "property=pl%20an:x", "property=:x"] {
        let a = app.get(&format!("/api/v1/contacts?{bad}")).await;
        assert_eq!(a.status, 422, "{bad}: {}", a.text);
        assert!(!a.field("property").is_empty(), "{bad}: {}", a.text);
    }
    let long = "x".repeat(201);
    let a = app.get(&format!("/api/v1/contacts?q={long}")).await;
    assert_eq!(a.status, 422, "{}", a.text);
}

both_engines!(
    contacts_are_found_by_text_and_by_property,
    contacts_are_upserted_by_email_and_external_id,
    an_email_owned_by_another_contact_is_a_conflict,
    concurrent_upserts_of_one_new_contact_make_one_contact,
    erasing_a_contact_removes_their_personal_data,
    bad_contact_input_is_reported_per_field,
);
