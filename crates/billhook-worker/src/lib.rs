//! billhook-worker: the operator's commands. `migrate` prepares the database for both
//! binaries.

pub mod cli;
