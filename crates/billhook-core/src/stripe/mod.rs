//! What Billhook knows of Stripe's webhooks: the signed envelope and the event types it handles.

pub mod envelope;
pub mod event_types;
pub mod signature;

pub use envelope::{Envelope, EnvelopeError, EventId};
pub use signature::{SignatureError, Verified, WebhookSecret, WebhookSecrets};
