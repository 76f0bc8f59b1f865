use crate::both_engines;
use crate::helpers::TestApp;

async fn health_and_readiness_answer(app: TestApp) {
    let a = app.send(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["status"], "ok");
    let a = app.send(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let engine = match app.engine {
        crate::helpers::Engine::Sqlite => "sqlite",
        crate::helpers::Engine::Postgres => "postgres",
    };
    assert_eq!(a.body["database"], engine);
}

async fn every_response_carries_a_request_id(app: TestApp) {
    let a = app.send(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(a.headers["x-request-id"].to_str().unwrap().len(), 26);
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-123");
}

async fn metrics_count_requests_by_route(app: TestApp) {
    app.get("/api/v1/surveys").await;
    let a = app.send(reqwest::Method::GET, "/metrics", None, None).await;
    assert_eq!(a.status, 200);
    assert!(
        a.text.contains(
            r#"closeloop_http_requests_total{method="GET",route="/api/v1/surveys",status="200"} 1"#
        ),
        "{}",
        a.text
    );
}

async fn unknown_urls_get_a_404_in_the_right_format(app: TestApp) {
    let a = app.get("/api/v1/nothing-here").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.code(), "not_found");
    let a = app
        .send(reqwest::Method::GET, "/nothing-here", None, None)
        .await;
    assert_eq!(a.status, 404);
    assert!(a.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(a.text.contains("Page not found"));
}

/// `GET /` is a small landing page for whoever runs the service, not a 404.
async fn the_root_url_is_a_landing_page_that_points_at_the_docs(app: TestApp) {
    let a = app.send(reqwest::Method::GET, "/", None, None).await;
    assert_eq!(a.status, 200);
    assert!(a.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(a.text.contains("href=\"/docs/\""), "{}", a.text);
    assert!(a.text.contains("href=\"/api-docs/openapi.json\""));
    assert!(a.headers.contains_key("content-security-policy"));
}

both_engines!(
    the_root_url_is_a_landing_page_that_points_at_the_docs,
    health_and_readiness_answer,
    every_response_carries_a_request_id,
    metrics_count_requests_by_route,
    unknown_urls_get_a_404_in_the_right_format,
);

/// With the database gone, readiness says 503 while liveness still says 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_database_is_unreachable() {
    let Ok(admin_url) = std::env::var("TEST_POSTGRES_URL") else {
        eprintln!("TEST_POSTGRES_URL is not set: not run");
        return;
    };
    if admin_url.is_empty() {
        return;
    }
    let app = crate::helpers::spawn_app(crate::helpers::Engine::Postgres).await;
    assert_eq!(
        app.send(reqwest::Method::GET, "/readyz", None, None)
            .await
            .status,
        200
    );
    // Drop the database under the running server (FORCE ends its connections).
    let name = app.db.url.rsplit('/').next().unwrap().to_string();
    tokio::task::spawn_blocking(move || {
        use diesel::{Connection, RunQueryDsl};
        let mut conn = diesel::PgConnection::establish(&admin_url).unwrap();
        diesel::sql_query(format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut conn)
            .unwrap();
    })
    .await
    .unwrap();
    let a = app.send(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(a.status, 503, "{}", a.text);
    assert_eq!(a.body["status"], "unavailable");
    assert_eq!(
        app.send(reqwest::Method::GET, "/healthz", None, None)
            .await
            .status,
        200
    );
    let a = app.get("/api/v1/surveys").await;
    assert!(
        a.status == 503 || a.status == 401,
        "{} {}",
        a.status,
        a.text
    );
    assert!(matches!(a.code(), "unavailable" | "unauthorized"));
}
