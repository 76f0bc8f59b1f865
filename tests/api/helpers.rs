//! Test harness: every test gets its own database (a fresh SQLite file, or a fresh PostgreSQL
//! database when `TEST_POSTGRES_URL` is set) and a real server on a random port.

use std::collections::HashMap;

use closeloop::config::Settings;
use closeloop::domain::Role;
use closeloop::startup::Application;
use diesel::{Connection, PgConnection, RunQueryDsl};
use reqwest::Method;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Runs an async test body once on SQLite and once on PostgreSQL:
/// `both_engines!(name);` next to `async fn name(app: TestApp)` makes `name::on_sqlite` and
/// `name::on_postgres`. Without `TEST_POSTGRES_URL` the PostgreSQL one says so and passes;
/// CI sets it and checks that the PostgreSQL tests ran.
#[macro_export]
macro_rules! both_engines {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                let app = $crate::helpers::spawn_app($crate::helpers::Engine::Sqlite).await;
                super::$name(app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                if std::env::var("TEST_POSTGRES_URL").map(|v| v.is_empty()).unwrap_or(true) {
                    eprintln!("TEST_POSTGRES_URL is not set: PostgreSQL variant not run");
                    return;
                }
                let app = $crate::helpers::spawn_app($crate::helpers::Engine::Postgres).await;
                super::$name(app).await;
            }
        }
    )+};
}

/// Like `both_engines!`, for tests that start their own app(s): the test function takes the
/// `Engine`.
#[macro_export]
macro_rules! each_engine {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                super::$name($crate::helpers::Engine::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                if std::env::var("TEST_POSTGRES_URL").map(|v| v.is_empty()).unwrap_or(true) {
                    eprintln!("TEST_POSTGRES_URL is not set: PostgreSQL variant not run");
                    return;
                }
                super::$name($crate::helpers::Engine::Postgres).await;
            }
        }
    )+};
}

/// A fresh, empty database that is removed when dropped.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub fn new(engine: Engine) -> TestDb {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("closeloop.db").display());
                TestDb {
                    url,
                    _dir: Some(dir),
                    pg: None,
                }
            }
            Engine::Postgres => {
                let admin_url = std::env::var("TEST_POSTGRES_URL").expect("TEST_POSTGRES_URL");
                let name = format!(
                    "closeloop_test_{}",
                    ulid::Ulid::new().to_string().to_lowercase()
                );
                let mut conn = PgConnection::establish(&admin_url).unwrap_or_else(|e| {
                    panic!("TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {e}")
                });
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .expect("create test database");
                let mut url = url::Url::parse(&admin_url).expect("TEST_POSTGRES_URL is a URL");
                url.set_path(&format!("/{name}"));
                TestDb {
                    url: url.to_string(),
                    _dir: None,
                    pg: Some((admin_url, name)),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.pg.take() {
            // In a thread of its own: Drop may run inside the async runtime.
            let _ = std::thread::spawn(move || {
                if let Ok(mut conn) = PgConnection::establish(&admin_url) {
                    let _ =
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut conn);
                }
            })
            .join();
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// An admin API key.
    pub key: String,
    pub engine: Engine,
    pub app_state: actix_web::web::Data<closeloop::startup::AppState>,
    pub outbox: tempfile::TempDir,
    handle: actix_web::dev::ServerHandle,
    // Dropped last: the server must stop before its database goes.
    pub db: TestDb,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        drop(handle.stop(false));
    }
}

/// Settings for a test server: random port, the given database, a private outbox folder.
pub fn test_settings(db_url: &str, outbox: &std::path::Path, extra: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), db_url.to_string()),
        ("BIND_ADDR".into(), "127.0.0.1:0".into()),
        ("OUTBOX_DIR".into(), outbox.display().to_string()),
        ("HTTP_WORKERS".into(), "1".into()),
        ("DB_POOL_SIZE".into(), "4".into()),
        ("RUST_LOG".into(), "warn".into()),
        // The tests' receivers listen on 127.0.0.1: the SSRF guard is off unless a test
        // turns it on with ("WEBHOOK_ALLOW_PRIVATE", "false").
        ("WEBHOOK_ALLOW_PRIVATE".into(), "true".into()),
    ]);
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    Settings::from_lookup(|k| env.get(k).cloned()).expect("test settings")
}

