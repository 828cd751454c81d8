//! A day's figures: what the webhooks did, the money, the billing changes, the follow-up work
//! and the operations. Each query reads one half-open range of instants (the day in the
//! summary's time zone), so a day's figures never change once it is over, whoever asks.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// A calendar day in a time zone, as the instants it spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day {
    pub date: NaiveDate,
    pub zone: Tz,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

fn midnight(date: NaiveDate, zone: Tz) -> DateTime<Utc> {
    let local = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    // A zone that skips midnight (DST in a few places) starts the day at the first instant
    // after the gap.
    zone.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
        })
        .map_or_else(|| local.and_utc(), |t| t.with_timezone(&Utc))
}

impl Day {
    pub fn new(date: NaiveDate, zone: Tz) -> Self {
        let next = date.succ_opt().unwrap_or(date);
        Self {
            date,
            zone,
            start: midnight(date, zone),
            end: midnight(next, zone),
        }
    }

    /// The same day a week before.
    pub fn week_before(&self) -> Self {
        Self::new(self.date - chrono::Duration::days(7), self.zone)
    }

    /// Hours in the day: 24, or 23 and 25 on the days clocks change.
    pub fn hours(&self) -> usize {
        usize::try_from((self.end - self.start).num_hours()).unwrap_or(24)
    }
}

/// An amount of money in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Money {
    pub currency: String,
    /// Minor units.
    pub amount: i64,
    pub count: i64,
}

/// Events of one type received in the day, by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TypeCounts {
    pub event_type: String,
    pub total: i64,
    pub by_status: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub events_received: i64,
    /// By the event's status now: applied, ignored, stale, failed (still retried), dead,
    /// received (not processed yet).
    pub outcomes: BTreeMap<String, i64>,
    pub by_type: Vec<TypeCounts>,
    pub rejected: BTreeMap<String, i64>,
    pub rejected_total: i64,
    /// Failed attempts at processing events (each retry counts).
    pub event_failures: i64,
    pub dead_letters: BTreeMap<String, i64>,
    pub dead_letters_total: i64,
    pub lag_p50_seconds: Option<f64>,
    pub lag_p99_seconds: Option<f64>,
    pub paid: Vec<Money>,
    pub refunded: Vec<Money>,
    pub orders_paid: i64,
    pub orders_failed: i64,
    pub orders_refunded: i64,
    pub subscriptions_new: i64,
    pub subscriptions_cancelled: i64,
    pub dunning_opened: i64,
    pub dunning_recovered: i64,
    pub dunning_cancelled: i64,
    pub emails_sent: i64,
    pub emails_failed: i64,
    pub reconcile_runs: i64,
    pub reconcile_failed: i64,
    pub reconcile_recovered: i64,
    pub alerts_opened: i64,
    pub alerts_resolved: i64,
}

