//! `/metrics`: every metric declared with HELP and TYPE, the latency histogram by route
//! pattern, the cached queue and follow-up gauges, and the Grafana dashboard's queries.

use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{answer, tokens, TestApp};

async fn scrape(app: &TestApp) -> String {
    let a = app.send(reqwest::Method::GET, "/metrics", None, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.text
}

/// The metric name of a sample line (`name{labels} value` or `name value`).
fn sample_name(line: &str) -> Option<&str> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    line.split(['{', ' ']).next()
}

/// The value of the sample line that starts with `series` (name and labels).
fn value_of(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A survey, one detractor answer through the survey page, and some API requests.
async fn some_traffic(app: &TestApp) -> Value {
    let survey = app
        .create_survey(json!({"kind": "nps", "name": "Metrics", "throttle_days": 0}))
        .await;
    let id = survey["id"].as_str().unwrap();
    let a = app.get(&format!("/api/v1/surveys/{id}")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let t = tokens(app, &survey, json!([{"email": "ada@example.com"}])).await;
    answer(app, &t[0], 2, "slow").await;
    survey
}

async fn every_metric_has_help_and_type(app: TestApp) {
    some_traffic(&app).await;
    let text = scrape(&app).await;
    let declared = |prefix: &str, name: &str| {
        text.lines()
            .any(|l| l.strip_prefix(prefix).and_then(|r| r.split(' ').next()) == Some(name))
    };
    let mut samples = 0;
    for line in text.lines() {
        let Some(name) = sample_name(line) else {
            continue;
        };
        samples += 1;
        // A counter's samples end in `_total`, a histogram's in `_bucket`, `_sum`, `_count`.
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .chain([name])
            .find(|f| declared("# TYPE ", f))
            .unwrap_or_else(|| panic!("{name} has no TYPE:\n{text}"));
        assert!(declared("# HELP ", family), "{family} has no HELP:\n{text}");
    }
    assert!(samples > 20, "{text}");
    assert!(
        text.contains(&format!(
            "closeloop_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(text.contains(r#"closeloop_db_pool_connections{pool="read",state="idle"}"#));
}

async fn the_latency_histogram_is_by_route_pattern_and_status_class(app: TestApp) {
    let survey = some_traffic(&app).await;
    let id = survey["id"].as_str().unwrap();
    let text = scrape(&app).await;
    let route = r#"route="/api/v1/surveys/{id}",status_class="2xx""#;
    assert_eq!(
        value_of(
            &text,
            &format!("closeloop_http_request_duration_seconds_count{{{route}}}")
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value_of(
            &text,
            &format!("closeloop_http_request_duration_seconds_bucket{{le=\"+Inf\",{route}}}")
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "closeloop_http_request_duration_seconds_sum{{{route}}}"
        )),
        "{text}"
    );
    // No ids or tokens in labels: only route patterns.
    assert!(!text.contains(id), "{text}");
    assert_eq!(
        value_of(
            &text,
            r#"closeloop_answers_total{kind="nps",category="detractor"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

async fn the_backlog_gauges_are_read_at_most_every_15_seconds(app: TestApp) {
    let survey = some_traffic(&app).await;
    let text = scrape(&app).await;
    assert_eq!(
        value_of(&text, r#"closeloop_followups{status="open"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value_of(&text, r#"closeloop_followups{status="in_progress"}"#),
        Some(0.0)
    );
    assert_eq!(value_of(&text, "closeloop_followups_overdue"), Some(0.0));
    for queue in ["invitations", "emails", "webhooks"] {
        for gauge in [
            "closeloop_queue_waiting",
            "closeloop_queue_due",
            "closeloop_queue_oldest_due_age_seconds",
        ] {
            let series = format!("{gauge}{{queue=\"{queue}\"}}");
            assert!(value_of(&text, &series).is_some(), "{series}:\n{text}");
        }
    }
    // A second detractor: the counter moves at once, the cached gauge does not.
    let t = tokens(&app, &survey, json!([{"email": "bob@example.com"}])).await;
    answer(&app, &t[0], 1, "worse").await;
    let text = scrape(&app).await;
    assert_eq!(
        value_of(
            &text,
            r#"closeloop_answers_total{kind="nps",category="detractor"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        value_of(&text, r#"closeloop_followups{status="open"}"#),
        Some(1.0),
        "the backlog is a snapshot, not read on every scrape:\n{text}"
    );
}

/// The metric names a PromQL expression uses.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("closeloop_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

fn dashboard_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

async fn every_metric_the_grafana_dashboard_queries_exists(app: TestApp) {
    some_traffic(&app).await;
    app.get("/api/v1/surveys").await;
    let text = scrape(&app).await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/closeloop.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");
    let mut names: Vec<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 12, "{names:?}");
    for name in names {
        assert!(
            text.lines().any(|l| sample_name(l) == Some(name.as_str())),
            "the dashboard queries {name}, which /metrics does not have:\n{text}"
        );
    }
}

#[test]
fn metric_names_are_read_out_of_promql() {
    assert_eq!(
        metric_names("sum by (le) (rate(closeloop_a_bucket{x=\"1\"}[5m])) / closeloop_b"),
        ["closeloop_a_bucket", "closeloop_b"]
    );
}

both_engines!(
    every_metric_has_help_and_type,
    the_latency_histogram_is_by_route_pattern_and_status_class,
    the_backlog_gauges_are_read_at_most_every_15_seconds,
    every_metric_the_grafana_dashboard_queries_exists,
);
