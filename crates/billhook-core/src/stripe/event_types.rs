//! The Stripe event types Billhook applies. Any other verified event is stored as `ignored`
//! (and counted by type), so an endpoint subscribed to more than this loses nothing.

/// Every type the worker has a handler for (DESIGN.md's processing rules), sorted.
pub const HANDLED: &[&str] = &[
    "charge.refunded",
    "checkout.session.completed",
    "checkout.session.expired",
    "customer.created",
    "customer.deleted",
    "customer.subscription.created",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.trial_will_end",
    "customer.subscription.updated",
    "customer.updated",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.payment_succeeded",
    "payment_intent.payment_failed",
    "payment_intent.succeeded",
    "payment_method.attached",
    "payment_method.detached",
];

pub fn is_handled(event_type: &str) -> bool {
    HANDLED.binary_search(&event_type).is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_list_is_sorted_so_lookup_can_bisect() {
        assert!(super::HANDLED.windows(2).all(|w| w[0] < w[1]));
    }
}
