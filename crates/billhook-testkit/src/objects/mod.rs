//! The objects of one customer's billing story, built from Stripe's example objects in either
//! API shape and related by the ids of a [`Cast`]: the customer, their Checkout Session,
//! PaymentIntent, charge, subscription, invoices. Times count from the story's start (`t0`).
//! The billing scenarios build them with fixed ids and times, the trigger's stories and single
//! examples with fresh ids around now.

use serde_json::{Value, json};

use crate::fixtures::{self, ApiShape};

mod tidy;
pub use tidy::tidy;

pub const DAY: i64 = 86_400;

/// The ids a story's objects share, and the customer's name and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cast {
    pub customer: String,
    pub email: String,
    pub name: String,
    pub session: String,
    pub payment_intent: String,
    pub charge: String,
    pub refund: String,
    pub subscription: String,
    pub item: String,
    pub price: String,
    pub product: String,
    pub payment_method: String,
    /// The subscription's first invoice (its signup).
    pub first_invoice: String,
    /// The invoice of its first renewal, a period later.
    pub renewal_invoice: String,
    /// The application's own reference for a one-time order.
    pub order_reference: String,
}

impl Cast {
    /// Ids with Stripe's prefixes around `suffix` (`cus_SUFFIX`, `pi_SUFFIX`, `in_SUFFIX01`…) and
    /// the address `jenny.SUFFIX@example.com`: a suffix unique per run gives unrelated runs
    /// unrelated objects.
    pub fn with_suffix(suffix: &str) -> Self {
        let id = |prefix: &str| format!("{prefix}_{suffix}");
        Self {
            customer: id("cus"),
            email: format!("jenny.{suffix}@example.com"),
            name: "Jenny Rosen".to_owned(),
            session: id("cs_test"),
            payment_intent: id("pi"),
            charge: id("ch"),
            refund: id("re"),
            subscription: id("sub"),
            item: id("si"),
            price: id("price"),
            product: id("prod"),
            payment_method: id("pm"),
            first_invoice: format!("in_{suffix}01"),
            renewal_invoice: format!("in_{suffix}02"),
            order_reference: id("order"),
        }
    }

    /// A cast unique to this run: [`Cast::with_suffix`] around eight random lower-case letters
    /// and digits.
    pub fn fresh() -> Self {
        let ulid = ulid::Ulid::generate().to_string().to_ascii_lowercase();
        // The last characters of a ULID are its random part.
        Self::with_suffix(&ulid[ulid.len() - 8..])
    }

    /// The PaymentIntent that pays (or tries to pay) invoice `invoice`.
    pub fn invoice_payment_intent(invoice: &str) -> String {
        format!("pi_{}", invoice.get(3..).unwrap_or(invoice))
    }
}

pub struct Builder<'a> {
    pub shape: ApiShape,
    pub cast: &'a Cast,
    /// When the story starts: the customer's, the session's and the subscription's `created`.
    pub t0: i64,
}

