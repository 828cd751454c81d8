//! Billing scenarios as a real account would deliver them: the events of a story in the order
//! they happened, built from Stripe's example objects in either API shape, with distinct
//! `created` times one second apart. Ids are fixed per scenario so tests can name them.

use serde_json::{Value, json};

use crate::fixtures::{self, ApiShape};

/// The first event's `created`; each further event is one second later.
const T0: i64 = 1_790_000_000;
const DAY: i64 = 86_400;

pub const CUSTOMER: &str = "cus_Scenario0001";
pub const EMAIL: &str = "buyer@example.com";
pub const SESSION: &str = "cs_test_Scenario0001";
pub const PAYMENT_INTENT: &str = "pi_Scenario0001";
pub const CHARGE: &str = "ch_Scenario0001";
pub const SUBSCRIPTION: &str = "sub_Scenario0001";
pub const ITEM: &str = "si_Scenario0001";
pub const PRICE: &str = "price_Scenario0001";
pub const PRODUCT: &str = "prod_Scenario0001";
pub const FIRST_INVOICE: &str = "in_Scenario0001";
pub const RENEWAL_INVOICE: &str = "in_Scenario0002";
pub const PAYMENT_METHOD: &str = "pm_Scenario0001";
/// The application's own reference for the order of a one-time checkout.
pub const ORDER_REFERENCE: &str = "order_1001";

/// The stories the billing tests tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// A one-time Checkout paid (order created by the application first), then fully refunded.
    CheckoutPaidThenRefunded,
    /// A one-time Checkout paid, then 20 of its 50 refunded.
    PartialRefund,
    /// A subscription signup through Checkout.
    SubscriptionSignup,
    /// A renewal whose payment fails, then succeeds on a retry.
    RenewalFailsThenRecovers,
    /// A renewal that never gets paid: the subscription ends deleted.
    RenewalNeverRecovers,
    /// A trial that ends without a card (paused), then resumes once one is attached.
    TrialPausesAndResumes,
    /// A Checkout paid for an order the application never created.
    OrderNeverCreated,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Self::CheckoutPaidThenRefunded,
        Self::PartialRefund,
        Self::SubscriptionSignup,
        Self::RenewalFailsThenRecovers,
        Self::RenewalNeverRecovers,
        Self::TrialPausesAndResumes,
        Self::OrderNeverCreated,
    ];

    /// Whether the application creates the order (pending) before the events arrive: for the
    /// one-time checkouts, by its reference and the session id.
    pub fn app_creates_order(self) -> bool {
        matches!(self, Self::CheckoutPaidThenRefunded | Self::PartialRefund)
    }

    /// The events, in the order they happened.
    pub fn events(self, shape: ApiShape) -> Vec<Value> {
        let b = Builder { shape };
        let mut events = match self {
            Self::CheckoutPaidThenRefunded => vec![
                b.customer("customer.created"),
                b.payment_intent("payment_intent.succeeded", 5000),
                b.session("checkout.session.completed", "payment", 5000),
                b.charge_refunded(5000, &[("re_Scenario0001", 5000)]),
            ],
            Self::PartialRefund => vec![
                b.customer("customer.created"),
                b.payment_intent("payment_intent.succeeded", 5000),
                b.session("checkout.session.completed", "payment", 5000),
                b.charge_refunded(2000, &[("re_Scenario0001", 2000)]),
            ],
            Self::SubscriptionSignup => vec![
                b.customer("customer.created"),
                b.payment_method("payment_method.attached"),
                b.subscription("customer.subscription.created", "active", 0),
                b.invoice("invoice.paid", FIRST_INVOICE, "paid", 1, 0),
                b.session("checkout.session.completed", "subscription", 2000),
            ],
            Self::RenewalFailsThenRecovers => vec![
                b.customer("customer.created"),
                b.subscription("customer.subscription.created", "active", 0),
                b.invoice("invoice.paid", FIRST_INVOICE, "paid", 1, 0),
                b.invoice("invoice.payment_failed", RENEWAL_INVOICE, "open", 1, 30),
                b.subscription("customer.subscription.updated", "past_due", 30),
                b.invoice("invoice.paid", RENEWAL_INVOICE, "paid", 2, 30),
                b.subscription("customer.subscription.updated", "active", 30),
            ],
            Self::RenewalNeverRecovers => vec![
                b.customer("customer.created"),
                b.subscription("customer.subscription.created", "active", 0),
                b.invoice("invoice.paid", FIRST_INVOICE, "paid", 1, 0),
                b.invoice("invoice.payment_failed", RENEWAL_INVOICE, "open", 1, 30),
                b.subscription("customer.subscription.updated", "past_due", 30),
                b.invoice("invoice.payment_failed", RENEWAL_INVOICE, "open", 2, 30),
                b.subscription("customer.subscription.deleted", "canceled", 30),
            ],
            Self::TrialPausesAndResumes => vec![
                b.customer("customer.created"),
                b.subscription("customer.subscription.created", "trialing", 0),
                b.subscription("customer.subscription.trial_will_end", "trialing", 0),
                b.subscription("customer.subscription.paused", "paused", 14),
                b.payment_method("payment_method.attached"),
                b.subscription("customer.subscription.resumed", "active", 20),
                b.invoice("invoice.paid", RENEWAL_INVOICE, "paid", 1, 20),
            ],
            Self::OrderNeverCreated => vec![
                b.session("checkout.session.completed", "payment", 5000),
                b.payment_intent("payment_intent.succeeded", 5000),
            ],
        };
        for (n, event) in events.iter_mut().enumerate() {
            event["created"] = (T0 + n as i64).into();
        }
        events
    }
}