/// Reads the day's figures.
pub async fn figures(pool: &PgPool, day: &Day) -> sqlx::Result<Figures> {
    let (s, e) = (day.start, day.end);
    let mut f = Figures::default();

    let by_type: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT type, status, count(*) FROM webhook_events \
          WHERE received_at >= $1 AND received_at < $2 GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(s)
    .bind(e)
    .fetch_all(pool)
    .await?;
    for (event_type, status, n) in by_type {
        f.events_received += n;
        *f.outcomes.entry(status.clone()).or_default() += n;
        match f.by_type.last_mut() {
            Some(t) if t.event_type == event_type => {
                t.total += n;
                t.by_status.insert(status, n);
            }
            _ => f.by_type.push(TypeCounts {
                event_type,
                total: n,
                by_status: BTreeMap::from([(status, n)]),
            }),
        }
    }
    f.by_type
        .sort_by(|a, b| b.total.cmp(&a.total).then(a.event_type.cmp(&b.event_type)));

    let rejected: Vec<(String, i64)> = sqlx::query_as(
        "SELECT reason, sum(count)::bigint FROM rejected_deliveries \
          WHERE minute >= $1 AND minute < $2 GROUP BY 1",
    )
    .bind(s)
    .bind(e)
    .fetch_all(pool)
    .await?;
    f.rejected_total = rejected.iter().map(|r| r.1).sum();
    f.rejected = rejected.into_iter().collect();

    f.event_failures = sqlx::query_scalar(
        "SELECT count(*) FROM job_failures \
          WHERE kind = 'process_event' AND failed_at >= $1 AND failed_at < $2",
    )
    .bind(s)
    .bind(e)
    .fetch_one(pool)
    .await?;
    let dead: Vec<(String, i64)> = sqlx::query_as(
        "SELECT kind, count(*) FROM dead_letters WHERE dead_at >= $1 AND dead_at < $2 GROUP BY 1",
    )
    .bind(s)
    .bind(e)
    .fetch_all(pool)
    .await?;
    f.dead_letters_total = dead.iter().map(|d| d.1).sum();
    f.emails_failed = dead.iter().find(|d| d.0 == "send_email").map_or(0, |d| d.1);
    f.dead_letters = dead.into_iter().collect();

    (f.lag_p50_seconds, f.lag_p99_seconds) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - received_at)), \
                percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - received_at)) \
           FROM webhook_events \
          WHERE received_at >= $1 AND received_at < $2 AND applied_at IS NOT NULL",
    )
    .bind(s)
    .bind(e)
    .fetch_one(pool)
    .await?;

    // Money that came in: each PaymentIntent that succeeded in the day (its event's time), and
    // each charge that succeeded without one (integrations on charges alone), once.
    f.paid = sqlx::query_as(
        "SELECT currency, sum(amount)::bigint AS amount, count(*) AS count FROM ( \
           SELECT DISTINCT ON (o->>'id') lower(o->>'currency') AS currency, \
                  coalesce(o->>'amount_received', o->>'amount')::bigint AS amount \
             FROM (SELECT type, convert_from(body, 'UTF8')::jsonb->'data'->'object' AS o \
                     FROM webhook_events \
                    WHERE type IN ('payment_intent.succeeded', 'charge.succeeded') \
                      AND created >= $1 AND created < $2) ev \
            WHERE type = 'payment_intent.succeeded' OR o->>'payment_intent' IS NULL \
            ORDER BY o->>'id') p \
          GROUP BY currency ORDER BY currency",
    )
    .bind(s)
    .bind(e)
    .fetch_all(pool)
    .await?;
    f.refunded = sqlx::query_as(
        "SELECT lower(currency) AS currency, sum(amount)::bigint AS amount, count(*) AS count \
           FROM refunds \
          WHERE created >= $1 AND created < $2 \
            AND coalesce(status, 'succeeded') NOT IN ('failed', 'canceled') \
          GROUP BY 1 ORDER BY 1",
    )
    .bind(s)
    .bind(e)
    .fetch_all(pool)
    .await?;

    // What changed, from the audit log: one pass over the day's entries.
    type Changes = (i64, i64, i64, i64, i64, i64, i64, i64);
    let changes: Changes = sqlx::query_as(
        "SELECT \
           count(DISTINCT entity_id) FILTER (WHERE entity = 'order' AND action = 'status_changed' \
                                              AND detail->>'to' = 'paid'), \
           count(DISTINCT entity_id) FILTER (WHERE entity = 'order' AND action = 'status_changed' \
                                              AND detail->>'to' = 'failed'), \
           count(DISTINCT entity_id) FILTER (WHERE entity = 'order' AND action = 'status_changed' \
                                              AND detail->>'to' IN ('refunded', 'partially_refunded')), \
           count(DISTINCT entity_id) FILTER (WHERE entity = 'subscription' AND action = 'upserted' \
                                              AND detail->>'previous_status' IS NULL \
                                              AND detail->>'status' <> 'canceled'), \
           count(DISTINCT entity_id) FILTER (WHERE entity = 'subscription' AND action = 'upserted' \
                                              AND detail->>'status' = 'canceled' \
                                              AND coalesce(detail->>'previous_status', '') <> 'canceled'), \
           count(*) FILTER (WHERE entity = 'dunning_run' AND action = 'opened'), \
           count(*) FILTER (WHERE entity = 'dunning_run' AND action = 'recovered'), \
           count(*) FILTER (WHERE entity = 'subscription' AND action = 'cancelled_by_dunning') \
         FROM audit_log WHERE at >= $1 AND at < $2",
    )
    .bind(s)
    .bind(e)
    .fetch_one(pool)
    .await?;
    (
        f.orders_paid,
        f.orders_failed,
        f.orders_refunded,
        f.subscriptions_new,
        f.subscriptions_cancelled,
        f.dunning_opened,
        f.dunning_recovered,
        f.dunning_cancelled,
    ) = changes;

    f.emails_sent =
        sqlx::query_scalar("SELECT count(*) FROM emails WHERE sent_at >= $1 AND sent_at < $2")
            .bind(s)
            .bind(e)
            .fetch_one(pool)
            .await?;
    (f.reconcile_runs, f.reconcile_failed, f.reconcile_recovered) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE outcome = 'failed'), \
                coalesce(sum(events_recovered), 0)::bigint \
           FROM reconcile_runs WHERE NOT dry_run AND started_at >= $1 AND started_at < $2",
    )
    .bind(s)
    .bind(e)
    .fetch_one(pool)
    .await?;
    (f.alerts_opened, f.alerts_resolved) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE action = 'opened'), count(*) FILTER (WHERE action = 'resolved') \
           FROM alert_history WHERE at >= $1 AND at < $2",
    )
    .bind(s)
    .bind(e)
    .fetch_one(pool)
    .await?;
    Ok(f)
}

