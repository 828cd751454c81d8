//! The worker's internal listener: /healthz, /readyz, /metrics.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use sqlx::PgPool;

use super::metrics::Metrics;

struct AdminState {
    pool: PgPool,
    metrics: Metrics,
}

pub fn serve(listener: TcpListener, pool: PgPool, metrics: Metrics) -> std::io::Result<Server> {
    let state = web::Data::new(AdminState { pool, metrics });
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics_page))
    })
    .disable_signals()
    .workers(1)
    .shutdown_timeout(1)
    .listen(listener)?
    .run())
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready when PostgreSQL answers within the database timeout (at most
/// [`billhook_core::db::READY_WITHIN`]) and holds every migration this build needs.
async fn readyz(state: web::Data<AdminState>) -> HttpResponse {
    let within = state.pool.options().get_acquire_timeout();
    match billhook_core::db::readiness(&state.pool, within).await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })),
        Err(reason) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "status": "not ready", "reason": reason })),
    }
}

async fn metrics_page(state: web::Data<AdminState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(&state.pool).await)
}
