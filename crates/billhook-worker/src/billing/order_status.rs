//! An order's status as a pure function of what the mirror holds about its payment: the
//! Checkout Session, the PaymentIntent and its charges' refunds. Not of the last event seen,
//! so an order ends the same whatever order its events arrive in (docs/operations.md):
//!
//! - paid: the session is complete and paid (or needed no payment), or the PaymentIntent
//!   succeeded; then `refunded` / `partially_refunded` once its charges have refunds. The
//!   application's own `fulfilled` / `fulfillment_failed` are kept until a refund;
//! - otherwise `cancelled` (the session expired), `failed` (the PaymentIntent's last attempt
//!   failed and it waits for another payment method, or was cancelled), or `pending`.

/// An order's status, as stored in `orders.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Pending,
    Paid,
    /// Set by the application once it has delivered.
    Fulfilled,
    /// Set by the application when delivery failed.
    FulfillmentFailed,
    Failed,
    Cancelled,
    Refunded,
    PartiallyRefunded,
}

impl OrderStatus {
    pub const ALL: [Self; 8] = [
        Self::Pending,
        Self::Paid,
        Self::Fulfilled,
        Self::FulfillmentFailed,
        Self::Failed,
        Self::Cancelled,
        Self::Refunded,
        Self::PartiallyRefunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::Fulfilled => "fulfilled",
            Self::FulfillmentFailed => "fulfillment_failed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
            Self::PartiallyRefunded => "partially_refunded",
        }
    }

    /// The stored status; `None` for one Billhook does not know (the application's own).
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == stored)
    }
}

/// A Checkout Session's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Open,
    Complete,
    Expired,
    Other,
}

impl SessionStatus {
    pub fn from_stripe(status: &str) -> Self {
        match status {
            "open" => Self::Open,
            "complete" => Self::Complete,
            "expired" => Self::Expired,
            _ => Self::Other,
        }
    }
}

/// A Checkout Session's `payment_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionPayment {
    Paid,
    NoPaymentRequired,
    Unpaid,
    Other,
}

impl SessionPayment {
    pub fn from_stripe(status: &str) -> Self {
        match status {
            "paid" => Self::Paid,
            "no_payment_required" => Self::NoPaymentRequired,
            "unpaid" => Self::Unpaid,
            _ => Self::Other,
        }
    }
}

/// A PaymentIntent's `status`, as far as an order cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentStatus {
    Succeeded,
    /// The last attempt failed; it waits for another payment method.
    RequiresPaymentMethod,
    Canceled,
    /// Processing, requires_action, requires_confirmation, requires_capture…
    InProgress,
}

impl IntentStatus {
    pub fn from_stripe(status: &str) -> Self {
        match status {
            "succeeded" => Self::Succeeded,
            "requires_payment_method" => Self::RequiresPaymentMethod,
            "canceled" => Self::Canceled,
            _ => Self::InProgress,
        }
    }
}

/// What the mirror says about an order's payment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PaymentFacts {
    pub session: Option<SessionStatus>,
    pub session_payment: Option<SessionPayment>,
    pub intent: Option<IntentStatus>,
    /// The PaymentIntent recorded a failure (a decline code or message).
    pub failure_recorded: bool,
    /// The refunded total of the PaymentIntent's charges, minor units.
    pub refunded: i64,
}

/// The order's status now, and the figures that go with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub status: OrderStatus,
    pub paid: bool,
    /// The refunded total counted on the order: 0 unless it is paid.
    pub refunded: i64,
}

