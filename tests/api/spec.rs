//! The API as the OpenAPI document states it: query parameters (dates, offsets, errors that
//! name the parameter), 405 with `Allow`, nullable fields, answers that name a customer, and
//! the CSV export's columns.

use reqwest::Method;
use serde_json::json;

use crate::both_engines;
use crate::helpers::TestApp;

async fn csv_rows(app: &TestApp, path: &str) -> (Vec<String>, Vec<csv::StringRecord>) {
    let res = app
        .client
        .get(app.url(path))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let bytes = res.bytes().await.unwrap();
    let mut reader = csv::Reader::from_reader(&bytes[3..]);
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    (header, reader.records().map(|r| r.unwrap()).collect())
}

async fn report_ranges_accept_dates_offsets_and_an_unencoded_plus(app: TestApp) {
    let s = app.nps_survey().await;
    let id = s["id"].as_str().unwrap();
    let report = |q: &str| {
        let path = format!("/api/v1/surveys/{id}/report?{q}");
        let app = &app;
        async move { app.get(&path).await }
    };
    let a = report("from=2026-11-01&to=2026-11-23").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["from"], "2026-11-01T00:00:00Z");
    assert_eq!(a.body["to"], "2026-11-23T00:00:00Z");
    // `+01:00` not percent-encoded arrives as a space.
    let a = report("from=2026-11-01T01:00:00+01:00&to=2026-11-23T00:00:00%2B00:00").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["from"], "2026-11-01T00:00:00Z");
    let a = report("from=2026-11").await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(a.field("from")[0].contains("2026-11-23"), "{}", a.text);
    assert!(a.field("from")[0].contains("RFC 3339"), "{}", a.text);
    // Years before 1970 are refused: the previous period would reach negative years.
    let a = report("from=0001-01-01&to=0010-01-24").await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(a.field("from")[0].contains("1970"), "{}", a.text);
    let a = report("interval=year").await;
    assert_eq!(a.status, 422);
    assert!(a.field("interval")[0].contains("day"), "{}", a.text);
    let a = app.get("/api/v1/responses?since=yesterday").await;
    assert_eq!(a.status, 422);
    assert!(a.field("since")[0].contains("RFC 3339"), "{}", a.text);
    let a = app.get("/api/v1/responses?limit=ten").await;
    assert_eq!(a.status, 422);
    assert_eq!(a.field("limit"), ["must be an integer"]);
    let a = app.get("/api/v1/surveys?kind=ces").await;
    assert_eq!(a.status, 422);
    assert!(a.field("kind")[0].contains("nps"), "{}", a.text);
    let a = app.get("/api/v1/followups?overdue=yes").await;
    assert_eq!(a.field("overdue"), ["must be true or false"]);
    let a = app.get("/api/v1/invitations?survey_id=nope").await;
    assert_eq!(a.status, 422);
    assert!(a.field("survey_id")[0].contains("srv_"), "{}", a.text);
    let a = app.get("/api/v1/contacts?email=a%00b").await;
    assert_eq!(a.status, 422, "NUL is refused on both engines");
    assert_eq!(a.field("email"), ["must not contain NUL characters"]);
}

