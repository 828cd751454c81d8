//! Applying an event to the billing mirror and the business state. This file only dispatches
//! from event type to handler; each handler has a file of its own, and what they share has its
//! own too: [`event`] (the event and what applying it did), [`context`] (the configured
//! features), [`version`] and [`upsert`] (delivery order never matters), [`effects`] (locks,
//! notices, emails), [`order_status`] (an order's status from the mirror). Each handler runs
//! inside the ProcessEvent transaction ([`job`]) and writes nothing outside it; follow-up work
//! is enqueued in that transaction.

pub mod audit;
pub mod checkout;
pub mod context;
pub mod customer;
pub mod effects;
pub mod event;
pub mod fulfilment;
pub mod inbox;
pub mod invoice;
pub mod job;
pub mod ledger;
pub mod metrics;
pub mod order;
pub mod order_status;
pub mod payment;
pub mod payment_method;
pub mod settings;
pub mod subscription;
pub mod upsert;
pub mod version;

use sqlx::PgConnection;

use crate::queue::JobError;
use context::Context;
use event::{Applied, Event};

/// Applies `event` with the handler of its type; a type without one is ignored.
pub async fn apply(
    conn: &mut PgConnection,
    ctx: &Context,
    event: &Event,
) -> Result<Applied, JobError> {
    match event.event_type.as_str() {
        "customer.created" | "customer.updated" | "customer.deleted" => {
            customer::apply(conn, ctx, event).await
        }
        "payment_method.attached" | "payment_method.detached" => {
            payment_method::apply(conn, ctx, event).await
        }
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted"
        | "customer.subscription.paused"
        | "customer.subscription.resumed"
        | "customer.subscription.trial_will_end" => subscription::apply(conn, ctx, event).await,
        "invoice.paid" | "invoice.payment_succeeded" | "invoice.payment_failed" => {
            invoice::apply(conn, ctx, event).await
        }
        "checkout.session.completed" | "checkout.session.expired" => {
            checkout::apply(conn, ctx, event).await
        }
        "payment_intent.succeeded" | "payment_intent.payment_failed" => {
            payment::apply_payment_intent(conn, ctx, event).await
        }
        "charge.refunded" => payment::apply_charge(conn, ctx, event).await,
        _ => Ok(Applied::Ignored),
    }
}
