//! `GET` on the webhook path: a small JSON document for whoever sets up or watches the Stripe
//! endpoint. It says whether the receiver can store events right now, and which event types
//! Billhook handles (to copy into the endpoint's "events to send"). Nothing in it helps an
//! attacker: no version, setting, count or error text.

use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use billhook_core::stripe::event_types::HANDLED;
use tokio::sync::Mutex;

use crate::AppState;
use crate::routes::admin::storage_check;

/// How long one storage check answers every `GET`: the path is public, so a flood of `GET`s
/// costs the database one query a second, not one each.
const SEEN_FOR: Duration = Duration::from_secs(1);

/// The last check's answer and when it was taken. Requests that arrive while a check runs
/// wait for it and share its answer.
#[derive(Default)]
pub struct SeenStorage(Mutex<Option<(Instant, bool)>>);

impl SeenStorage {
    async fn can_store(&self, state: &AppState) -> bool {
        let mut seen = self.0.lock().await;
        match *seen {
            Some((at, can_store)) if at.elapsed() < SEEN_FOR => can_store,
            _ => {
                let can_store = storage_check(state).await.is_ok();
                *seen = Some((Instant::now(), can_store));
                can_store
            }
        }
    }
}

/// 200 when events can be stored (the database answers and is migrated), 503 otherwise.
pub async fn describe(state: web::Data<AppState>) -> HttpResponse {
    let can_store = state.storage_seen.can_store(&state).await;
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
