//! What Billhook knows about Stripe, for every feature to use: reading objects in both API
//! shapes ([`fields`]), amounts and currencies ([`money`]), the API client ([`api`]) and
//! its paged lists ([`list`]).
//! Signature and envelope rules, which the receiver needs too, are in `billhook_core::stripe`.

pub mod api;
pub mod fields;
pub mod list;
pub mod money;

pub use api::StripeApi;