async fn one_answer_gets_an_honest_interval(app: TestApp) {
    let s = app.nps_survey().await;
    let a = app
        .post(
            "/api/v1/responses",
            json!({"survey_id": s["id"], "score": 0}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let r = app
        .get(&format!(
            "/api/v1/surveys/{}/report",
            s["id"].as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(r["nps"], -100.0);
    let (lo, hi) = (
        r["nps_ci95"][0].as_f64().unwrap(),
        r["nps_ci95"][1].as_f64().unwrap(),
    );
    assert_eq!(lo, -100.0);
    assert!(hi > 50.0, "one answer says little: {}", r["nps_ci95"]);
    assert_eq!(r["counts"][0], json!({"score": 0, "n": 1}));
}

async fn methods_a_route_does_not_serve_get_405_with_allow(app: TestApp) {
    let a = app
        .send(
            Method::from_bytes(b"TRACE").unwrap(),
            "/api/v1/surveys",
            None,
            None,
        )
        .await;
    assert_eq!(a.status, 405);
    assert_eq!(a.code(), "method_not_allowed");
    let a = app
        .send(Method::DELETE, "/api/v1/surveys", None, None)
        .await;
    assert_eq!(a.status, 405);
    let res = app
        .client
        .put(app.url("/api/v1/surveys/srv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, PATCH, OPTIONS");
    let res = app
        .client
        .request(Method::OPTIONS, app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["allow"], "GET, OPTIONS");
    let a = app
        .send(Method::POST, "/api/v1/no-such-thing", None, None)
        .await;
    assert_eq!(a.status, 404, "unknown paths stay 404");
}

async fn patch_fields_are_nullable_exactly_where_the_document_says(app: TestApp) {
    let doc = app
        .send(Method::GET, "/api-docs/openapi.json", None, None)
        .await
        .body;
    let s = app.nps_survey().await;
    let path = format!("/api/v1/surveys/{}", s["id"].as_str().unwrap());
    let fields = doc["components"]["schemas"]["UpdateSurvey"]["properties"]
        .as_object()
        .unwrap()
        .clone();
    for (name, schema) in fields {
        let nullable = schema["type"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("null")));
        let a = app.patch(&path, json!({ name.clone(): null })).await;
        if nullable {
            assert_eq!(a.status, 200, "{name}: null is documented: {}", a.text);
        } else {
            assert_eq!(a.status, 422, "{name}: null is not documented: {}", a.text);
        }
    }
    let a = app.patch(&path, json!({"edit_window_hours": 48.0})).await;
    assert_eq!(
        a.status, 200,
        "JSON Schema counts 48.0 as an integer: {}",
        a.text
    );
    assert_eq!(a.body["edit_window_hours"], 48);
    let a = app.patch(&path, json!({"status": "archived"})).await;
    assert_eq!(a.status, 422);
}

async fn a_key_cannot_revoke_itself(app: TestApp) {
    let keys = app.get("/api/v1/api-keys").await.body;
    let own = keys["items"][0]["id"].as_str().unwrap().to_string();
    // Another admin key exists, so this is not the last one: the refusal is about itself.
    let other = app
        .post(
            "/api/v1/api-keys",
            json!({"name": "other", "role": "admin"}),
        )
        .await;
    assert_eq!(other.status, 201, "{}", other.text);
    let a = app.delete(&format!("/api/v1/api-keys/{own}")).await;
    assert_eq!(a.status, 409);
    assert_eq!(a.code(), "own_key");
    assert_eq!(app.get("/api/v1/api-keys").await.status, 200);
}

async fn a_captured_answer_can_name_its_customer(app: TestApp) {
    let s = app.nps_survey().await;
    let a = app
        .post(
            "/api/v1/responses",
            json!({"survey_id": s["id"], "score": 2, "comment": "slow",
                   "contact": {"external_id": "cus_9", "email": "Ada@Example.com", "name": "Ada", "properties": {"plan": "pro"}}}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let contact_id = a.body["contact_id"].as_str().unwrap().to_string();
    assert!(contact_id.starts_with("con_"));
    let c = app
        .get(&format!("/api/v1/contacts/{contact_id}"))
        .await
        .body;
    assert_eq!(
        (
            c["email"].as_str(),
            c["name"].as_str(),
            c["external_id"].as_str()
        ),
        (Some("ada@example.com"), Some("Ada"), Some("cus_9"))
    );
    assert!(c["last_responded_at"].is_string());
    // The follow-up belongs to the customer and shows their name.
    let tasks = app
        .get(&format!(
            "/api/v1/followups?survey_id={}",
            s["id"].as_str().unwrap()
        ))
        .await
        .body;
    let task = &tasks["items"][0];
    assert_eq!(task["contact_id"], contact_id.as_str());
    let detail = app
        .get(&format!(
            "/api/v1/followups/{}",
            task["id"].as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(detail["contact"]["name"], "Ada");
    // The same customer again: upserted, not duplicated.
    let a = app
        .post(
            "/api/v1/responses",
            json!({"survey_id": s["id"], "score": 9, "contact": {"external_id": "cus_9"}}),
        )
        .await;
    assert_eq!(a.status, 201);
    assert_eq!(a.body["contact_id"], contact_id.as_str());
    let listed = app.get("/api/v1/contacts?external_id=cus_9").await.body;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    // A contact is checked like POST /contacts, and goes with survey_id only.
    let a = app
        .post(
            "/api/v1/responses",
            json!({"survey_id": s["id"], "score": 9, "contact": {"name": "no id"}}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(!a.field("contact.email").is_empty(), "{}", a.text);
    let a = app
        .post(
            "/api/v1/responses",
            json!({"invitation_token": "x".repeat(43), "score": 9, "contact": {"external_id": "cus_9"}}),
        )
        .await;
    assert_eq!(a.status, 422);
    assert!(!a.field("contact").is_empty(), "{}", a.text);
}

async fn the_csv_export_has_properties_task_state_and_spreadsheet_times(app: TestApp) {
    let s = app.nps_survey().await;
    let sid = s["id"].as_str().unwrap();
    for (score, contact) in [
        (
            2,
            json!({"email": "a@x.co", "properties": {"plan": "pro", "value": 1200}}),
        ),
        (
            10,
            json!({"email": "b@x.co", "properties": {"region": "=EU"}}),
        ),
    ] {
        let a = app
            .post(
                "/api/v1/responses",
                json!({"survey_id": sid, "score": score, "contact": contact}),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
    }
    let (_, rows) = csv_rows(&app, &format!("/api/v1/surveys/{sid}/responses.csv")).await;
    assert_eq!(rows.len(), 2);
    let tasks = app
        .get(&format!("/api/v1/followups?survey_id={sid}"))
        .await
        .body;
    let task = tasks["items"][0]["id"].as_str().unwrap().to_string();
    let a = app
        .patch(
            &format!("/api/v1/followups/{task}"),
            json!({"status": "in_progress", "assignee": "lea@acme.test"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let (header, rows) = csv_rows(&app, &format!("/api/v1/surveys/{sid}/responses.csv")).await;
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
    };
    let props: Vec<&String> = header
        .iter()
        .filter(|h| h.starts_with("property."))
        .collect();
    assert_eq!(
        props,
        ["property.plan", "property.region", "property.value"]
    );
    let spreadsheet_time = |v: &str| {
        chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S").is_ok() && v.len() == 19
    };
    assert!(
        spreadsheet_time(&rows[0][col("created_at")]),
        "{:?}",
        &rows[0]
    );
    assert!(spreadsheet_time(&rows[0][col("updated_at")]));
    assert_eq!(&rows[0][col("property.plan")], "pro");
    assert_eq!(&rows[0][col("property.value")], "1200");
    assert_eq!(&rows[0][col("property.region")], "");
    assert_eq!(&rows[0][col("followup_status")], "in_progress");
    assert_eq!(&rows[0][col("followup_assignee")], "lea@acme.test");
    assert_eq!(&rows[1][col("property.region")], "'=EU", "neutralised");
    assert_eq!(
        &rows[1][col("followup_status")],
        "",
        "a promoter has no task"
    );
}

async fn nul_in_request_text_is_refused_on_both_engines(app: TestApp) {
    let a = app
        .post(
            "/api/v1/contacts",
            json!({"email": "n@example.com", "name": "a\u{0}b"}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert_eq!(a.field("name"), ["must not contain NUL characters"]);
    let s = app.nps_survey().await;
    let a = app
        .post(
            &format!("/api/v1/surveys/{}/invitations", s["id"].as_str().unwrap()),
            json!({"channel": "link", "contacts": [{"email": "m@example.com", "external_id": "x\u{0}"}]}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert_eq!(a.field("contacts[0].external_id").len(), 1, "{}", a.text);
    // Also inside free-form properties: PostgreSQL cannot cast JSON text holding `\u0000` to
    // jsonb, which the segment report does (it answered 500 there).
    let a = app
        .post(
            "/api/v1/contacts",
            json!({"email": "n@example.com", "properties": {"note": "a\u{0}b"}}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert_eq!(a.field("properties.note").len(), 1, "{}", a.text);
    let a = app
        .post(
            "/api/v1/contacts",
            json!({"email": "n@example.com", "properties": {"deep": [{"x": "a\u{0}b"}]}}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
}

async fn webhook_urls_have_the_documented_shape(app: TestApp) {
    for (url, ok) in [
        ("http://127.0.0.1:45123/in", true),
        ("https://crm.example.com/hooks?x=1#f", true),
        ("https://crm.example.com:65535", true),
        ("https://crm.example.com:65536", false),
        ("https://crm.example.com/a b", false),
        ("https://*.example.com/", false),
        ("ftp://example.com/", false),
        ("https://1.2.3.400/", false),
    ] {
        let a = app
            .post(
                "/api/v1/webhooks",
                json!({"url": url, "events": ["response.created"]}),
            )
            .await;
        assert_eq!(a.status == 201, ok, "{url}: {}", a.text);
    }
}

both_engines!(
    nul_in_request_text_is_refused_on_both_engines,
    webhook_urls_have_the_documented_shape,
    report_ranges_accept_dates_offsets_and_an_unencoded_plus,
    one_answer_gets_an_honest_interval,
    methods_a_route_does_not_serve_get_405_with_allow,
    patch_fields_are_nullable_exactly_where_the_document_says,
    a_key_cannot_revoke_itself,
    a_captured_answer_can_name_its_customer,
    the_csv_export_has_properties_task_state_and_spreadsheet_times,
);
