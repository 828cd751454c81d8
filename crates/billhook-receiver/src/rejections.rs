//! Rejected deliveries, counted per minute and reason and written to `rejected_deliveries`
//! now and then, never one row per request: a flood of forged requests costs an increment in
//! memory each, and the database one small upsert per flush. The console's overview and the
//! alerts read the table. Nothing from the request is kept: no address, header or body.
//!
//! Counts that cannot be written (the database is down) stay here and go with the next flush;
//! the tally holds at most `MAX_KEYS` minute-and-reason pairs, so a long outage folds new
//! minutes into the latest one it has for that reason instead of growing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;

/// Minute-and-reason pairs held before new minutes are folded into older ones.
const MAX_KEYS: usize = 10_000;

/// How long one flush may take.
const FLUSH_DEADLINE: Duration = Duration::from_secs(5);

type Tally = HashMap<(i64, &'static str), i64>;

#[derive(Clone, Default)]
pub struct Rejections {
    tally: Arc<Mutex<Tally>>,
}

/// The minute `unix_seconds` falls in, as its first second.
fn minute(unix_seconds: i64) -> i64 {
    unix_seconds - unix_seconds.rem_euclid(60)
}

fn add(tally: &mut Tally, at: i64, reason: &'static str, count: i64) {
    let key = (at, reason);
    if tally.len() >= MAX_KEYS && !tally.contains_key(&key) {
        let latest = tally
            .keys()
            .filter(|(_, r)| *r == reason)
            .map(|(m, _)| *m)
            .max();
        if let Some(latest) = latest {
            *tally.entry((latest, reason)).or_insert(0) += count;
            return;
        }
    }
    *tally.entry(key).or_insert(0) += count;
}

impl Rejections {
    /// Counts one rejected delivery, now.
    pub fn record(&self, reason: &'static str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let at = minute(now);
        if let Ok(mut tally) = self.tally.lock() {
            add(&mut tally, at, reason, 1);
        }
    }

    /// Minute-and-reason pairs waiting to be written.
    pub fn pending(&self) -> usize {
        self.tally.lock().map_or(0, |t| t.len())
    }

    /// Writes what has been counted since the last flush, adding to the rows already there.
    /// On failure the counts are kept for the next one.
    pub async fn flush(&self, pool: &PgPool) -> anyhow::Result<usize> {
        let taken = match self.tally.lock() {
            Ok(mut tally) => std::mem::take(&mut *tally),
            Err(_) => return Ok(0),
        };
        if taken.is_empty() {
            return Ok(0);
        }
        let mut minutes = Vec::with_capacity(taken.len());
        let mut reasons = Vec::with_capacity(taken.len());
        let mut counts = Vec::with_capacity(taken.len());
        for ((at, reason), count) in &taken {
            minutes.push(*at as f64);
            reasons.push(*reason);
            counts.push(*count);
        }
        let write = sqlx::query(
            "INSERT INTO rejected_deliveries (minute, reason, count) \
             SELECT to_timestamp(m), r, c FROM UNNEST($1::float8[], $2::text[], $3::int8[]) AS d(m, r, c) \
             ON CONFLICT (minute, reason) DO UPDATE SET count = rejected_deliveries.count + EXCLUDED.count",
        )
        .bind(&minutes)
        .bind(&reasons)
        .bind(&counts)
        .execute(pool);
        let result = match tokio::time::timeout(FLUSH_DEADLINE, write).await {
            Ok(Ok(_)) => Ok(taken.len()),
            Ok(Err(e)) => Err(anyhow::Error::new(e)),
            Err(_) => Err(anyhow::anyhow!(
                "writing rejected deliveries took longer than {FLUSH_DEADLINE:?}"
            )),
        };
        if result.is_err()
            && let Ok(mut tally) = self.tally.lock()
        {
            for ((at, reason), count) in taken {
                add(&mut tally, at, reason, count);
            }
        }
        result
    }

    /// Flushes every `interval` until the task is aborted; failures are logged and retried.
    pub async fn flush_every(self, pool: PgPool, interval: Duration) {
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            if let Err(e) = self.flush(&pool).await {
                tracing::warn!(error = %format!("{e:#}"), pending = self.pending(),
                    "rejected deliveries not written yet; kept for the next flush");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_go_per_minute_and_reason_and_a_full_tally_folds_new_minutes() {
        let mut tally = Tally::new();
        add(&mut tally, 60, "mismatch", 1);
        add(&mut tally, 60, "mismatch", 1);
        add(&mut tally, 60, "outside_tolerance", 1);
        add(&mut tally, 120, "mismatch", 1);
        assert_eq!(tally[&(60, "mismatch")], 2);
        assert_eq!(tally.len(), 3);
        for n in 0..(MAX_KEYS as i64) {
            add(&mut tally, 1_000 + n * 60, "missing_header", 1);
        }
        assert_eq!(tally.len(), MAX_KEYS);
        add(&mut tally, 9_999_960, "mismatch", 5);
        assert_eq!(tally.len(), MAX_KEYS, "no new key once full");
        assert_eq!(
            tally[&(120, "mismatch")],
            6,
            "folded into its latest minute"
        );
        assert_eq!(minute(125), 120);
        assert_eq!(minute(-5), -60);
    }
}