/// Events received and failed attempts per hour of the day, for the chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hourly {
    /// The local hour each bucket starts at, `HH`.
    pub hours: Vec<String>,
    pub received: Vec<i64>,
    pub failed: Vec<i64>,
}

pub async fn hourly(pool: &PgPool, day: &Day) -> sqlx::Result<Hourly> {
    let n = day.hours();
    let bucket = |rows: Vec<(i64, i64)>| {
        let mut counts = vec![0; n];
        for (hour, count) in rows {
            if let Some(slot) = usize::try_from(hour).ok().and_then(|h| counts.get_mut(h)) {
                *slot = count;
            }
        }
        counts
    };
    let received = sqlx::query_as(
        "SELECT floor(extract(epoch FROM received_at - $1) / 3600)::bigint, count(*) \
           FROM webhook_events WHERE received_at >= $1 AND received_at < $2 GROUP BY 1",
    )
    .bind(day.start)
    .bind(day.end)
    .fetch_all(pool)
    .await?;
    let failed = sqlx::query_as(
        "SELECT floor(extract(epoch FROM failed_at - $1) / 3600)::bigint, count(*) \
           FROM job_failures WHERE kind = 'process_event' AND failed_at >= $1 AND failed_at < $2 \
          GROUP BY 1",
    )
    .bind(day.start)
    .bind(day.end)
    .fetch_all(pool)
    .await?;
    let hours = (0..n)
        .map(|h| {
            (day.start + chrono::Duration::hours(h as i64))
                .with_timezone(&day.zone)
                .format("%H")
                .to_string()
        })
        .collect();
    Ok(Hourly {
        hours,
        received: bucket(received),
        failed: bucket(failed),
    })
}

/// The first few events that failed and jobs that died in the day, newest first.
pub async fn samples(
    pool: &PgPool,
    day: &Day,
) -> sqlx::Result<(Vec<String>, Vec<(String, String)>)> {
    let failed: Vec<String> = sqlx::query_scalar(
        "SELECT event_id FROM job_failures \
          WHERE kind = 'process_event' AND event_id IS NOT NULL \
            AND failed_at >= $1 AND failed_at < $2 \
          GROUP BY event_id ORDER BY max(failed_at) DESC, event_id LIMIT 5",
    )
    .bind(day.start)
    .bind(day.end)
    .fetch_all(pool)
    .await?;
    let dead: Vec<(String, String)> = sqlx::query_as(
        "SELECT job_id, kind FROM dead_letters WHERE dead_at >= $1 AND dead_at < $2 \
          ORDER BY dead_at DESC, job_id LIMIT 5",
    )
    .bind(day.start)
    .bind(day.end)
    .fetch_all(pool)
    .await?;
    Ok((failed, dead))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_its_zones_midnight_to_midnight() {
        let date = NaiveDate::from_ymd_opt(2026, 12, 2).expect("date");
        let utc = Day::new(date, Tz::UTC);
        assert_eq!(utc.start.to_rfc3339(), "2026-12-02T00:00:00+00:00");
        assert_eq!(utc.hours(), 24);
        let paris = Day::new(date, chrono_tz::Europe::Paris);
        assert_eq!(paris.start.to_rfc3339(), "2026-12-01T23:00:00+00:00");
        // Clocks go forward on 2026-03-29 in Paris: a 23-hour day.
        let spring = Day::new(
            NaiveDate::from_ymd_opt(2026, 3, 29).expect("date"),
            chrono_tz::Europe::Paris,
        );
        assert_eq!(spring.hours(), 23);
        assert_eq!(
            utc.week_before().date,
            NaiveDate::from_ymd_opt(2026, 11, 25).expect("date")
        );
    }
}
