//! `Stripe-Signature` verification and the secret list over arbitrary input. The input is
//! split at its first NUL byte: the header before it, the body after it.

#![no_main]

use billhook_core::stripe::signature::verify;
use billhook_core::stripe::{WebhookSecret, WebhookSecrets};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000;
const SECRET: &str = "whsec_fuzz";

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let header = String::from_utf8_lossy(header);

    let secrets = WebhookSecrets::new(vec![WebhookSecret::new("primary", SECRET)])
        .expect("a valid secret list");
    if let Ok(verified) = verify(Some(&header), body, &secrets, NOW, 300) {
        // Nothing verifies without the real signature (in either case: hex digits are read
        // case-insensitively, and the digest is the same).
        let signed = WebhookSecret::new("x", SECRET).sign(verified.timestamp, body);
        let v1 = signed
            .split_once(",v1=")
            .map(|(_, v1)| v1)
            .unwrap_or_default();
        assert!(
            header.to_ascii_lowercase().contains(v1),
            "verified without the signature: {header:?}"
        );
    }

    if let Ok(parsed) = WebhookSecrets::parse(&header) {
        for secret in parsed.iter() {
            assert!(!secret.expose().is_empty());
            assert!(!secret.label().is_empty());
        }
    }
});
