//! Operations endpoints: liveness, readiness and Prometheus metrics.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::context::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when the database does not answer.
    #[schema(example = "ok")]
    pub status: String,
    /// `sqlite` or `postgres`.
    #[schema(example = "sqlite")]
    pub database: Option<String>,
    /// Readiness only: each database pool and whether it answers (`ok` or `unavailable`):
    /// `primary` (`DATABASE_URL`) always, `replica` when `DATABASE_READ_URL` is set. A
    /// replica that does not answer does not make the service unready: its reads fall back
    /// to the primary.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = json!({"primary": "ok", "replica": "ok"}))]
    pub pools: Option<std::collections::BTreeMap<String, String>>,
    /// Readiness only: each background worker this process runs (`email`, `webhooks`) and
    /// its state: `ok`, `stalled` (no loop for longer than `WORKER_STALL_SECONDS`) or
    /// `exited`. Workers turned off (`DISPATCHER=off`, `WEBHOOKS=off`) are not listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = json!({"email": "ok", "webhooks": "ok"}))]
    pub workers: Option<std::collections::BTreeMap<String, String>>,
    /// Why the service is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Liveness
///
/// 200 while the process serves requests.
#[utoipa::path(
    operation_id = "healthz",
    tag = "ops",
    responses((status = 200, description = "Alive", body = Health))
)]
#[get("/healthz")]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health {
        status: "ok".into(),
        database: None,
        pools: None,
        workers: None,
        reason: None,
    })
}

/// Readiness
///
/// 200 when the database answers within two seconds and every background worker this
/// process runs (email dispatcher, webhook worker) is looping; else 503 with the reason.
/// `pools` says which database pools answer; a read replica that does not (its reads fall
/// back to the primary) is reported but does not make the service unready.
#[utoipa::path(
    operation_id = "readyz",
    tag = "ops",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "The database is unreachable, or a background worker stalled or exited", body = Health)
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    use crate::telemetry::WorkerHealth;
    let engine = match state.db.engine {
        crate::store::Engine::Sqlite => "sqlite",
        crate::store::Engine::Postgres => "postgres",
    };
    let mut problems = Vec::new();
    let word = |ok: bool| if ok { "ok" } else { "unavailable" }.to_string();
    let (primary, replica) = futures_util::join!(state.db.ping(), state.db.ping_replica());
    let mut pools = std::collections::BTreeMap::new();
    pools.insert("primary".to_string(), word(primary));
    if !primary {
        problems.push("the database does not answer".to_string());
    }
    if let Some(ok) = replica {
        pools.insert("replica".to_string(), word(ok));
    }
    let stall = state.settings.stall_seconds();
    let mut workers = std::collections::BTreeMap::new();
    for (name, beat) in state.metrics.workers() {
        let word = match beat.health(stall) {
            WorkerHealth::Off => continue,
            WorkerHealth::Alive(_) => "ok",
            WorkerHealth::Stalled(ago) => {
                problems.push(format!(
                    "the {name} worker has not looped for {ago:.0} s (WORKER_STALL_SECONDS={stall})"
                ));
                "stalled"
            }
            WorkerHealth::Exited => {
                problems.push(format!("the {name} worker has exited"));
                "exited"
            }
        };
        workers.insert(name.to_string(), word.to_string());
    }
    let body = Health {
        status: if problems.is_empty() {
            "ok".into()
        } else {
            "unavailable".into()
        },
        database: Some(engine.into()),
        pools: Some(pools),
        workers: Some(workers),
        reason: (!problems.is_empty()).then(|| problems.join("; ")),
    };
    if problems.is_empty() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Metrics
///
/// OpenMetrics text (Prometheus scrapes it): request counts and a latency histogram by
/// route pattern, emails by kind, worker liveness, database pool connections, build info.
#[utoipa::path(
    operation_id = "metrics",
    tag = "ops",
    responses((status = 200, description = "Prometheus metrics", content_type = "application/openmetrics-text", body = String))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    crate::queues::refresh(&state.db, &state.metrics).await;
    let pools: Vec<_> = state
        .db
        .pool_states()
        .into_iter()
        .map(|(name, in_use, idle)| (name, crate::telemetry::PoolState { in_use, idle }))
        .collect();
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(
            state
                .metrics
                .render_with(state.settings.stall_seconds(), &pools),
        )
}
