//! What handlers need besides the transaction and the event: the configured features.

use super::ledger::LedgerRule;
use crate::dunning::Dunning;
use crate::email::Mailer;
use crate::notify::Outbox;
use crate::stripe::StripeApi;

/// The features an event can set off, as configured.
#[derive(Clone)]
pub struct Context {
    /// Notices to the host application.
    pub outbox: Outbox,
    /// How paid amounts and refunds become ledger entries.
    pub ledger: LedgerRule,
    /// Stripe's API, when a key is configured: settles same-second ties.
    pub stripe: Option<StripeApi>,
    /// Emails to customers.
    pub mailer: Mailer,
    /// Opens dunning runs for unpaid subscription invoices.
    pub dunning: Dunning,
}
