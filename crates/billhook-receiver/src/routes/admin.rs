//! The internal listener: liveness, readiness and metrics. Bound to a private address; it
//! never serves the webhook route.

use std::time::Duration;

use actix_web::{HttpResponse, web};

use crate::AppState;

/// The readiness check's own bound, below the 1 s that orchestrators' probes usually allow:
/// with the database down, waiting for the pool's whole timeout would make the probe itself
/// time out, and say nothing.
pub const READYZ_TIMEOUT: Duration = Duration::from_millis(800);

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

/// Whether events can be stored: PostgreSQL answers within [`READYZ_TIMEOUT`] and holds every
/// migration this build needs. The error says which is not so.
pub async fn storage_check(state: &AppState) -> Result<(), String> {
    let check = tokio::time::timeout(
        state.db_timeout.min(READYZ_TIMEOUT),
        billhook_core::db::check_migrated(&state.pool),
    )
    .await;
    match check {
        Ok(Ok(())) => Ok(()),
        Ok(Err(billhook_core::db::MigrationCheckError::NotMigrated(e))) => Err(e.to_string()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err("database unreachable".to_owned())
        }
        Err(_) => Err("database timed out".to_owned()),
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
