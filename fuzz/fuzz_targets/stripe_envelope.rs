//! The envelope parser over arbitrary bytes: never a panic, and whatever it accepts keeps its
//! rules (an `evt_` id, a type of 1 to 255 bytes, no NUL in a stored text field).

#![no_main]

use billhook_core::stripe::{Envelope, EventId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::parse(data) {
        assert!(EventId::parse(envelope.id.as_str()).is_ok());
        assert!((1..=255).contains(&envelope.event_type.len()));
        for text in [
            Some(&envelope.event_type),
            envelope.api_version.as_ref(),
            envelope.account.as_ref(),
            envelope.object_id.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            assert!(!text.contains('\0'));
        }
    }
});
