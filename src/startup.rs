//! Building and running the HTTP server. Tests use the same path with port 0.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::middleware::{from_fn, DefaultHeaders};
use actix_web::{web, HttpRequest, HttpResponse};
use utoipa_swagger_ui::SwaggerUi;

use crate::api::error::ApiError;
use crate::config::Settings;
use crate::db::Db;
use crate::email::dispatcher::Dispatcher;
use crate::email::Mailer;
use crate::telemetry::Metrics;
use crate::webhooks::WebhookWorker;
use tokio::sync::{watch, Notify};

/// What every handler can reach.
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub mailer: Mailer,
    /// Wakes the email dispatcher when invitations are queued.
    pub wake_dispatcher: Arc<Notify>,
    /// Wakes the webhook worker when deliveries are queued (after the commit).
    pub wake_webhooks: Arc<Notify>,
}

impl AppState {
    /// A dispatcher over this state's database and transport.
    pub fn dispatcher(&self) -> Dispatcher {
        Dispatcher {
            db: self.db.clone(),
            mailer: self.mailer.clone(),
            settings: self.settings.clone(),
            metrics: self.metrics.clone(),
            wake: self.wake_dispatcher.clone(),
            digest_checked: Default::default(),
        }
    }

    /// A webhook worker over this state's database.
    pub fn webhook_worker(&self) -> anyhow::Result<WebhookWorker> {
        WebhookWorker::new(
            self.db.clone(),
            self.settings.clone(),
            self.wake_webhooks.clone(),
        )
    }
}

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
            let size = settings.db_pool_size;
            tokio::task::spawn_blocking(move || -> anyhow::Result<Db> {
                let db = Db::connect(&url, size)?;
                let mut conn = db.get().map_err(|e| anyhow::anyhow!("{e}"))?;
                if crate::reports::rollup::rebuild_if_empty(&mut conn)
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
        let state = web::Data::new(AppState {
            db,
            settings: Arc::new(settings),
            metrics: Arc::new(Metrics::default()),
            mailer,
            wake_dispatcher: Arc::new(Notify::new()),
            wake_webhooks: Arc::new(Notify::new()),
        });
        let (stop_workers, stopped) = watch::channel(false);
        if state.settings.dispatcher {
            tokio::spawn(state.dispatcher().run(stopped.clone()));
        }
        if state.settings.webhooks {
            tokio::spawn(state.webhook_worker()?.run(stopped));
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

fn run(listener: TcpListener, state: web::Data<AppState>) -> anyhow::Result<Server> {
    let doc = crate::api::openapi();
    let workers = state.settings.http_workers;
    let limiter = crate::pages::public_link_limiter(
        state.settings.public_link_per_minute,
        state.settings.public_link_burst,
    );
    let server = actix_web::HttpServer::new(move || {
        let (app, _) = crate::api::app_and_doc();
        app.app_data(state.clone())
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                ApiError::BadRequest(format!("invalid query string: {err}")).into()
            }))
            .app_data(web::PathConfig::default().error_handler(|err, _| {
                ApiError::BadRequest(format!("invalid path: {err}")).into()
            }))
            .app_data(crate::pages::form_config())
            .configure(|cfg| crate::pages::configure(cfg, &limiter))
            .service(SwaggerUi::new("/docs/{_:.*}").url("/api-docs/openapi.json", doc.clone()))
            .route(
                "/docs",
                web::get().to(|| async {
                    HttpResponse::PermanentRedirect()
                        .insert_header((header::LOCATION, "/docs/"))
                        .finish()
                }),
            )
            .default_service(web::to(not_found))
            .wrap(
                DefaultHeaders::new()
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .add((header::REFERRER_POLICY, "no-referrer")),
            )
            .wrap(from_fn(crate::telemetry::request_log))
    })
    .workers(workers)
    .listen(listener)?
    .shutdown_timeout(20)
    .run();
    Ok(server)
}

/// Unknown URLs: a JSON error under `/api`, a small HTML page elsewhere.
async fn not_found(req: HttpRequest) -> HttpResponse {
    if req.path().starts_with("/api") {
        HttpResponse::NotFound().json(ApiError::NotFound("route").body())
    } else {
        HttpResponse::NotFound()
            .content_type("text/html; charset=utf-8")
            .body(crate::pages::not_found_html())
    }
}