struct Builder {
    shape: ApiShape,
}

impl Builder {
    fn event(&self, event_type: &str, object: Value) -> Value {
        fixtures::envelope(event_type, self.shape, object)
    }

    fn customer(&self, event_type: &str) -> Value {
        let mut o = fixtures::object(self.shape, "customer");
        o["id"] = CUSTOMER.into();
        o["email"] = EMAIL.into();
        o["name"] = "Jenny Rosen".into();
        o["created"] = T0.into();
        self.event(event_type, o)
    }

    fn payment_method(&self, event_type: &str) -> Value {
        let mut o = fixtures::object(self.shape, "payment_method");
        o["id"] = PAYMENT_METHOD.into();
        o["customer"] = CUSTOMER.into();
        o["created"] = T0.into();
        self.event(event_type, o)
    }

    fn payment_intent(&self, event_type: &str, amount: i64) -> Value {
        let mut o = fixtures::object(self.shape, "payment_intent");
        o["id"] = PAYMENT_INTENT.into();
        o["amount"] = amount.into();
        o["currency"] = "usd".into();
        o["customer"] = CUSTOMER.into();
        o["created"] = T0.into();
        o["canceled_at"] = Value::Null;
        o["next_action"] = Value::Null;
        o["receipt_email"] = EMAIL.into();
        o["latest_charge"] = CHARGE.into();
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

    fn session(&self, event_type: &str, mode: &str, amount: i64) -> Value {
        let mut o = fixtures::object(self.shape, "checkout.session");
        let completed = event_type.ends_with("completed");
        o["id"] = SESSION.into();
        o["mode"] = mode.into();
        o["status"] = if completed { "complete" } else { "expired" }.into();
        o["payment_status"] = if completed { "paid" } else { "unpaid" }.into();
        o["amount_total"] = amount.into();
        o["amount_subtotal"] = amount.into();
        o["currency"] = "usd".into();
        o["created"] = T0.into();
        o["customer_details"] = json!({ "email": EMAIL, "name": "Jenny Rosen" });
        if mode == "subscription" {
            o["customer"] = CUSTOMER.into();
            o["payment_intent"] = Value::Null;
            o["subscription"] = SUBSCRIPTION.into();
            o["invoice"] = FIRST_INVOICE.into();
            o["client_reference_id"] = Value::Null;
        } else {
            o["customer"] = CUSTOMER.into();
            o["payment_intent"] = PAYMENT_INTENT.into();
            o["subscription"] = Value::Null;
            o["invoice"] = Value::Null;
            o["client_reference_id"] = ORDER_REFERENCE.into();
        }
        self.event(event_type, o)
    }

    fn charge_refunded(&self, amount_refunded: i64, refunds: &[(&str, i64)]) -> Value {
        let mut o = fixtures::object(self.shape, "charge");
        o["id"] = CHARGE.into();
        o["amount"] = 5000.into();
        o["amount_captured"] = 5000.into();
        o["amount_refunded"] = amount_refunded.into();
        o["refunded"] = (amount_refunded == 5000).into();
        o["currency"] = "usd".into();
        o["customer"] = CUSTOMER.into();
        o["payment_intent"] = PAYMENT_INTENT.into();
        o["status"] = "succeeded".into();
        o["created"] = T0.into();
        let template = fixtures::object(self.shape, "refund");
        let data: Vec<Value> = refunds
            .iter()
            .enumerate()
            .map(|(n, (id, amount))| {
                let mut r = template.clone();
                r["id"] = (*id).into();
                r["amount"] = (*amount).into();
                r["currency"] = "usd".into();
                r["charge"] = CHARGE.into();
                r["payment_intent"] = PAYMENT_INTENT.into();
                r["status"] = "succeeded".into();
                r["reason"] = "requested_by_customer".into();
                r["created"] = (T0 + 100 + n as i64).into();
                r
            })
            .collect();
        o["refunds"] = json!({ "object": "list", "data": data, "has_more": false,
                               "url": format!("/v1/charges/{CHARGE}/refunds") });
        self.event("charge.refunded", o)
    }

    /// The subscription in `status`, its period starting `period_day` days after T0.
    fn subscription(&self, event_type: &str, status: &str, period_day: i64) -> Value {
        let mut o = fixtures::object(self.shape, "subscription");
        let start = T0 + period_day * DAY;
        let end = start + 30 * DAY;
        o["id"] = SUBSCRIPTION.into();
        o["customer"] = CUSTOMER.into();
        o["status"] = status.into();
        o["created"] = T0.into();
        o["start_date"] = T0.into();
        o["cancel_at_period_end"] = false.into();
        o["pause_collection"] = Value::Null;
        o["default_payment_method"] = Value::Null;
        let trial = matches!(status, "trialing" | "paused") || period_day == 14;
        o["trial_start"] = if trial { T0.into() } else { Value::Null };
        o["trial_end"] = if trial {
            (T0 + 14 * DAY).into()
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
        item["id"] = ITEM.into();
        item["subscription"] = SUBSCRIPTION.into();
        item["created"] = T0.into();
        item["quantity"] = 1.into();
        item["price"]["id"] = PRICE.into();
        item["price"]["product"] = PRODUCT.into();
        item["price"]["unit_amount"] = 2000.into();
        item["price"]["currency"] = "usd".into();
        item["plan"]["id"] = PRICE.into();
        item["plan"]["product"] = PRODUCT.into();
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
        o["items"]["url"] = format!("/v1/subscription_items?subscription={SUBSCRIPTION}").into();
        self.event(event_type, o)
    }

    /// A subscription invoice for the period starting `period_day` days after T0.
    fn invoice(
        &self,
        event_type: &str,
        id: &str,
        status: &str,
        attempt: i64,
        period_day: i64,
    ) -> Value {
        let mut o = fixtures::object(self.shape, "invoice");
        let start = T0 + period_day * DAY;
        let paid = status == "paid";
        let payment_intent = format!("pi_{}", &id[3..]);
        o["id"] = id.into();
        o["customer"] = CUSTOMER.into();
        o["customer_email"] = EMAIL.into();
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
                o["subscription"] = SUBSCRIPTION.into();
                o["payment_intent"] = payment_intent.into();
                o["paid"] = paid.into();
                o["lines"]["data"][0]["subscription"] = SUBSCRIPTION.into();
            }
            ApiShape::Dahlia => {
                o["parent"] = json!({
                    "type": "subscription_details",
                    "quote_details": null,
                    "subscription_details": { "metadata": {}, "subscription": SUBSCRIPTION },
                });
                let mut payment: Value = serde_json::from_str(include_str!(
                    "../fixtures/stripe/2026-07-29.dahlia/invoice_payment.json"
                ))
                .unwrap_or_else(|e| panic!("invoice_payment fixture: {e}"));
                payment["id"] = format!("inpay_{}", &id[3..]).into();
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
