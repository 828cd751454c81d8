//! How many of a worker process's database connections its jobs can count on.
//!
//! The pool (`BILLHOOK_DATABASE_MAX_CONNECTIONS`) is shared by everything in the process: each
//! job kind's queue holds one connection for good (its LISTEN), and polls, acknowledgements,
//! heartbeats, the scheduled tasks and the console need a few more now and then. What is left
//! is what jobs that hold a connection for their whole run (ProcessEvent's transaction) may
//! use at once. More than that at once only queue on the pool, where a wait past
//! `BILLHOOK_DATABASE_TIMEOUT` is a failed attempt: under a burst on a busy machine, events
//! were retried (and counted as failures by the alert rule) although nothing was wrong.

/// Connections kept free beside the LISTEN ones: for the queues' polls, acknowledgements and
/// heartbeats, the scheduled tasks (alert evaluation, summary, reconciliation, retention) and
/// the console.
pub const RESERVED: u32 = 3;

/// Jobs holding a connection that may run at once in a process whose pool has
/// `max_connections` and which runs `kinds` job kinds. At least one, so that a pool set too
/// small still makes progress (slowly, with waits on the pool).
pub fn for_jobs(max_connections: u32, kinds: u32) -> u32 {
    max_connections
        .saturating_sub(kinds.saturating_add(RESERVED))
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_listeners_and_the_reserve_leave() {
        // The defaults: a pool of 16, five job kinds.
        assert_eq!(for_jobs(16, 5), 8);
        assert_eq!(for_jobs(32, 5), 24);
        assert_eq!(for_jobs(9, 5), 1);
        assert_eq!(for_jobs(4, 5), 1);
        assert_eq!(for_jobs(1, u32::MAX), 1);
    }
}
