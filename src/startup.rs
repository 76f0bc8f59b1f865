//! Building and running the HTTP server. Tests use the same path with port 0.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::middleware::{from_fn, DefaultHeaders};
use actix_web::{web, HttpResponse};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::config::Settings;
pub use crate::context::AppState;
use crate::email::Mailer;
use crate::error::AppError;
use crate::store::Db;
use crate::telemetry::Metrics;
use tokio::sync::{watch, Notify};

/// How long background workers wait for a database connection.
const WORKER_CHECKOUT: Duration = Duration::from_secs(30);

/// Where the server serves its OpenAPI document (the Swagger UI under `/docs` reads it).
const OPENAPI_JSON: &str = "/api-docs/openapi.json";

/// A built server, bound to its port but not yet running.
pub struct Application {
    port: u16,
    pub handle: actix_web::dev::ServerHandle,
    server: Server,
    pub state: web::Data<AppState>,
    stop_workers: watch::Sender<bool>,
}

impl Application {
    /// Connects to the database (running migrations) and binds `settings.bind_addr`
    /// (port 0 picks a free port, as tests do).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let db = {
            let url = settings.database_url.clone();
            let read_url = settings.database_read_url.clone();
            let size = settings.db_pool_size;
            let checkout = Duration::from_millis(settings.db_checkout_timeout_ms);
            let prepared = settings.database_prepared_statements;
            crate::store::set_sqlite_synchronous(settings.sqlite_synchronous_full);
            tokio::task::spawn_blocking(move || -> anyhow::Result<Db> {
                let db =
                    Db::connect_with_replica(&url, read_url.as_deref(), size, checkout, prepared)?;
                let mut conn = db.get().map_err(|e| anyhow::anyhow!("{e}"))?;
                if crate::store::rollups::rebuild_if_empty(&mut conn)
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?
                {
                    tracing::info!("report rollups rebuilt from existing answers");
                }
                Ok(db)
            })
            .await??
        };
        Self::build_with_db(settings, db)
    }

    pub fn build_with_db(settings: Settings, db: Db) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(settings.bind_addr).map_err(|e| {
            anyhow::anyhow!("cannot listen on {} (BIND_ADDR): {e}", settings.bind_addr)
        })?;
        let port = listener.local_addr()?.port();
        let mailer = Mailer::from_settings(
            settings.smtp_url.as_deref(),
            &settings.outbox_dir,
            settings.smtp_pool_size,
        )?;
        let instance_id = settings.instance_id(port).into();
        if db.has_replica() {
            tracing::info!("reports, dashboards, exports and lists read from DATABASE_READ_URL");
        }
        let metrics = Arc::new(Metrics::default().with_read_fallbacks(db.read_fallbacks()));
        let state = web::Data::new(AppState {
            instance_id,
            db,
            settings: Arc::new(settings),
            metrics,
            mailer,
            wake_dispatcher: Arc::new(Notify::new()),
            wake_webhooks: Arc::new(Notify::new()),
        });
        let (stop_workers, stopped) = watch::channel(false);
        // Requests give up on the database after `DB_CHECKOUT_TIMEOUT_MS` (a fast 503);
        // background workers may wait longer for a connection.
        let workers = AppState {
            db: state.db.with_checkout(WORKER_CHECKOUT),
            settings: state.settings.clone(),
            metrics: state.metrics.clone(),
            mailer: state.mailer.clone(),
            wake_dispatcher: state.wake_dispatcher.clone(),
            wake_webhooks: state.wake_webhooks.clone(),
            instance_id: state.instance_id.clone(),
        };
        tokio::spawn(release_memory_when_idle(
            state.db.clone(),
            state.metrics.clone(),
            stopped.clone(),
        ));
        // A segment backfill that a restart cut short carries on.
        crate::reports::segments::spawn_backfill(workers.db.clone());
        if state.settings.dispatcher {
            tokio::spawn(workers.dispatcher().run(stopped.clone()));
        }
        if state.settings.webhooks {
            tokio::spawn(workers.webhook_worker()?.run(stopped));
        }
        let server = run(listener, state.clone())?;
        Ok(Application {
            port,
            handle: server.handle(),
            server,
            state,
            stop_workers,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM, then finishes in-flight requests (graceful shutdown).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        let _ = self.stop_workers.send(true);
        result
    }
}

