//! The real `billhook-worker` binary in child processes, as operators run it. A binary of its
//! own: its load test keeps two worker processes busy, which would slow the timed tests of the
//! others down.

mod migrate;
mod pool;
mod reconcile;
mod scale_out;
mod worker;