pub async fn spawn_app(engine: Engine) -> TestApp {
    spawn_app_with(engine, &[]).await
}

pub async fn spawn_app_with(engine: Engine, extra: &[(&str, &str)]) -> TestApp {
    let db = tokio::task::spawn_blocking(move || TestDb::new(engine))
        .await
        .unwrap();
    spawn_app_on(db, engine, extra).await
}

/// A second server on the same database as `other` (a replica).
pub async fn spawn_replica(
    other: &TestApp,
    extra: &[(&str, &str)],
) -> (Application, tempfile::TempDir) {
    let outbox = tempfile::tempdir().unwrap();
    let settings = test_settings(&other.db.url, outbox.path(), extra);
    (
        Application::build(settings)
            .await
            .expect("the replica builds"),
        outbox,
    )
}

pub async fn spawn_app_on(db: TestDb, engine: Engine, extra: &[(&str, &str)]) -> TestApp {
    let outbox = tempfile::tempdir().unwrap();
    let settings = test_settings(&db.url, outbox.path(), extra);
    let app = Application::build(settings).await.expect("the app builds");
    let port = app.port();
    let handle = app.handle.clone();
    let app_state = app.state.clone();
    tokio::spawn(app.run_until_stopped());
    let key = {
        let state = app_state.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = state.db.get().expect("a connection");
            closeloop::store::api_keys::create(&mut conn, "test admin", Role::Admin)
                .expect("admin key")
                .1
        })
        .await
        .unwrap()
    };
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        key,
        engine,
        app_state,
        outbox,
        handle,
        db,
    }
}

/// An HTTP answer: status and the body as JSON (`Value::Null` when the body is not JSON).
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The messages for one field of a validation error.
    pub fn field(&self, name: &str) -> Vec<String> {
        self.body["error"]["fields"][name]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Sends a request with the given key (or none) and JSON body (or none).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut req = self.client.request(method, self.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        into_answer(req.send().await.expect("request sent")).await
    }

    /// Sends a raw body with a content type, as the admin.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Answer {
        let req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.key)
            .header("content-type", content_type)
            .body(body);
        into_answer(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, Some(&self.key), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(&self.key), Some(&body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PATCH, path, Some(&self.key), Some(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, Some(&self.key), None).await
    }

    /// A new key with the given role.
    pub async fn key_with_role(&self, role: &str) -> String {
        let a = self
            .post(
                "/api/v1/api-keys",
                json!({"name": format!("{role} key"), "role": role}),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
        a.body["key"].as_str().unwrap().to_string()
    }

    pub async fn create_survey(&self, body: Value) -> Value {
        let a = self.post("/api/v1/surveys", body).await;
        assert_eq!(a.status, 201, "{}", a.text);
        a.body
    }

    pub async fn nps_survey(&self) -> Value {
        self.create_survey(json!({"kind": "nps", "name": "NPS", "brand": "Acme"}))
            .await
    }
}

pub async fn into_answer(res: reqwest::Response) -> Answer {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        body,
        headers,
        text,
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// A member signed in to the `/app` workspace: their session cookie and CSRF token.
pub struct Member {
    pub email: String,
    pub name: String,
    /// `closeloop_session=<value>`, for a `Cookie` header.
    pub cookie: String,
    pub csrf: String,
}

impl TestApp {
    /// Creates a member (as `closeloop user create` does) and returns their one-time sign-in
    /// link (`/app/login/{token}`, path only).
    pub async fn new_member(&self, email: &str, name: &str, role: Role) -> String {
        let state = self.app_state.clone();
        let (email, name) = (email.to_string(), name.to_string());
        let link = tokio::task::spawn_blocking(move || {
            let mut conn = state.db.get().expect("a connection");
            closeloop::members::create_in(&mut conn, &state.settings, &email, &name, role)
                .expect("the member is created")
                .1
        })
        .await
        .unwrap();
        let at = link.find("/app/login/").expect("a sign-in link");
        link[at..].to_string()
    }

    /// A form POST from a page of this site (with `Origin`), optionally with a cookie.
    pub async fn post_form(
        &self,
        path: &str,
        cookie: Option<&str>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url(path))
            .header("Origin", &self.address)
            .form(form);
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        req.send().await.expect("the request is sent")
    }

    /// A GET with a cookie; returns status and body.
    pub async fn get_page(&self, path: &str, cookie: &str) -> (u16, String) {
        let res = self
            .client
            .get(self.url(path))
            .header("Cookie", cookie)
            .send()
            .await
            .expect("the request is sent");
        let status = res.status().as_u16();
        (status, res.text().await.unwrap_or_default())
    }

    /// Creates a member, signs in through their link and reads the CSRF token off a page.
    pub async fn sign_in(&self, email: &str, name: &str, role: Role) -> Member {
        let link = self.new_member(email, name, role).await;
        let res = self
            .post_form(&link, None, &[("next", "/app/profile")])
            .await;
        assert_eq!(res.status().as_u16(), 303, "signing in redirects");
        let cookie = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("closeloop_session="))
            .and_then(|v| v.split(';').next())
            .expect("a session cookie")
            .to_string();
        let (status, page) = self.get_page("/app/profile", &cookie).await;
        assert_eq!(status, 200, "{page}");
        let csrf = csrf_of(&page).expect("a csrf_token on the page");
        Member {
            email: email.to_string(),
            name: name.to_string(),
            cookie,
            csrf,
        }
    }
}

