//! `GET` on the webhook path: a small JSON document for whoever sets up or watches the Stripe
//! endpoint. It says whether the receiver can store events right now, and which event types
//! Billhook handles (to copy into the endpoint's "events to send"). Nothing in it helps an
//! attacker: no version, setting, count or error text.

use actix_web::{HttpResponse, web};
use billhook_core::stripe::event_types::HANDLED;

use crate::AppState;
use crate::routes::admin::READYZ_TIMEOUT;

/// 200 when events can be stored (the database answers and is migrated), 503 otherwise.
pub async fn describe(state: web::Data<AppState>) -> HttpResponse {
    let can_store = matches!(
        tokio::time::timeout(
            state.db_timeout.min(READYZ_TIMEOUT),
            billhook_core::db::check_migrated(&state.pool),
        )
        .await,
        Ok(Ok(()))
    );
    let body = serde_json::json!({
        "status": if can_store { "ok" } else { "unavailable" },
        "can_store_events": can_store,
        "accepts": "POST with a Stripe-Signature header",
        "handled_event_types": HANDLED,
    });
    if can_store {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