/// Decides the status of an order whose stored status is `current` (`None`: one Billhook does
/// not know) and whose amount is `amount`, from `facts`.
pub fn decide(current: Option<OrderStatus>, amount: Option<i64>, facts: &PaymentFacts) -> Decision {
    let session_paid = facts.session == Some(SessionStatus::Complete)
        && matches!(
            facts.session_payment,
            Some(SessionPayment::Paid | SessionPayment::NoPaymentRequired)
        );
    let paid = session_paid || facts.intent == Some(IntentStatus::Succeeded);
    let refunded = if paid { facts.refunded } else { 0 };
    let status = if paid && refunded > 0 {
        if amount.is_some_and(|a| refunded >= a) {
            OrderStatus::Refunded
        } else {
            OrderStatus::PartiallyRefunded
        }
    } else if paid {
        match current {
            Some(kept @ (OrderStatus::Fulfilled | OrderStatus::FulfillmentFailed)) => kept,
            _ => OrderStatus::Paid,
        }
    } else if facts.session == Some(SessionStatus::Expired) {
        OrderStatus::Cancelled
    } else if facts.failure_recorded
        && matches!(
            facts.intent,
            Some(IntentStatus::RequiresPaymentMethod | IntentStatus::Canceled)
        )
    {
        OrderStatus::Failed
    } else {
        OrderStatus::Pending
    };
    Decision {
        status,
        paid,
        refunded,
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;
    use super::*;

    const AMOUNT: Option<i64> = Some(5000);

    fn session(status: SessionStatus, payment: SessionPayment) -> PaymentFacts {
        PaymentFacts {
            session: Some(status),
            session_payment: Some(payment),
            ..PaymentFacts::default()
        }
    }

    fn intent(status: IntentStatus, failure_recorded: bool) -> PaymentFacts {
        PaymentFacts {
            intent: Some(status),
            failure_recorded,
            ..PaymentFacts::default()
        }
    }

    fn status(current: OrderStatus, facts: PaymentFacts) -> OrderStatus {
        decide(Some(current), AMOUNT, &facts).status
    }

    #[test]
    fn an_order_with_nothing_known_stays_pending() {
        assert_eq!(status(Pending, PaymentFacts::default()), Pending);
        let open = session(SessionStatus::Open, SessionPayment::Unpaid);
        assert_eq!(status(Pending, open), Pending);
        let processing = intent(IntentStatus::InProgress, false);
        assert_eq!(status(Pending, processing), Pending);
    }

    #[test]
    fn pending_becomes_paid_by_a_paid_session_or_a_succeeded_payment() {
        let paid = session(SessionStatus::Complete, SessionPayment::Paid);
        assert_eq!(status(Pending, paid), Paid);
        let free = session(SessionStatus::Complete, SessionPayment::NoPaymentRequired);
        assert_eq!(status(Pending, free), Paid);
        let succeeded = intent(IntentStatus::Succeeded, false);
        let decision = decide(Some(Pending), AMOUNT, &succeeded);
        assert_eq!(decision.status, Paid);
        assert!(decision.paid);
    }

    #[test]
    fn a_complete_session_not_yet_paid_is_not_paid() {
        // Delayed payment methods: the session completes before the money arrives.
        let unpaid = session(SessionStatus::Complete, SessionPayment::Unpaid);
        assert_eq!(status(Pending, unpaid), Pending);
        assert!(!decide(Some(Pending), AMOUNT, &unpaid).paid);
    }

    #[test]
    fn the_applications_fulfilment_statuses_are_kept_while_paid() {
        let paid = intent(IntentStatus::Succeeded, false);
        assert_eq!(status(Fulfilled, paid), Fulfilled);
        assert_eq!(status(FulfillmentFailed, paid), FulfillmentFailed);
        // A status Billhook does not know is not kept.
        assert_eq!(decide(None, AMOUNT, &paid).status, Paid);
    }

    #[test]
    fn a_failed_attempt_fails_the_order_until_a_payment_succeeds() {
        let declined = intent(IntentStatus::RequiresPaymentMethod, true);
        assert_eq!(status(Pending, declined), Failed);
        let canceled = intent(IntentStatus::Canceled, true);
        assert_eq!(status(Pending, canceled), Failed);
        // Without a recorded failure, waiting for a payment method is still pending.
        let waiting = intent(IntentStatus::RequiresPaymentMethod, false);
        assert_eq!(status(Pending, waiting), Pending);
        // Retried and succeeded: paid.
        let succeeded = intent(IntentStatus::Succeeded, true);
        assert_eq!(status(Failed, succeeded), Paid);
    }

    #[test]
    fn an_expired_unpaid_session_cancels_the_order() {
        let expired = session(SessionStatus::Expired, SessionPayment::Unpaid);
        assert_eq!(status(Pending, expired), Cancelled);
        // Expiry wins over a recorded failure.
        let facts = PaymentFacts {
            intent: Some(IntentStatus::RequiresPaymentMethod),
            failure_recorded: true,
            ..expired
        };
        assert_eq!(status(Pending, facts), Cancelled);
        // A payment that succeeded anyway makes it paid.
        let facts = PaymentFacts {
            intent: Some(IntentStatus::Succeeded),
            ..expired
        };
        assert_eq!(status(Cancelled, facts), Paid);
    }

    #[test]
    fn refunds_of_a_paid_order_refund_it_partly_or_fully() {
        let partly = PaymentFacts {
            refunded: 1000,
            ..intent(IntentStatus::Succeeded, false)
        };
        assert_eq!(status(Paid, partly), PartiallyRefunded);
        let decision = decide(Some(Paid), AMOUNT, &partly);
        assert_eq!(decision.refunded, 1000);
        let fully = PaymentFacts {
            refunded: 5000,
            ..partly
        };
        assert_eq!(status(PartiallyRefunded, fully), Refunded);
        // A refund ends the application's fulfilment statuses too.
        assert_eq!(status(Fulfilled, fully), Refunded);
        assert_eq!(status(FulfillmentFailed, partly), PartiallyRefunded);
        // With no amount known, any refund is partial.
        assert_eq!(decide(Some(Paid), None, &fully).status, PartiallyRefunded);
    }

    #[test]
    fn refunds_do_not_count_on_an_order_that_is_not_paid() {
        let facts = PaymentFacts {
            refunded: 5000,
            ..intent(IntentStatus::InProgress, false)
        };
        let decision = decide(Some(Pending), AMOUNT, &facts);
        assert_eq!(decision.status, Pending);
        assert_eq!(decision.refunded, 0);
    }

    #[test]
    fn stored_statuses_read_back() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(OrderStatus::parse("shipped"), None);
    }

    #[test]
    fn unknown_stripe_statuses_are_read_safely() {
        assert_eq!(SessionStatus::from_stripe("new"), SessionStatus::Other);
        assert_eq!(SessionPayment::from_stripe("new"), SessionPayment::Other);
        assert_eq!(
            IntentStatus::from_stripe("requires_capture"),
            IntentStatus::InProgress
        );
    }
}
