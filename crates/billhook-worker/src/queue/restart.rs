//! What happens when a job worker stops with an error (its database went away, say). apalis
//! restarts it at once; this policy spaces the restarts out (100 ms doubling to 2 s) and gives
//! up only when one worker has been failing without a break for longer than `give_up_after`.
//! Then the process exits non-zero, for its supervisor to restart it.
//!
//! A restart more than a minute after the previous one of the same worker starts a new streak:
//! brief outages weeks apart never add up. The pause blocks the monitor (apalis calls the
//! policy synchronously), which is harmless while the database is away: nothing can run anyway.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A restart this long after the previous one starts a new streak.
const QUIET: Duration = Duration::from_secs(60);
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(2);

pub struct RestartPolicy {
    give_up_after: Duration,
    streaks: Mutex<HashMap<String, Streak>>,
}

struct Streak {
    started: Instant,
    last: Instant,
    restarts: u32,
}

impl RestartPolicy {
    pub fn new(give_up_after: Duration) -> Self {
        Self {
            give_up_after,
            streaks: Mutex::new(HashMap::new()),
        }
    }

    /// Whether to restart `worker` (named `{process}-{kind}-{restarts}`); pauses first.
    pub fn should_restart(&self, worker: &str) -> bool {
        let key = worker.rsplit_once('-').map_or(worker, |(kind, _)| kind);
        let now = Instant::now();
        let (restarts, failing_for) = {
            let mut streaks = self.streaks.lock().unwrap_or_else(|e| e.into_inner());
            let streak = streaks.entry(key.to_owned()).or_insert(Streak {
                started: now,
                last: now,
                restarts: 0,
            });
            if now.duration_since(streak.last) > QUIET {
                streak.started = now;
                streak.restarts = 0;
            }
            streak.last = now;
            streak.restarts += 1;
            (streak.restarts, now.duration_since(streak.started))
        };
        if failing_for > self.give_up_after {
            tracing::error!(
                worker = key,
                ?failing_for,
                restarts,
                "giving up on this worker"
            );
            return false;
        }
        pause(pause_before(restarts));
        true
    }
}

fn pause_before(restart: u32) -> Duration {
    FIRST_PAUSE
        .saturating_mul(1 << restart.saturating_sub(1).min(16))
        .min(LONGEST_PAUSE)
}

fn pause(duration: Duration) {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        // Lets the runtime move this thread's other tasks elsewhere while it sleeps.
        Ok(RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(|| std::thread::sleep(duration));
        }
        _ => std::thread::sleep(duration),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_longest() {
        assert_eq!(pause_before(1), Duration::from_millis(100));
        assert_eq!(pause_before(2), Duration::from_millis(200));
        assert_eq!(pause_before(5), Duration::from_millis(1600));
        assert_eq!(pause_before(6), LONGEST_PAUSE);
        assert_eq!(pause_before(1000), LONGEST_PAUSE);
    }

    #[test]
    fn it_gives_up_only_on_a_streak_longer_than_the_limit() {
        let policy = RestartPolicy::new(Duration::ZERO);
        // The first restart of a streak has been failing for no time at all.
        assert!(policy.should_restart("host-01-process_event-0"));
        std::thread::sleep(Duration::from_millis(5));
        assert!(!policy.should_restart("host-01-process_event-1"));
        // Another kind has a streak of its own.
        assert!(policy.should_restart("host-01-send_email-0"));
    }
}
