//! The parts of the load tools in bench/ (receiver-load, worker-load) that both use: checks of
//! the options they share, realistic events signed before the clock starts, one keep-alive
//! HTTP/1.1 client per connection and the Stripe-like POST, the tally of answers, and the
//! numbers of their reports. Each tool keeps its own options, event mix, pacing and output.
//!
//! Benchmark tooling, never a test: the numbers depend on the machine.

pub mod args;
pub mod events;
pub mod http;
pub mod percentiles;
pub mod report;
pub mod tally;
