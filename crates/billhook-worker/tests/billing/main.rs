//! Applying events to the billing state, without a running worker: each test applies events
//! itself, through the worker's own code, on a database of its own. One test binary, because
//! each binary links the whole crate.

mod cli;
mod object_lock;
mod order_independence;
mod orders;
mod payment_failed_email;
mod scenarios;
mod stories;
mod versions;
