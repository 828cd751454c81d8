//! What one run lists: from where, to where, in which windows, and what is wrong with the
//! watermark. Pure, so every case is a unit test.
//!
//! The run lists events created in `[since, until)`: `until` is now minus the grace (younger
//! events are still being delivered), `since` the stored watermark minus the overlap. Without
//! a watermark (the first run), Billhook's history starts at the first event it stored:
//! anything older predates this installation and is the first sync's job, and recovering it
//! would replay old payments' emails and ledger entries. An empty inbox starts at `until`.
//!
//! The range is cut into windows of at most [`WINDOW`], listed oldest first; after each one
//! the watermark moves to its end. A run interrupted half-way keeps what it stored and the
//! next one starts from the last finished window, not from the beginning.

use chrono::{DateTime, Duration, Utc};

/// Stripe's Events API lists the last 30 days.
pub const HORIZON: Duration = Duration::days(30);
/// A watermark this old is reported loudly: in a few days events will be out of reach.
pub const WARN_AGE: Duration = Duration::days(25);
/// The longest window listed before the watermark moves.
pub const WINDOW: Duration = Duration::hours(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// `[start, end)` ranges, oldest first, covering `[since, until)`.
    pub windows: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// What the operator must hear about (logged at error, recorded with the run).
    pub problems: Vec<String>,
}

pub struct Inputs {
    pub now: DateTime<Utc>,
    pub watermark: Option<DateTime<Utc>>,
    /// Where Billhook's history starts (the oldest stored event, or the latest successful
    /// sync if earlier), looked up only when there is no watermark.
    pub history_start: Option<DateTime<Utc>>,
    /// `--since`: replaces the watermark as the start.
    pub since: Option<DateTime<Utc>>,
    pub overlap: std::time::Duration,
    pub grace: std::time::Duration,
}

