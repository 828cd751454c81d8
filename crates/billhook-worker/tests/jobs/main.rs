//! The job queue at work: a worker in this process (or the queue machinery itself) runs the
//! jobs, and a test waits for them with `billhook_testkit::worker::run_due_jobs`. One test
//! binary, because each binary links the whole crate.

mod alerts;
mod console;
mod database_outage;
mod dunning;
mod email;
mod machinery;
mod notify;
mod processing;
mod retention;
mod summary;