/// The first `csrf_token` hidden field of a page.
pub fn csrf_of(page: &str) -> Option<String> {
    let at = page.find("name=\"csrf_token\" value=\"")? + "name=\"csrf_token\" value=\"".len();
    let len = page[at..].find('"')?;
    Some(page[at..at + len].to_string())
}

impl TestApp {
    /// Another session of an existing member (a second browser): a fresh one-time link made
    /// in the database, then signed in through it. Returns the cookie.
    pub async fn sign_in_again(&self, email: &str) -> String {
        let state = self.app_state.clone();
        let email = email.to_string();
        let token = tokio::task::spawn_blocking(move || {
            let mut conn = state.db.get().expect("a connection");
            let user = closeloop::store::users::by_email(&mut conn, &email)
                .unwrap()
                .expect("the member exists");
            let token = closeloop::domain::new_secret("");
            let t = closeloop::domain::now();
            closeloop::store::users::insert_token(
                &mut conn,
                &closeloop::domain::hash_key(&token),
                &user.id,
                t + chrono::TimeDelta::minutes(5),
                t,
            )
            .unwrap();
            token
        })
        .await
        .unwrap();
        let res = self
            .post_form(&format!("/app/login/{token}"), None, &[])
            .await;
        assert_eq!(res.status().as_u16(), 303);
        res.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("closeloop_session="))
            .and_then(|v| v.split(';').next())
            .expect("a session cookie")
            .to_string()
    }
}

/// Invites contacts by link to `survey`; returns their tokens in order.
pub async fn tokens(app: &TestApp, survey: &Value, contacts: Value) -> Vec<String> {
    let a = app
        .post(
            &format!(
                "/api/v1/surveys/{}/invitations",
                survey["id"].as_str().unwrap()
            ),
            json!({"channel": "link", "contacts": contacts}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let url = i["url"].as_str().unwrap();
            url.rsplit('/').next().unwrap().to_string()
        })
        .collect()
}

/// Answers on the survey page of `token`, as a customer's browser posts it.
pub async fn answer(app: &TestApp, token: &str, score: i32, comment: &str) {
    let res = app
        .client
        .post(app.url(&format!("/s/{token}")))
        .form(&[
            ("score", score.to_string()),
            ("comment", comment.to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
}

/// Runs `f` on a connection of the app's database (to set up what no endpoint can, such as
/// a time in the past) and returns what it returns.
pub async fn with_db<R: Send + 'static>(
    app: &TestApp,
    f: impl FnOnce(&mut closeloop::store::DbConnection) -> R + Send + 'static,
) -> R {
    let state = app.app_state.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = state.db.get().unwrap();
        f(&mut conn)
    })
    .await
    .unwrap()
}

impl TestApp {
    /// A workspace form POST by member `m` (their cookie and CSRF token added): the status,
    /// the `Location` header (empty when none) and the body.
    pub async fn post_as(
        &self,
        m: &Member,
        path: &str,
        form: &[(&str, &str)],
    ) -> (u16, String, String) {
        let mut all = vec![("csrf_token", m.csrf.as_str())];
        all.extend_from_slice(form);
        let res = self.post_form(path, Some(&m.cookie), &all).await;
        let status = res.status().as_u16();
        let to = res
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, to, res.text().await.unwrap_or_default())
    }
}
