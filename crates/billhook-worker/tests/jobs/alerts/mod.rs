//! Alerts: each rule against rows seeded at known times (`rules`), an incident's lifecycle at
//! moved clocks (`lifecycle`), and real channels, a real SMTP server and local HTTP servers
//! standing in for Slack and the application, with workers running (`channels`).

mod channels;
mod lifecycle;
mod rules;

use billhook_worker::alerts::Alerts;
use billhook_worker::alerts::channels::Channels;
use billhook_worker::alerts::settings::AlertSettings;
use billhook_worker::email::Mailer;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// Every rule off: a test turns on what it looks at.
fn quiet() -> AlertSettings {
    use billhook_worker::alerts::settings::{AgeRule, CountRule};
    AlertSettings {
        event_failures: CountRule::Off,
        dead_letters: CountRule::Off,
        rejected: CountRule::Off,
        notices_failing: AgeRule::Off,
        emails_failing: AgeRule::Off,
        oldest_job: AgeRule::Off,
        no_events: AgeRule::Off,
        reconcile: false,
        any_dead_letter: false,
        ..AlertSettings::default()
    }
}

fn alerts(pool: &PgPool, settings: AlertSettings) -> Alerts {
    Alerts {
        pool: pool.clone(),
        channels: Channels {
            settings,
            mailer: Mailer {
                max_attempts: 5,
                payment_failed_hold: std::time::Duration::ZERO,
            },
            outbox: None,
        },
    }
}

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

/// `n` failed attempts of ProcessEvent jobs at `at`, for events evt_fail_0…
async fn event_failures(pool: &PgPool, n: usize, at: DateTime<Utc>) {
    for i in 0..n {
        sqlx::query(
            "INSERT INTO job_failures (job_id, kind, attempt, retryable, error, failed_at, event_id) \
             VALUES ($1, 'process_event', 1, true, 'database unavailable', $2, $3)",
        )
        .bind(format!("job_{}", ulid::Ulid::generate()))
        .bind(at)
        .bind(format!("evt_fail_{i}"))
        .execute(pool)
        .await
        .expect("job failure");
    }
}

/// A dead letter of `kind` that died at `at`.
async fn dead_letter(pool: &PgPool, kind: &str, at: DateTime<Utc>) -> String {
    let job = format!("job_{}", ulid::Ulid::generate());
    sqlx::query(
        "INSERT INTO dead_letters (job_id, kind, queue, argument, error, attempts, history, dead_at) \
         VALUES ($1, $2, 'billhook.' || $2, '{}', 'gave up', 3, '[]', $3)",
    )
    .bind(&job)
    .bind(kind)
    .bind(at)
    .execute(pool)
    .await
    .expect("dead letter");
    job
}
