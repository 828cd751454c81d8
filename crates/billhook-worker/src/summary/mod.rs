//! The daily summary: once a day at BILLHOOK_SUMMARY_AT, an email to BILLHOOK_SUMMARY_EMAIL
//! about the day before in that time zone ([`figures`], [`report`], with a [`chart`] inside).
//!
//! Exactly one per day however many workers run and whatever restarts happen: every worker
//! ticks every minute, one at a time (a [`TaskLock`]), and a day's row in `daily_summaries` is
//! written in the transaction that writes its emails, so a day is sent once or not at all. A
//! day missed while every worker was down is sent when one comes back (a week back at most).

pub mod chart;
pub mod figures;
pub mod report;
pub mod settings;

use chrono::{DateTime, NaiveDate, Utc};
use reqwest::Url;
use sqlx::PgPool;

use crate::email::{Mailer, NewEmail, Template};
use crate::schedule::TaskLock;
use figures::Day;
use settings::{SendAt, SummarySettings};

/// The task lock's name.
pub const TASK: &str = "summary";

/// How far back a missed day is still sent.
const CATCH_UP_DAYS: i64 = 7;

#[derive(Debug, Clone)]
pub struct Summaries {
    pub pool: PgPool,
    pub settings: SummarySettings,
    pub mailer: Mailer,
    pub console_url: Option<Url>,
}

/// The latest day whose summary is due at `now`: yesterday (in the zone) once today's send time
/// has passed, else the day before.
pub fn due_day(now: DateTime<Utc>, at: SendAt) -> NaiveDate {
    let local = now.with_timezone(&at.zone);
    let today = local.date_naive();
    if local.time() >= at.time {
        today - chrono::Duration::days(1)
    } else {
        today - chrono::Duration::days(2)
    }
}

impl Summaries {
    /// The scheduled entry: sends every due day not sent yet. Returns the days sent.
    pub async fn tick(&self, now: DateTime<Utc>) -> anyhow::Result<Vec<NaiveDate>> {
        if self.settings.email.is_empty() {
            return Ok(Vec::new());
        }
        let Ok(lock) = TaskLock::try_acquire(&self.pool, TASK).await? else {
            return Ok(Vec::new());
        };
        let result = self.send_due(now).await;
        lock.release().await;
        result
    }

    async fn send_due(&self, now: DateTime<Utc>) -> anyhow::Result<Vec<NaiveDate>> {
        let due = due_day(now, self.settings.at);
        let last: Option<NaiveDate> = sqlx::query_scalar("SELECT max(day) FROM daily_summaries")
            .fetch_one(&self.pool)
            .await?;
        let first = match last {
            Some(last) if last >= due => return Ok(Vec::new()),
            Some(last) => (last + chrono::Duration::days(1))
                .max(due - chrono::Duration::days(CATCH_UP_DAYS - 1)),
            None => due,
        };
        let mut sent = Vec::new();
        let mut day = first;
        while day <= due {
            if self.send(day, false).await? {
                sent.push(day);
            }
            day += chrono::Duration::days(1);
        }
        Ok(sent)
    }

    /// Writes `date`'s summary emails. Unless `again`, only when the day has none yet (returns
    /// whether it wrote them); `again` sends a new copy whatever was sent before.
    pub async fn send(&self, date: NaiveDate, again: bool) -> anyhow::Result<bool> {
        let day = Day::new(date, self.settings.at.zone);
        let data = report::build(&self.pool, &day, self.console_url.as_ref()).await?;
        let mut tx = self.pool.begin().await?;
        let first = sqlx::query(
            "INSERT INTO daily_summaries (day, zone) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING",
        )
        .bind(date)
        .bind(day.zone.name())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !first && !again {
            return Ok(false);
        }
        let copy = if again {
            format!(":again-{}", ulid::Ulid::generate())
        } else {
            String::new()
        };
        for address in &self.settings.email {
            let source = format!("summary:{date}{copy}:{address}");
            self.mailer
                .enqueue(
                    &mut tx,
                    NewEmail {
                        template: Template::DailySummary,
                        source: &source,
                        recipient: Some(address),
                        event_id: None,
                        data: data.clone(),
                        send_after: None,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("cannot write the summary's email: {e}"))?;
        }
        tx.commit().await?;
        tracing::info!(day = %date, recipients = self.settings.email.len(), again, "daily summary written");
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yesterday_is_due_once_the_send_time_has_passed_in_the_zone() {
        let at = settings::send_at("08:00 Europe/Paris").expect("valid");
        let day = |s: &str| s.parse::<NaiveDate>().expect("date");
        // 06:59 UTC is 07:59 in Paris: the day before yesterday is the latest due.
        let before: DateTime<Utc> = "2026-12-03T06:59:00Z".parse().expect("time");
        assert_eq!(due_day(before, at), day("2026-12-01"));
        let after: DateTime<Utc> = "2026-12-03T07:00:00Z".parse().expect("time");
        assert_eq!(due_day(after, at), day("2026-12-02"));
        // 23:30 UTC is already tomorrow in Paris.
        let late: DateTime<Utc> = "2026-12-03T23:30:00Z".parse().expect("time");
        assert_eq!(due_day(late, at), day("2026-12-02"));
    }
}
