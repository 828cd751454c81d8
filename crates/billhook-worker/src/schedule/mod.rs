//! Periodic work inside `billhook-worker run` (reconciliation now; alert evaluation and the
//! daily summary later): each task runs on its own interval in every worker process, and a
//! [`TaskLock`] makes sure one run of a task happens at a time across all of them. A task
//! decides for itself whether a run is due (another process may have just run it), so N
//! workers do not mean N runs per interval.
//!
//! Stopping: the task's loop ends with the daemon; a run in progress is dropped at its next
//! await. Tasks are written so that an interrupted run loses nothing (reconciliation advances
//! its watermark only over what it has stored).

pub mod lock;

use std::future::Future;
use std::time::Duration;

pub use lock::{Busy, TaskLock};

/// Calls `tick` after `first` and then every `interval` until `stop` completes; a tick that
/// takes longer than the interval delays the next one rather than overlapping it.
pub async fn every<F, Fut>(
    first: Duration,
    interval: Duration,
    stop: impl Future<Output = ()>,
    mut tick: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let ticks = async {
        tokio::time::sleep(first).await;
        let mut timer = tokio::time::interval(interval);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            timer.tick().await;
            tick().await;
        }
    };
    tokio::select! {
        () = stop => {}
        () = ticks => {}
    }
}
