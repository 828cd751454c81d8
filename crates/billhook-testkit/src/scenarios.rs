//! Billing scenarios as a real account would deliver them: the events of a story in the order
//! they happened, built from Stripe's example objects in either API shape, with distinct
//! `created` times one second apart. Ids are fixed per scenario so tests can name them.

use serde_json::Value;

use crate::fixtures::ApiShape;
use crate::objects::{Builder, Cast};

/// The first event's `created`; each further event is one second later.
const T0: i64 = 1_790_000_000;

pub const CUSTOMER: &str = "cus_Scenario0001";
pub const EMAIL: &str = "buyer@example.com";
pub const SESSION: &str = "cs_test_Scenario0001";
pub const PAYMENT_INTENT: &str = "pi_Scenario0001";
pub const CHARGE: &str = "ch_Scenario0001";
pub const REFUND: &str = "re_Scenario0001";
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
        let cast = cast();
        let b = Builder {
            shape,
            cast: &cast,
            t0: T0,
        };
        let mut events = match self {
            Self::CheckoutPaidThenRefunded => vec![
                b.customer("customer.created"),
                b.payment_intent("payment_intent.succeeded", 5000),
                b.session("checkout.session.completed", "payment", 5000),
                b.charge_refunded(5000, &[(REFUND, 5000)]),
            ],
            Self::PartialRefund => vec![
                b.customer("customer.created"),
                b.payment_intent("payment_intent.succeeded", 5000),
                b.session("checkout.session.completed", "payment", 5000),
                b.charge_refunded(2000, &[(REFUND, 2000)]),
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

/// The scenarios' ids, as the constants above name them.
fn cast() -> Cast {
    Cast {
        customer: CUSTOMER.to_owned(),
        email: EMAIL.to_owned(),
        name: "Jenny Rosen".to_owned(),
        session: SESSION.to_owned(),
        payment_intent: PAYMENT_INTENT.to_owned(),
        charge: CHARGE.to_owned(),
        refund: REFUND.to_owned(),
        subscription: SUBSCRIPTION.to_owned(),
        item: ITEM.to_owned(),
        price: PRICE.to_owned(),
        product: PRODUCT.to_owned(),
        payment_method: PAYMENT_METHOD.to_owned(),
        first_invoice: FIRST_INVOICE.to_owned(),
        renewal_invoice: RENEWAL_INVOICE.to_owned(),
        order_reference: ORDER_REFERENCE.to_owned(),
    }
}
