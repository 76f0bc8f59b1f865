use serde_json::json;

use crate::both_engines;
use crate::helpers::TestApp;

async fn a_survey_is_created_with_defaults(app: TestApp) {
    let s = app
        .create_survey(json!({"kind": "nps", "name": "  Quarterly NPS "}))
        .await;
    assert!(s["id"].as_str().unwrap().starts_with("srv_"));
    assert_eq!(s["name"], "Quarterly NPS");
    assert_eq!(s["kind"], "nps");
    assert_eq!(s["status"], "active");
    assert_eq!(s["locale"], "en");
    assert_eq!(s["throttle_days"], 30);
    assert_eq!(s["edit_window_hours"], 168);
    assert_eq!(
        s["question"],
        "How likely are you to recommend {brand} to a friend or colleague?"
    );
    assert_eq!(
        s["follow_up_question"],
        "What is the main reason for your score?"
    );
    assert!(s["public_url"].is_null());
    assert!(s["created_at"].as_str().unwrap().ends_with('Z'));

    let got = app
        .get(&format!("/api/v1/surveys/{}", s["id"].as_str().unwrap()))
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, s);
}

async fn a_csat_survey_in_german_gets_german_defaults_and_a_public_link(app: TestApp) {
    let s = app
        .create_survey(json!({"kind": "csat", "name": "Support", "locale": "de", "public_link": true, "topic": "Ihrer Anfrage", "brand_color": "#1F6FEB"}))
        .await;
    assert_eq!(s["question"], "Wie zufrieden waren Sie mit {topic}?");
    assert_eq!(s["brand_color"], "#1f6feb");
    let url = s["public_url"].as_str().unwrap();
    assert!(
        url.starts_with("http://localhost:8080/l/")
            && url.len() > "http://localhost:8080/l/".len() + 8,
        "{url}"
    );
}

async fn surveys_are_listed_newest_first_in_stable_pages(app: TestApp) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let kind = if i % 2 == 0 { "nps" } else { "csat" };
        ids.push(
            app.create_survey(json!({"kind": kind, "name": format!("s{i}")}))
                .await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/surveys?limit=2&cursor={c}"),
            None => "/api/v1/surveys?limit=2".to_string(),
        };
        let a = app.get(&path).await;
        assert_eq!(a.status, 200, "{}", a.text);
        for item in a.body["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match a.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let a = app.get("/api/v1/surveys?kind=csat").await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 2);
    let a = app.get("/api/v1/surveys?status=archived").await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 0);
}