/// How long the server must go without answering a request before the idle memory trim.
const TRIM_WHEN_QUIET_FOR: Duration = Duration::from_secs(1);
/// A quiet server trims at least this often even without requests (background workers
/// also allocate: an email batch, webhook deliveries, the digest).
const TRIM_AT_LEAST_EVERY: Duration = Duration::from_secs(60);

/// Hands the memory that SQLite's page caches and glibc keep after a burst back to the
/// operating system, once the server has answered no request for a second: after start-up
/// (building each HTTP worker's routes and OpenAPI paths, migrations, the first worker
/// polls) and after each burst of requests (an import leaves up to 2 MB of cached pages per
/// SQLite connection). glibc returns only the free memory at the top of a heap by itself;
/// the free chunks below live ones stay resident until `malloc_trim(0)`. Under steady load
/// it never runs, so it costs the answer path nothing; when quiet it costs one trim, and the
/// next request reads its SQLite pages from the operating system's cache again.
async fn release_memory_when_idle(
    db: Db,
    metrics: Arc<Metrics>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut seen = metrics.requests_total();
    let mut dirty = true; // start-up itself
    let mut last_trim = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TRIM_WHEN_QUIET_FOR) => {}
            _ = stopped.changed() => return,
        }
        let now = metrics.requests_total();
        if now != seen {
            (seen, dirty) = (now, true);
            continue;
        }
        if dirty || last_trim.elapsed() >= TRIM_AT_LEAST_EVERY {
            let db = db.clone();
            let _ = tokio::task::spawn_blocking(move || {
                db.release_memory();
                trim_heap();
            })
            .await;
            (dirty, last_trim) = (false, tokio::time::Instant::now());
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim takes each glibc arena's lock and releases its free pages; it has
    // no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

fn run(listener: TcpListener, state: web::Data<AppState>) -> anyhow::Result<Server> {
    // The OpenAPI document, serialised once and shared by every HTTP worker: handing the
    // Swagger UI a `serde_json::Value` kept a copy of the document (about 1 MB of small
    // allocations) in the server factory and one more in each worker's app.
    let doc = web::Bytes::from(serde_json::to_vec(&crate::web::api::openapi())?);
    let workers = state.settings.http_workers;
    let limiter = web::Data::new(crate::web::pages::Limiter::new(
        state.settings.public_link_per_minute,
        state.settings.public_link_burst,
        state.settings.trusted_proxies.clone(),
    ));
    let sign_in_limits = web::Data::new(crate::web::app::SignInLimits::new(
        state.settings.trusted_proxies.clone(),
    ));
    let server = actix_web::HttpServer::new(move || {
        let (app, _) = crate::web::api::app_and_doc();
        app.app_data(state.clone())
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                AppError::BadRequest(format!("invalid query string: {err}")).into()
            }))
            .app_data(web::PathConfig::default().error_handler(|err, _| {
                AppError::BadRequest(format!("invalid path: {err}")).into()
            }))
            .app_data(crate::web::pages::form_config())
            .app_data(limiter.clone())
            .app_data(sign_in_limits.clone())
            .configure(crate::web::pages::configure)
            .configure(crate::web::app::configure)
            .service(SwaggerUi::new("/docs/{_:.*}").config(Config::new([OPENAPI_JSON])))
            .route(OPENAPI_JSON, {
                let doc = doc.clone();
                web::get().to(move || {
                    let doc = doc.clone();
                    async move {
                        HttpResponse::Ok()
                            .content_type(mime::APPLICATION_JSON)
                            .body(doc)
                    }
                })
            })
            .route(
                "/docs",
                web::get().to(|| async {
                    HttpResponse::PermanentRedirect()
                        .insert_header((header::LOCATION, "/docs/"))
                        .finish()
                }),
            )
            .default_service(web::to(crate::web::not_found))
            .wrap(from_fn(crate::web::refuse_nul_in_url))
            .wrap(
                // Pages set their own, stricter CSP; everything else (the API, the Swagger
                // UI under /docs) may not be framed either.
                DefaultHeaders::new()
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .add((header::REFERRER_POLICY, "no-referrer"))
                    .add((header::X_FRAME_OPTIONS, "DENY"))
                    .add((header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'")),
            )
            .wrap(from_fn(crate::web::request_log))
    })
    .workers(workers)
    .listen(listener)?
    .shutdown_timeout(20)
    .run();
    Ok(server)
}
