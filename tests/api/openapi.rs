use reqwest::Method;
use serde_json::Value;

use crate::helpers::{spawn_app, Engine};

fn committed() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let text = std::fs::read_to_string(path).expect("openapi/openapi.json is committed");
    serde_json::from_str(&text).expect("openapi/openapi.json is JSON")
}

#[tokio::test]
async fn the_served_document_equals_the_committed_one() {
    let app = spawn_app(Engine::Sqlite).await;
    let a = app
        .send(Method::GET, "/api-docs/openapi.json", None, None)
        .await;
    assert_eq!(a.status, 200);
    assert!(
        a.body == committed(),
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json` and commit it"
    );
}

#[test]
fn the_cli_prints_the_same_document() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_closeloop"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        printed == committed(),
        "`closeloop openapi` differs from openapi/openapi.json"
    );
}

#[test]
fn every_operation_is_documented_with_errors_and_security() {
    let doc = committed();
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    let mut ids = std::collections::HashSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let id = op["operationId"].as_str().unwrap_or_default().to_string();
            assert!(
                ids.insert(id.clone()),
                "operationId {id:?} of {method} {path} is not unique"
            );
            let responses = op["responses"].as_object().unwrap();
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
            if path.starts_with("/api/v1/") {
                assert!(op["security"].is_array(), "{method} {path} has no security");
                for code in ["400", "401", "403", "503"] {
                    assert!(
                        responses.contains_key(code),
                        "{method} {path} does not document {code}"
                    );
                }
            }
            if op.get("requestBody").is_some() {
                for code in ["413", "415", "422"] {
                    assert!(
                        responses.contains_key(code),
                        "{method} {path} does not document {code}"
                    );
                }
            }
        }
    }
    assert!(operations >= 15, "only {operations} operations documented");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

#[tokio::test]
async fn swagger_ui_is_served_without_a_cdn() {
    let app = spawn_app(Engine::Sqlite).await;
    let a = app.send(Method::GET, "/docs/", None, None).await;
    assert_eq!(a.status, 200);
    assert!(a.text.contains("swagger"), "{}", a.text);
    assert!(
        !a.text.contains("cdn") && !a.text.contains("unpkg"),
        "{}",
        a.text
    );
    let a = app
        .send(Method::GET, "/docs/swagger-ui-bundle.js", None, None)
        .await;
    assert_eq!(a.status, 200);
    assert!(a.text.len() > 100_000);
    let a = app.send(Method::GET, "/docs", None, None).await;
    assert!(matches!(a.status, 301 | 308), "{}", a.status);
}

#[test]
fn every_reference_resolves() {
    fn walk(v: &Value, refs: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if k == "$ref" {
                        refs.push(x.as_str().unwrap_or_default().to_string());
                    }
                    walk(x, refs);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, refs)),
            _ => {}
        }
    }
    let doc = committed();
    let mut refs = Vec::new();
    walk(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
}