async fn a_survey_is_updated_and_fields_can_be_cleared(app: TestApp) {
    let s = app.create_survey(json!({"kind": "nps", "name": "a", "brand": "Acme", "question": "Would you recommend {brand}?"})).await;
    let id = s["id"].as_str().unwrap();
    let a = app
        .patch(&format!("/api/v1/surveys/{id}"), json!({"name": "b", "status": "paused", "question": null, "public_link": true, "throttle_days": 7}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["name"], "b");
    assert_eq!(a.body["status"], "paused");
    assert_eq!(a.body["brand"], "Acme", "absent fields stay");
    assert_eq!(a.body["throttle_days"], 7);
    assert_eq!(
        a.body["question"],
        "How likely are you to recommend {brand} to a friend or colleague?"
    );
    let url = a.body["public_url"].as_str().unwrap().to_string();
    let a = app
        .patch(
            &format!("/api/v1/surveys/{id}"),
            json!({"public_link": true}),
        )
        .await;
    assert_eq!(a.body["public_url"], url.as_str(), "the link stays stable");
    let a = app
        .patch(
            &format!("/api/v1/surveys/{id}"),
            json!({"public_link": false}),
        )
        .await;
    assert!(a.body["public_url"].is_null());
}

async fn an_archived_survey_cannot_be_changed(app: TestApp) {
    let s = app.nps_survey().await;
    let id = s["id"].as_str().unwrap();
    let a = app
        .post(&format!("/api/v1/surveys/{id}/archive"), json!({}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["status"], "archived");
    assert!(a.body["archived_at"].is_string());
    let again = app
        .post(&format!("/api/v1/surveys/{id}/archive"), json!({}))
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["archived_at"], a.body["archived_at"]);
    let a = app
        .patch(&format!("/api/v1/surveys/{id}"), json!({"name": "x"}))
        .await;
    assert_eq!(a.status, 409);
    assert_eq!(a.code(), "survey_archived");
    let a = app
        .patch(
            &format!("/api/v1/surveys/{id}"),
            json!({"status": "archived"}),
        )
        .await;
    assert_eq!(a.status, 422);
}

async fn bad_survey_input_is_reported_per_field(app: TestApp) {
    let cases = [
        (json!({"kind": "stars", "name": "x"}), "kind"),
        (json!({"name": "x"}), "kind"),
        (json!({"kind": "nps"}), "name"),
        (json!({"kind": "nps", "name": ""}), "name"),
        (json!({"kind": "nps", "name": "  "}), "name"),
        (json!({"kind": "nps", "name": "x".repeat(201)}), "name"),
        (json!({"kind": "nps", "name": 5}), "name"),
        (
            json!({"kind": "nps", "name": "x", "question": "Rate {product}"}),
            "question",
        ),
        (
            json!({"kind": "nps", "name": "x", "brand_color": "red"}),
            "brand_color",
        ),
        (
            json!({"kind": "nps", "name": "x", "locale": "es"}),
            "locale",
        ),
        (
            json!({"kind": "nps", "name": "x", "throttle_days": -1}),
            "throttle_days",
        ),
        (
            json!({"kind": "nps", "name": "x", "throttle_days": 366}),
            "throttle_days",
        ),
        (
            json!({"kind": "nps", "name": "x", "reminder_after_days": 0}),
            "reminder_after_days",
        ),
        (
            json!({"kind": "nps", "name": "x", "edit_window_hours": 1e12}),
            "edit_window_hours",
        ),
        (
            json!({"kind": "nps", "name": "x", "public_link": "yes"}),
            "public_link",
        ),
        (
            json!({"kind": "nps", "name": "x", "colour": "#fff"}),
            "colour",
        ),
    ];
    for (body, field) in cases {
        let a = app.post("/api/v1/surveys", body.clone()).await;
        assert_eq!(a.status, 422, "{body}: {}", a.text);
        assert_eq!(a.code(), "validation_failed");
        assert!(
            !a.field(field).is_empty(),
            "{body}: expected a message for {field}: {}",
            a.text
        );
    }
    let id = app.nps_survey().await["id"].as_str().unwrap().to_string();
    let a = app
        .patch(&format!("/api/v1/surveys/{id}"), json!({"name": null}))
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    let a = app
        .patch(
            &format!("/api/v1/surveys/{id}"),
            json!({"brand_color": "#12345"}),
        )
        .await;
    assert_eq!(a.status, 422);
    assert_eq!(a.field("brand_color").len(), 1);
    assert_eq!(app.get("/api/v1/surveys/srv_unknown").await.status, 404);
    assert_eq!(
        app.get("/api/v1/surveys/srv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2")
            .await
            .status,
        404
    );
    assert_eq!(
        app.patch("/api/v1/surveys/srv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2", json!({}))
            .await
            .status,
        404
    );
    assert_eq!(
        app.post(
            "/api/v1/surveys/srv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2/archive",
            json!({})
        )
        .await
        .status,
        404
    );
    for q in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "cursor=nope",
        "status=gone",
        "kind=x",
    ] {
        let a = app.get(&format!("/api/v1/surveys?{q}")).await;
        assert!(a.status == 400 || a.status == 422, "{q}: {}", a.text);
        assert!(!a.code().is_empty());
    }
}

both_engines!(
    a_survey_is_created_with_defaults,
    a_csat_survey_in_german_gets_german_defaults_and_a_public_link,
    surveys_are_listed_newest_first_in_stable_pages,
    a_survey_is_updated_and_fields_can_be_cleared,
    an_archived_survey_cannot_be_changed,
    bad_survey_input_is_reported_per_field,
);
