//! A run's events: which built-in example the n-th one is, and signing them all, with one
//! timestamp, before anything is timed.

use anyhow::Context as _;
use billhook_core::stripe::WebhookSecret;
use billhook_testkit::fixtures::{self, ApiShape};
use serde_json::Value;

/// One event, ready to send: its body and the `Stripe-Signature` header for it.
pub struct SignedEvent {
    pub body: Vec<u8>,
    pub signature: String,
}

/// The built-in example for the `n`-th event of a run cycling through `types` in both API
/// shapes. With an odd number of types, `n % 2` meets every type in both shapes; with an even
/// number the shape flips every full cycle instead. `types` must not be empty.
pub fn example(types: &[&str], n: usize) -> anyhow::Result<Value> {
    let event_type = types[n % types.len()];
    let shape = if types.len() % 2 == 1 {
        ApiShape::ALL[n % 2]
    } else {
        ApiShape::ALL[(n / types.len()) % 2]
    };
    fixtures::event(event_type, shape)
        .with_context(|| format!("no built-in example for {event_type}"))
}

/// `n` events made by `event(0..n)`, signed now by `secret`. Every signature carries the same
/// timestamp, so a run must end within the receiver's tolerance of this call.
pub fn sign_each(
    n: usize,
    secret: &WebhookSecret,
    mut event: impl FnMut(usize) -> anyhow::Result<Value>,
) -> anyhow::Result<Vec<SignedEvent>> {
    let timestamp = fixtures::unix_now();
    (0..n)
        .map(|i| {
            let body = fixtures::to_body(&event(i)?);
            let signature = secret.sign(timestamp, &body);
            Ok(SignedEvent { body, signature })
        })
        .collect()
}

/// Mean body size in bytes (0 for no events).
pub fn mean_body_bytes(events: &[SignedEvent]) -> usize {
    events.iter().map(|e| e.body.len()).sum::<usize>() / events.len().max(1)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use billhook_core::stripe::WebhookSecrets;

    use super::*;

    fn kinds(types: &[&str], n: usize) -> HashSet<(String, String)> {
        (0..n)
            .map(|i| {
                let event = example(types, i).expect("example");
                (
                    event["type"].as_str().expect("type").to_owned(),
                    event["api_version"].as_str().expect("version").to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn every_type_comes_in_both_shapes_for_odd_and_even_type_counts() {
        let three = ["customer.created", "customer.updated", "invoice.paid"];
        assert_eq!(kinds(&three, 6).len(), 6);
        let two = ["customer.created", "customer.updated"];
        assert_eq!(kinds(&two, 4).len(), 4);
    }

    #[test]
    fn a_type_without_an_example_is_an_error() {
        assert!(example(&["no.such.type"], 0).is_err());
    }

    #[test]
    fn signed_events_verify_against_the_secret() {
        let secrets = WebhookSecrets::parse("whsec_test").expect("secret");
        let events =
            sign_each(3, secrets.first(), |i| example(&["customer.created"], i)).expect("events");
        assert_eq!(events.len(), 3);
        for e in &events {
            billhook_core::stripe::signature::verify(
                Some(&e.signature),
                &e.body,
                &secrets,
                fixtures::unix_now(),
                300,
            )
            .expect("verifies");
        }
        assert_eq!(
            mean_body_bytes(&events),
            events.iter().map(|e| e.body.len()).sum::<usize>() / 3
        );
        assert_eq!(mean_body_bytes(&[]), 0);
    }
}
