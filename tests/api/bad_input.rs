//! Malformed requests get a 4xx with the one JSON error shape, on every endpoint with a body.

use reqwest::Method;

use crate::both_engines;
use crate::helpers::TestApp;

const BODY_ENDPOINTS: [(&str, &str); 4] = [
    ("POST", "/api/v1/surveys"),
    ("POST", "/api/v1/contacts"),
    ("POST", "/api/v1/api-keys"),
    ("POST", "/api/v1/webhooks"),
];

async fn malformed_json_is_400(app: TestApp) {
    for (method, path) in BODY_ENDPOINTS {
        for body in [
            &b"{"[..],
            b"{\"kind\": }",
            b"not json",
            b"",
            b"[1,2",
            b"\xff\xfe",
        ] {
            let a = app
                .send_raw(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    path,
                    "application/json",
                    body.to_vec(),
                )
                .await;
            assert_eq!(
                a.status,
                400,
                "{path} {:?}: {}",
                String::from_utf8_lossy(body),
                a.text
            );
            assert_eq!(a.code(), "bad_request");
            assert!(!a.body["error"]["message"].as_str().unwrap().is_empty());
        }
        // Valid JSON that is not an object.
        for body in ["[]", "42", "\"x\"", "null"] {
            let a = app
                .send_raw(Method::POST, path, "application/json", body.into())
                .await;
            assert_eq!(a.status, 400, "{path} {body}: {}", a.text);
            assert_eq!(a.code(), "bad_request", "{path} {body}");
        }
    }
    // A PATCH body that is an array is refused before anything else (serde read `[]` as an
    // empty change and answered 200).
    let a = app
        .send_raw(
            Method::PATCH,
            "/api/v1/followups/fup_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2",
            "application/json",
            "[]".into(),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
}

async fn a_wrong_content_type_is_415(app: TestApp) {
    for (_, path) in BODY_ENDPOINTS {
        for ct in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/xml",
        ] {
            let a = app
                .send_raw(Method::POST, path, ct, br#"{"name":"x"}"#.to_vec())
                .await;
            assert_eq!(a.status, 415, "{path} {ct}: {}", a.text);
            assert_eq!(a.code(), "unsupported_media_type");
        }
        let a = app
            .send_raw(
                Method::POST,
                path,
                "application/json; charset=utf-8",
                b"{}".to_vec(),
            )
            .await;
        assert_ne!(a.status, 415, "a charset parameter is fine");
    }
    let res = app
        .client
        .post(app.url("/api/v1/surveys"))
        .bearer_auth(&app.key)
        .body(r#"{"kind":"nps","name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415, "no content type at all");
}

async fn a_too_large_body_is_413(app: TestApp) {
    let big = format!(
        r#"{{"kind":"nps","name":"{}"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    for (_, path) in BODY_ENDPOINTS {
        let a = app
            .send_raw(
                Method::POST,
                path,
                "application/json",
                big.clone().into_bytes(),
            )
            .await;
        assert_eq!(a.status, 413, "{path}: {}", a.text);
        assert_eq!(a.code(), "payload_too_large");
    }
}

async fn strings_of_any_content_are_stored_as_given(app: TestApp) {
    let name = "Ünïcødé 🚀 <script>alert(1)</script> ' OR 1=1; -- \u{202e}";
    let s = app
        .create_survey(
            serde_json::json!({"kind": "nps", "name": name, "brand": "\"Quotes\" & <tags>"}),
        )
        .await;
    assert_eq!(s["name"], name);
    let got = app
        .get(&format!("/api/v1/surveys/{}", s["id"].as_str().unwrap()))
        .await;
    assert_eq!(got.body["brand"], "\"Quotes\" & <tags>");
}

both_engines!(
    malformed_json_is_400,
    a_wrong_content_type_is_415,
    a_too_large_body_is_413,
    strings_of_any_content_are_stored_as_given,
);
