//! What a sync lists for each object type: the list endpoint, its parameters (what it would
//! hide, what it must expand), the version an object fetched at a given time has, and which
//! handler's mirror write it goes through.

use serde_json::Value;
use sqlx::PgConnection;

use crate::billing::version::{Version, Write};
use crate::billing::{checkout, customer, invoice, payment, payment_method, subscription};
use crate::queue::JobError;
use crate::stripe::fields;

/// The object types a sync lists, in the order `all` runs them: customers first (payment
/// methods are listed per customer in the mirror), then what refers to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectType {
    Customers,
    PaymentMethods,
    Subscriptions,
    Invoices,
    PaymentIntents,
    Charges,
    CheckoutSessions,
}

impl ObjectType {
    /// Every type, in the order `all` lists them.
    pub const ALL: [ObjectType; 7] = [
        Self::Customers,
        Self::PaymentMethods,
        Self::Subscriptions,
        Self::Invoices,
        Self::PaymentIntents,
        Self::Charges,
        Self::CheckoutSessions,
    ];

    /// The name on the command line and in `sync_runs.types` / `sync_progress.object_type`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Customers => "customers",
            Self::PaymentMethods => "payment_methods",
            Self::Subscriptions => "subscriptions",
            Self::Invoices => "invoices",
            Self::PaymentIntents => "payment_intents",
            Self::Charges => "charges",
            Self::CheckoutSessions => "checkout_sessions",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The `audit_log.entity` of its rows, as the event handlers name it.
    pub fn entity(self) -> &'static str {
        match self {
            Self::Customers => "customer",
            Self::PaymentMethods => "payment_method",
            Self::Subscriptions => "subscription",
            Self::Invoices => "invoice",
            Self::PaymentIntents | Self::Charges => "payment",
            Self::CheckoutSessions => "checkout_session",
        }
    }

    /// The list endpoint; `None` for payment methods, listed per customer
    /// ([`customer_payment_methods_path`]).
    pub fn list_path(self) -> Option<&'static str> {
        match self {
            Self::Customers => Some("/v1/customers"),
            Self::PaymentMethods => None,
            Self::Subscriptions => Some("/v1/subscriptions"),
            Self::Invoices => Some("/v1/invoices"),
            Self::PaymentIntents => Some("/v1/payment_intents"),
            Self::Charges => Some("/v1/charges"),
            Self::CheckoutSessions => Some("/v1/checkout/sessions"),
        }
    }

    /// The parameters the list needs besides paging and `created`.
    pub fn query(self) -> Vec<(&'static str, String)> {
        match self {
            // The default list hides canceled and incomplete_expired subscriptions; the mirror
            // keeps them too (an ended subscription must not look unknown).
            Self::Subscriptions => vec![("status", "all".to_owned())],
            // From 2025-03-31 an invoice names its PaymentIntent only among its payments, which
            // a list leaves out unless expanded (`invoices.payment_intent_id` reads them).
            // Older API versions name it at the top (`payment_intent`) and have no `payments`
            // to expand: see [`ObjectType::optional_expansion`].
            Self::Invoices => vec![("expand[]", "data.payments".to_owned())],
            // Since 2022-11-15 a charge's refunds are left out unless expanded; the mirror
            // writes them (`refunds`) and counts their times in the charge's version.
            Self::Charges => vec![("expand[]", "data.refunds".to_owned())],
            _ => Vec::new(),
        }
    }

    /// An expansion Stripe may refuse (400) because the account's API version has no such
    /// field; the list is then read without it. Invoices' `payments` exist from 2025-03-31.
    pub fn optional_expansion(self) -> Option<&'static str> {
        (self == Self::Invoices).then_some("data.payments")
    }

    /// The version of `object` fetched at `fetched_at` (Unix seconds, taken before the page's
    /// request was sent): that time as the event time, and the object's time fields as the
    /// event handler of its table reads them.
    pub fn version_at(self, object: &Value, fetched_at: i64) -> Version {
        match self {
            Self::Customers => Version::at(fetched_at, object, customer::TIME_PATHS),
            Self::PaymentMethods => Version::at(fetched_at, object, payment_method::TIME_PATHS),
            Self::Subscriptions => subscription::version_at(object, fetched_at),
            Self::Invoices => Version::at(fetched_at, object, invoice::TIME_PATHS),
            Self::PaymentIntents => {
                Version::at(fetched_at, object, payment::PAYMENT_INTENT_TIME_PATHS)
            }
            Self::Charges => payment::charge_version_at(object, fetched_at),
            Self::CheckoutSessions => Version::at(fetched_at, object, checkout::TIME_PATHS),
        }
    }

    /// Writes `write` through the mirror write its event handler uses, with no effects;
    /// `source` goes to `last_event_id`. `false`: the mirror's row is newer and was kept.
    pub async fn write_mirror(
        self,
        conn: &mut PgConnection,
        id: &str,
        write: &Write<'_>,
        source: &str,
    ) -> Result<bool, JobError> {
        let object = write.object.as_ref();
        match self {
            Self::Customers => {
                let deleted = customer::is_deleted(object);
                customer::write_mirror(conn, id, write, source, deleted).await
            }
            Self::PaymentMethods => {
                let customer = fields::id_at(object, "customer");
                payment_method::write_mirror(conn, id, write, source, customer).await
            }
            Self::Subscriptions => subscription::write_mirror(conn, id, write, source).await,
            Self::Invoices => invoice::write_mirror(conn, id, write, source).await,
            Self::PaymentIntents => {
                payment::write_payment_intent_mirror(conn, id, write, source).await
            }
            Self::Charges => payment::write_charge_mirror(conn, id, write, source).await,
            Self::CheckoutSessions => checkout::write_mirror(conn, id, write, source).await,
        }
    }
}

/// A customer's payment methods. Stripe's `/v1/payment_methods` without `customer` lists the
/// Treasury payment methods of the account, not customers' cards, so each customer of the
/// mirror is asked in turn.
pub fn customer_payment_methods_path(customer: &str) -> String {
    format!("/v1/customers/{customer}/payment_methods")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_round_trip_and_all_runs_customers_first() {
        for t in ObjectType::ALL {
            assert_eq!(ObjectType::from_name(t.name()), Some(t));
        }
        assert_eq!(ObjectType::ALL[0], ObjectType::Customers);
        assert_eq!(ObjectType::ALL[1], ObjectType::PaymentMethods);
    }

    #[test]
    fn a_synced_version_is_the_fetch_time_and_the_handlers_object_time() {
        let charge = json!({ "created": 100, "refunds": { "data": [{ "created": 300 }] } });
        let version = ObjectType::Charges.version_at(&charge, 5_000);
        assert_eq!((version.event_time, version.object_time), (5_000, 300));
        let subscription = json!({ "created": 100,
            "items": { "data": [{ "current_period_start": 700 }] } });
        let version = ObjectType::Subscriptions.version_at(&subscription, 5_000);
        assert_eq!((version.event_time, version.object_time), (5_000, 700));
    }
}
