//! Realistic Stripe events built from Stripe's own example objects (fixtures/stripe/, copied
//! from stripe/openapi; see PROVENANCE.md there), in the two payload shapes Billhook reads:
//! API versions up to 2025-02-24 and from 2025-03-31 on.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// Every event type with a built-in example (`event` returns `Some` for each): the types the
/// worker handles.
pub const EVENT_TYPES: &[&str] = billhook_core::stripe::event_types::HANDLED;

/// Which API version the payload is rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiShape {
    /// `2025-02-24.acacia`: invoice.subscription, invoice.payment_intent,
    /// subscription.current_period_*.
    Acacia,
    /// `2026-07-29.dahlia`: invoice.parent.subscription_details, invoice payments, billing
    /// periods on subscription items.
    Dahlia,
}

impl ApiShape {
    pub const ALL: [ApiShape; 2] = [ApiShape::Acacia, ApiShape::Dahlia];

    pub fn api_version(self) -> &'static str {
        match self {
            Self::Acacia => "2025-02-24.acacia",
            Self::Dahlia => "2026-07-29.dahlia",
        }
    }
}

macro_rules! fixture_table {
    ($($name:literal),* $(,)?) => {
        fn raw_object(shape: ApiShape, name: &str) -> Option<&'static str> {
            match shape {
                ApiShape::Acacia => match name {
                    $($name => Some(include_str!(concat!("../fixtures/stripe/2025-02-24.acacia/", $name, ".json"))),)*
                    _ => None,
                },
                ApiShape::Dahlia => match name {
                    $($name => Some(include_str!(concat!("../fixtures/stripe/2026-07-29.dahlia/", $name, ".json"))),)*
                    _ => None,
                },
            }
        }
    };
}

fixture_table!(
    "charge",
    "checkout.session",
    "customer",
    "deleted_customer",
    "invoice",
    "payment_intent",
    "payment_method",
    "refund",
    "subscription",
    "subscription_item",
);

/// One of Stripe's example objects, as a JSON value.
pub fn object(shape: ApiShape, name: &str) -> Value {
    let raw = raw_object(shape, name).unwrap_or_else(|| panic!("no fixture named {name}"));
    serde_json::from_str(raw).unwrap_or_else(|e| panic!("fixture {name} is JSON: {e}"))
}

/// A fresh event id, unique across calls.
pub fn event_id() -> String {
    format!("evt_{}", ulid::Ulid::generate())
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Wraps `object` in an event envelope of `event_type`, created now, with a fresh id.
pub fn envelope(event_type: &str, shape: ApiShape, object: Value) -> Value {
    json!({
        "id": event_id(),
        "object": "event",
        "account": null,
        "api_version": shape.api_version(),
        "created": unix_now(),
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": event_type,
    })
}

/// The event a real account would send for `event_type`, or `None` for a type with no
/// built-in example. Every type in `billhook_core::stripe::event_types::HANDLED` has one.
/// Its objects keep Stripe's example ids (the same on every call, which tests rely on) and
/// dates; `scripts/trigger.sh` sends [`crate::examples`] instead, with ids of their own and
/// dates around now.
pub fn event(event_type: &str, shape: ApiShape) -> Option<Value> {
    let object = example_object(event_type, shape)?;
    Some(envelope(event_type, shape, object))
}

fn example_object(event_type: &str, shape: ApiShape) -> Option<Value> {
    let mut o;
    match event_type {
        "payment_intent.succeeded" => {
            o = object(shape, "payment_intent");
            o["status"] = "succeeded".into();
            o["amount_received"] = o["amount"].clone();
            o["canceled_at"] = Value::Null;
            o["last_payment_error"] = Value::Null;
            o["next_action"] = Value::Null;
            o["receipt_email"] = "buyer@example.com".into();
        }
        "payment_intent.payment_failed" => {
            o = object(shape, "payment_intent");
            o["status"] = "requires_payment_method".into();
            o["canceled_at"] = Value::Null;
            o["next_action"] = Value::Null;
            o["receipt_email"] = "buyer@example.com".into();
            o["last_payment_error"] = json!({
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds."
            });
        }
        "charge.refunded" => {
            o = object(shape, "charge");
            o["refunded"] = true.into();
            o["amount_refunded"] = o["amount"].clone();
            o["receipt_email"] = "buyer@example.com".into();
        }
        "checkout.session.completed" | "checkout.session.expired" => {
            o = object(shape, "checkout.session");
            let completed = event_type.ends_with("completed");
            o["status"] = if completed { "complete" } else { "expired" }.into();
            o["payment_status"] = if completed { "paid" } else { "unpaid" }.into();
            o["client_reference_id"] = "order_1001".into();
            o["customer_details"] = json!({ "email": "buyer@example.com", "name": "Jenny Rosen" });
        }
        "customer.created" | "customer.updated" => {
            o = object(shape, "customer");
            o["email"] = "buyer@example.com".into();
        }
        "customer.deleted" => o = object(shape, "deleted_customer"),
        t if t.starts_with("customer.subscription.") => {
            o = object(shape, "subscription");
            o["status"] = match t {
                "customer.subscription.deleted" => "canceled",
                "customer.subscription.trial_will_end" => "trialing",
                "customer.subscription.paused" => "paused",
                "customer.subscription.created"
                | "customer.subscription.updated"
                | "customer.subscription.resumed" => "active",
                _ => return None,
            }
            .into();
        }
        "invoice.paid" | "invoice.payment_succeeded" => {
            o = object(shape, "invoice");
            o["status"] = "paid".into();
            o["amount_paid"] = o["amount_due"].clone();
            o["amount_remaining"] = 0.into();
        }
        "invoice.payment_failed" => {
            o = object(shape, "invoice");
            o["status"] = "open".into();
            o["attempt_count"] = 1.into();
            o["amount_paid"] = 0.into();
        }
        "payment_method.attached" => o = object(shape, "payment_method"),
        "payment_method.detached" => {
            o = object(shape, "payment_method");
            o["customer"] = Value::Null;
        }
        _ => return None,
    }
    Some(o)
}

/// The body as Stripe sends it: pretty-printed JSON with two-space indentation.
pub fn to_body(event: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(event).unwrap_or_else(|e| panic!("event serialises: {e}"))
}