impl Builder<'_> {
    fn event(&self, event_type: &str, object: Value) -> Value {
        fixtures::envelope(event_type, self.shape, object)
    }

    pub fn customer(&self, event_type: &str) -> Value {
        let mut o = fixtures::object(self.shape, "customer");
        o["id"] = self.cast.customer.as_str().into();
        o["email"] = self.cast.email.as_str().into();
        o["name"] = self.cast.name.as_str().into();
        o["created"] = self.t0.into();
        self.event(event_type, o)
    }

    /// `customer.deleted`: Stripe's deleted-customer stub.
    pub fn deleted_customer(&self) -> Value {
        let mut o = fixtures::object(self.shape, "deleted_customer");
        o["id"] = self.cast.customer.as_str().into();
        self.event("customer.deleted", o)
    }

    pub fn payment_method(&self, event_type: &str) -> Value {
        let mut o = fixtures::object(self.shape, "payment_method");
        o["id"] = self.cast.payment_method.as_str().into();
        o["customer"] = self.cast.customer.as_str().into();
        o["created"] = self.t0.into();
        self.event(event_type, o)
    }

    pub fn payment_intent(&self, event_type: &str, amount: i64) -> Value {
        let mut o = fixtures::object(self.shape, "payment_intent");
        o["id"] = self.cast.payment_intent.as_str().into();
        o["amount"] = amount.into();
        o["currency"] = "usd".into();
        o["customer"] = self.cast.customer.as_str().into();
        o["created"] = self.t0.into();
        o["canceled_at"] = Value::Null;
        o["next_action"] = Value::Null;
        o["receipt_email"] = self.cast.email.as_str().into();
        o["latest_charge"] = self.cast.charge.as_str().into();
        if event_type.ends_with("succeeded") {
            o["status"] = "succeeded".into();
            o["amount_received"] = amount.into();
            o["last_payment_error"] = Value::Null;
        } else {
            o["status"] = "requires_payment_method".into();
            o["amount_received"] = 0.into();
            o["last_payment_error"] = json!({ "type": "card_error", "code": "card_declined",
                "decline_code": "insufficient_funds", "message": "Your card has insufficient funds." });
        }
        if self.shape == ApiShape::Acacia {
            o["invoice"] = Value::Null;
        }
        self.event(event_type, o)
    }

    pub fn session(&self, event_type: &str, mode: &str, amount: i64) -> Value {
        let mut o = fixtures::object(self.shape, "checkout.session");
        let completed = event_type.ends_with("completed");
        o["id"] = self.cast.session.as_str().into();
        o["mode"] = mode.into();
        o["status"] = if completed { "complete" } else { "expired" }.into();
        o["payment_status"] = if completed { "paid" } else { "unpaid" }.into();
        o["amount_total"] = amount.into();
        o["amount_subtotal"] = amount.into();
        o["currency"] = "usd".into();
        o["created"] = self.t0.into();
        o["customer_details"] = json!({ "email": self.cast.email, "name": self.cast.name });
        if mode == "subscription" {
            o["customer"] = self.cast.customer.as_str().into();
            o["payment_intent"] = Value::Null;
            o["subscription"] = self.cast.subscription.as_str().into();
            o["invoice"] = self.cast.first_invoice.as_str().into();
            o["client_reference_id"] = Value::Null;
        } else {
            o["customer"] = self.cast.customer.as_str().into();
            o["payment_intent"] = self.cast.payment_intent.as_str().into();
            o["subscription"] = Value::Null;
            o["invoice"] = Value::Null;
            o["client_reference_id"] = self.cast.order_reference.as_str().into();
        }
        self.event(event_type, o)
    }

    pub fn charge_refunded(&self, amount_refunded: i64, refunds: &[(&str, i64)]) -> Value {
        let mut o = fixtures::object(self.shape, "charge");
        o["id"] = self.cast.charge.as_str().into();
        o["amount"] = 5000.into();
        o["amount_captured"] = 5000.into();
        o["amount_refunded"] = amount_refunded.into();
        o["refunded"] = (amount_refunded == 5000).into();
        o["currency"] = "usd".into();
        o["customer"] = self.cast.customer.as_str().into();
        o["payment_intent"] = self.cast.payment_intent.as_str().into();
        o["status"] = "succeeded".into();
        o["created"] = self.t0.into();
        let template = fixtures::object(self.shape, "refund");
        let data: Vec<Value> = refunds
            .iter()
            .enumerate()
            .map(|(n, (id, amount))| {
                let mut r = template.clone();
                r["id"] = (*id).into();
                r["amount"] = (*amount).into();
                r["currency"] = "usd".into();
                r["charge"] = self.cast.charge.as_str().into();
                r["payment_intent"] = self.cast.payment_intent.as_str().into();
                r["status"] = "succeeded".into();
                r["reason"] = "requested_by_customer".into();
                r["created"] = (self.t0 + 100 + n as i64).into();
                r
            })
            .collect();
        o["refunds"] = json!({ "object": "list", "data": data, "has_more": false,
                               "url": format!("/v1/charges/{}/refunds", self.cast.charge) });
        self.event("charge.refunded", o)
    }

    /// The subscription in `status`, its period starting `period_day` days after `t0`.
    pub fn subscription(&self, event_type: &str, status: &str, period_day: i64) -> Value {
        let mut o = fixtures::object(self.shape, "subscription");
        let start = self.t0 + period_day * DAY;
        let end = start + 30 * DAY;
        o["id"] = self.cast.subscription.as_str().into();
        o["customer"] = self.cast.customer.as_str().into();
        o["status"] = status.into();
        o["created"] = self.t0.into();
        o["start_date"] = self.t0.into();
        o["cancel_at_period_end"] = false.into();
        o["pause_collection"] = Value::Null;
        o["default_payment_method"] = Value::Null;
        let trial = matches!(status, "trialing" | "paused") || period_day == 14;
        o["trial_start"] = if trial { self.t0.into() } else { Value::Null };
        o["trial_end"] = if trial {
            (self.t0 + 14 * DAY).into()
        } else {
            Value::Null
        };
        let ended = status == "canceled";
        o["canceled_at"] = if ended {
            (start + 10 * DAY).into()
        } else {
            Value::Null
        };
        o["ended_at"] = if ended {
            (start + 10 * DAY).into()
        } else {
            Value::Null
        };
        let mut item = o["items"]["data"][0].clone();
        item["id"] = self.cast.item.as_str().into();
        item["subscription"] = self.cast.subscription.as_str().into();
        item["created"] = self.t0.into();
        item["quantity"] = 1.into();
        item["price"]["id"] = self.cast.price.as_str().into();
        item["price"]["product"] = self.cast.product.as_str().into();
        item["price"]["unit_amount"] = 2000.into();
        item["price"]["currency"] = "usd".into();
        item["plan"]["id"] = self.cast.price.as_str().into();
        item["plan"]["product"] = self.cast.product.as_str().into();
        item["plan"]["currency"] = "usd".into();
        match self.shape {
            ApiShape::Acacia => {
                o["current_period_start"] = start.into();
                o["current_period_end"] = end.into();
            }
            ApiShape::Dahlia => {
                item["current_period_start"] = start.into();
                item["current_period_end"] = end.into();
            }
        }
        o["items"]["data"] = json!([item]);
        o["items"]["url"] = format!(
            "/v1/subscription_items?subscription={}",
            self.cast.subscription
        )
        .into();
        self.event(event_type, o)
    }

    /// A subscription invoice for the period starting `period_day` days after `t0`.
    pub fn invoice(
        &self,
        event_type: &str,
        id: &str,
        status: &str,
        attempt: i64,
        period_day: i64,
    ) -> Value {
        let mut o = fixtures::object(self.shape, "invoice");
        let start = self.t0 + period_day * DAY;
        let paid = status == "paid";
        let payment_intent = Cast::invoice_payment_intent(id);
        o["id"] = id.into();
        o["customer"] = self.cast.customer.as_str().into();
        o["customer_email"] = self.cast.email.as_str().into();
        o["status"] = status.into();
        o["currency"] = "usd".into();
        o["amount_due"] = 2000.into();
        o["amount_paid"] = if paid { 2000 } else { 0 }.into();
        o["amount_remaining"] = if paid { 0 } else { 2000 }.into();
        o["attempt_count"] = attempt.into();
        o["billing_reason"] = if period_day == 0 {
            "subscription_create"
        } else {
            "subscription_cycle"
        }
        .into();
        o["created"] = start.into();
        o["period_start"] = start.into();
        o["period_end"] = (start + 30 * DAY).into();
        o["status_transitions"] = json!({
            "finalized_at": start + 3600,
            "paid_at": if paid { json!(start + 3600 + attempt * DAY) } else { Value::Null },
            "voided_at": null, "marked_uncollectible_at": null,
        });
        o["lines"]["data"][0]["amount"] = 2000.into();
        o["lines"]["data"][0]["invoice"] = id.into();
        match self.shape {
            ApiShape::Acacia => {
                o["subscription"] = self.cast.subscription.as_str().into();
                o["payment_intent"] = payment_intent.into();
                o["paid"] = paid.into();
                o["lines"]["data"][0]["subscription"] = self.cast.subscription.as_str().into();
            }
            ApiShape::Dahlia => {
                o["parent"] = json!({
                    "type": "subscription_details",
                    "quote_details": null,
                    "subscription_details": { "metadata": {}, "subscription": self.cast.subscription },
                });
                let mut payment: Value = serde_json::from_str(include_str!(
                    "../../fixtures/stripe/2026-07-29.dahlia/invoice_payment.json"
                ))
                .unwrap_or_else(|e| panic!("invoice_payment fixture: {e}"));
                payment["id"] = format!("inpay_{}", id.get(3..).unwrap_or(id)).into();
                payment["invoice"] = id.into();
                payment["currency"] = "usd".into();
                payment["amount_requested"] = 2000.into();
                payment["amount_paid"] = if paid { json!(2000) } else { Value::Null };
                payment["status"] = if paid { "paid" } else { "open" }.into();
                payment["payment"] =
                    json!({ "type": "payment_intent", "payment_intent": payment_intent });
                o["payments"] = json!({ "object": "list", "data": [payment], "has_more": false,
                                        "url": format!("/v1/invoices/{id}/payments") });
            }
        }
        self.event(event_type, o)
    }
}
