//! Tools for tests and local development: a fresh PostgreSQL database per test, Stripe's
//! signing scheme, realistic events built from Stripe's own example objects (alone, in the
//! billing scenarios, or in the stories and examples `billhook-trigger` sends), and helpers that
//! start the receiver on port 0. Nothing here ships in a production binary.

pub mod billing;
pub mod browser;
pub mod database;
pub mod examples;
pub mod fixtures;
pub mod hook_server;
pub mod objects;
pub mod proxy;
pub mod receiver;
pub mod scenarios;
pub mod smtp;
pub mod stories;
pub mod stripe_api;
pub mod trigger;
pub mod worker;

pub use database::TestDatabase;
pub use receiver::TestReceiver;
pub use worker::TestWorker;
