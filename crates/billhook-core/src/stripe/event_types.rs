//! The Stripe event types Billhook applies. Any other verified event is stored as `ignored`
//! (and counted by type), so an endpoint subscribed to more than this loses nothing.

/// Every type the worker has a handler for. The rest of DESIGN.md's processing rules
/// (payments, checkout, subscriptions, invoices, refunds, payment methods) join this list as
/// their handlers land; until then such events are stored as `ignored` and can be replayed.
pub const HANDLED: &[&str] = &["customer.created", "customer.deleted", "customer.updated"];

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