pub fn plan(inputs: &Inputs) -> Plan {
    let overlap = Duration::from_std(inputs.overlap).unwrap_or(Duration::zero());
    let grace = Duration::from_std(inputs.grace).unwrap_or(Duration::zero());
    let until = inputs.now - grace;
    let horizon = inputs.now - HORIZON;
    let mut problems = Vec::new();
    if let Some(watermark) = inputs.watermark {
        let age = inputs.now - watermark;
        if watermark < horizon {
            problems.push(format!(
                "reconciliation's watermark is {} days old, older than the 30 days Stripe's Events \
                 API keeps: events created between {} and {} cannot be recovered from it. Run \
                 `billhook-worker sync all` to refill the mirror from Stripe's objects \
                 (docs/operations.md, \"After an outage longer than 30 days\")",
                age.num_days(),
                watermark.to_rfc3339(),
                horizon.to_rfc3339()
            ));
        } else if age > WARN_AGE {
            problems.push(format!(
                "reconciliation's watermark is {} days old: Stripe's Events API keeps 30 days, so \
                 events created before {} are lost to it in {} days. Find why runs fail or do \
                 not advance (billhook-worker reconcile --status)",
                age.num_days(),
                (watermark + HORIZON).to_rfc3339(),
                (watermark + HORIZON - inputs.now).num_days()
            ));
        }
    }
    if let Some(since) = inputs.since.filter(|s| *s < horizon) {
        problems.push(format!(
            "--since {} is further back than the 30 days Stripe's Events API keeps: listing from \
             {} instead. For anything older run `billhook-worker sync all`",
            since.to_rfc3339(),
            horizon.to_rfc3339()
        ));
    }
    let start = match (inputs.since, inputs.watermark, inputs.history_start) {
        (Some(since), _, _) => since,
        (None, Some(watermark), _) => watermark - overlap,
        (None, None, Some(first)) => first - overlap,
        (None, None, None) => until,
    };
    let since = start.max(horizon).min(until);
    let mut windows = Vec::new();
    let mut from = since;
    while from < until {
        let to = (from + WINDOW).min(until);
        windows.push((from, to));
        from = to;
    }
    Plan {
        since,
        until,
        windows,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration as StdDuration;

    use chrono::{DateTime, Duration, TimeZone as _, Utc};

    use super::{Inputs, plan};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0)
            .single()
            .expect("a time")
    }

    fn inputs() -> Inputs {
        Inputs {
            now: now(),
            watermark: None,
            history_start: None,
            since: None,
            overlap: StdDuration::from_secs(300),
            grace: StdDuration::from_secs(120),
        }
    }

    #[test]
    fn a_run_starts_at_the_watermark_minus_the_overlap_and_ends_before_the_grace() {
        let p = plan(&Inputs {
            watermark: Some(now() - Duration::minutes(15)),
            ..inputs()
        });
        assert_eq!(p.since, now() - Duration::minutes(20));
        assert_eq!(p.until, now() - Duration::minutes(2));
        assert_eq!(p.windows, vec![(p.since, p.until)]);
        assert!(p.problems.is_empty());
    }

    #[test]
    fn a_long_range_is_cut_into_hour_windows_oldest_first() {
        let p = plan(&Inputs {
            since: Some(now() - Duration::hours(3) - Duration::minutes(30)),
            ..inputs()
        });
        assert_eq!(p.windows.len(), 4);
        assert_eq!(p.windows[0].0, p.since);
        assert_eq!(p.windows[0].1, p.since + Duration::hours(1));
        assert!(p.windows.windows(2).all(|w| w[0].1 == w[1].0));
        assert_eq!(p.windows[3].1, p.until);
    }

    #[test]
    fn the_first_run_starts_at_the_first_stored_event_or_lists_nothing() {
        let first = now() - Duration::days(2);
        let p = plan(&Inputs {
            history_start: Some(first),
            ..inputs()
        });
        assert_eq!(p.since, first - Duration::minutes(5));
        let empty = plan(&inputs());
        assert!(empty.windows.is_empty());
        assert_eq!(empty.since, empty.until);
    }

    #[test]
    fn since_overrides_the_watermark() {
        let p = plan(&Inputs {
            watermark: Some(now() - Duration::minutes(15)),
            since: Some(now() - Duration::days(3)),
            ..inputs()
        });
        assert_eq!(p.since, now() - Duration::days(3));
        assert!(p.problems.is_empty());
    }

    #[test]
    fn since_beyond_the_horizon_is_cut_to_it_and_said() {
        let p = plan(&Inputs {
            since: Some(now() - Duration::days(45)),
            ..inputs()
        });
        assert_eq!(p.since, now() - Duration::days(30));
        assert_eq!(p.problems.len(), 1);
        assert!(p.problems[0].contains("sync all"), "{:?}", p.problems);
    }

    #[test]
    fn a_watermark_past_25_days_warns_and_past_30_days_points_to_sync() {
        let warned = plan(&Inputs {
            watermark: Some(now() - Duration::days(26)),
            ..inputs()
        });
        assert_eq!(warned.problems.len(), 1);
        assert!(
            warned.problems[0].contains("26 days old"),
            "{:?}",
            warned.problems
        );
        assert!(!warned.problems[0].contains("sync"));

        let lost = plan(&Inputs {
            watermark: Some(now() - Duration::days(40)),
            ..inputs()
        });
        assert_eq!(lost.problems.len(), 1);
        assert!(
            lost.problems[0].contains("billhook-worker sync all"),
            "{:?}",
            lost.problems
        );
        // What is still listable is still listed.
        assert_eq!(lost.since, now() - Duration::days(30));
        assert_eq!(lost.windows.len(), 30 * 24);
    }

    #[test]
    fn a_fresh_watermark_reports_nothing() {
        let p = plan(&Inputs {
            watermark: Some(now() - Duration::days(24)),
            ..inputs()
        });
        assert!(p.problems.is_empty());
    }
}
