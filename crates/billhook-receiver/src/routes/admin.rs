//! The internal listener: liveness, readiness and metrics. Bound to a private address; it
//! never serves the webhook route.

use actix_web::{HttpResponse, web};

use crate::AppState;

/// The process is up and serving.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready when PostgreSQL answers and holds every migration this build needs.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match storage_check(&state).await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })),
        Err(problem) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "status": "not ready", "reason": problem })),
    }
}

/// Whether events can be stored: PostgreSQL answers within the database timeout (at most
/// [`billhook_core::db::READY_WITHIN`]) and holds every migration this build needs. The error
/// says which is not so.
pub async fn storage_check(state: &AppState) -> Result<(), String> {
    billhook_core::db::readiness(&state.pool, state.db_timeout).await
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
