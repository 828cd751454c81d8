//! The alert rules: each reads the database at a given time and says whether it fires, with
//! the figure it compared, its threshold and the first few things concerned. Every query takes
//! `now` as a parameter rather than the database's clock, so an evaluation is one instant
//! throughout (and tests can move it).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;

use super::settings::{AgeRule, AlertSettings, CountRule};

/// How many of the things concerned a message names.
pub const SAMPLES: i64 = 5;

/// The reasons a delivery is refused for its signature or the signature's timestamp
/// (`rejected_deliveries.reason`); the others (too large, rate limited…) are not forgeries.
pub const SIGNATURE_REASONS: &[&str] = &[
    "missing_header",
    "malformed",
    "no_v1_signature",
    "mismatch",
    "outside_tolerance",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    EventFailures,
    DeadLetters,
    AnyDeadLetter,
    Rejected,
    NoticesFailing,
    EmailsFailing,
    OldestJob,
    NoEvents,
    Reconcile,
}

impl Rule {
    pub const ALL: [Rule; 9] = [
        Self::EventFailures,
        Self::DeadLetters,
        Self::AnyDeadLetter,
        Self::Rejected,
        Self::NoticesFailing,
        Self::EmailsFailing,
        Self::OldestJob,
        Self::NoEvents,
        Self::Reconcile,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::EventFailures => "event_failures",
            Self::DeadLetters => "dead_letters",
            Self::AnyDeadLetter => "any_dead_letter",
            Self::Rejected => "rejected",
            Self::NoticesFailing => "notices_failing",
            Self::EmailsFailing => "emails_failing",
            Self::OldestJob => "oldest_job",
            Self::NoEvents => "no_events",
            Self::Reconcile => "reconcile",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// What fired, as a message's headline.
    pub fn title(self) -> &'static str {
        match self {
            Self::EventFailures => "Stripe events are failing to process",
            Self::DeadLetters => "Jobs are being dead-lettered",
            Self::AnyDeadLetter => "A dead letter is waiting",
            Self::Rejected => "Webhook deliveries are being rejected",
            Self::NoticesFailing => "Notices to the application are failing",
            Self::EmailsFailing => "Emails are not being sent",
            Self::OldestJob => "Jobs are waiting too long",
            Self::NoEvents => "No Stripe event has arrived",
            Self::Reconcile => "Reconciliation needs attention",
        }
    }

    /// The first thing to do, as every message says it.
    pub fn what_to_do(self) -> &'static str {
        match self {
            Self::EventFailures => {
                "Open the failing events in the console and read their errors. A bug or a \
                 missing setting is fixed, then their dead letters are requeued \
                 (`billhook-worker requeue` or scripts/requeue.sh); a database problem heals by itself \
                 as the retries run."
            }
            Self::DeadLetters | Self::AnyDeadLetter => {
                "Open the dead letters in the console, fix their cause (the error says it), then \
                 requeue them with a reason: the console's requeue or scripts/requeue.sh."
            }
            Self::Rejected => {
                "Check that BILLHOOK_WEBHOOK_SECRETS holds the endpoint's current signing secret \
                 (a rotation not yet deployed), and that the receivers' clocks are right \
                 (outside_tolerance). Mismatches from unknown addresses are forgeries: the \
                 receiver refused them and its rate limit slows them."
            }
            Self::NoticesFailing => {
                "The application is not accepting notices (the fulfilment path): check it is up \
                 and that BILLHOOK_NOTIFY_URL and BILLHOOK_NOTIFY_SECRET match what it expects. \
                 Notices are retried by themselves; dead ones are requeued from the console."
            }
            Self::EmailsFailing => {
                "The SMTP server is refusing or unreachable: check BILLHOOK_SMTP_HOST, its \
                 credentials and the provider's status. Emails are retried by themselves; dead \
                 ones are requeued from the console."
            }
            Self::OldestJob => {
                "Check that billhook-worker is running (its /readyz and logs), that it can reach \
                 PostgreSQL, and whether the load needs more workers."
            }
            Self::NoEvents => {
                "Check the endpoint in Stripe's dashboard (disabled? failing deliveries?), that \
                 the receiver is reachable from the internet, and its logs; run \
                 `billhook-worker reconcile` to recover what Stripe sent meanwhile."
            }
            Self::Reconcile => {
                "Read the run in the console's overview or `billhook-worker reconcile --status`. \
                 Recovered events mean webhooks were lost: check the receiver's availability and \
                 the endpoint in Stripe. A disabled endpoint must be re-enabled in Stripe's \
                 dashboard; a failed run says why (an API key, Stripe unreachable)."
            }
        }
    }
}

/// What a rule saw at one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: Rule,
    pub firing: bool,
    /// The figure compared: a count, or seconds.
    pub value: f64,
    pub threshold: f64,
    /// How the message words the figure against its threshold.
    pub figure: String,
    /// The first few things concerned (`{"kind", "id", "label"}`), and rule-specific parts.
    pub detail: Value,
}

/// Evaluates every rule that is on, at `now`.
pub async fn evaluate(
    pool: &PgPool,
    settings: &AlertSettings,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<Finding>> {
    let mut found = Vec::new();
    if let CountRule::Above { count, window } = settings.event_failures {
        found.push(event_failures(pool, now, count, window).await?);
    }
    if let CountRule::Above { count, window } = settings.dead_letters {
        found.push(dead_letters(pool, now, count, window).await?);
    }
    if settings.any_dead_letter {
        found.push(any_dead_letter(pool).await?);
    }
    if let CountRule::Above { count, window } = settings.rejected {
        found.push(rejected(pool, now, count, window).await?);
    }
    if let AgeRule::Longer(age) = settings.notices_failing {
        found.push(failing(pool, now, age, Rule::NoticesFailing).await?);
    }
    if let AgeRule::Longer(age) = settings.emails_failing {
        found.push(failing(pool, now, age, Rule::EmailsFailing).await?);
    }
    if let AgeRule::Longer(age) = settings.oldest_job {
        found.push(oldest_job(pool, now, age).await?);
    }
    if let AgeRule::Longer(age) = settings.no_events {
        found.push(no_events(pool, now, age).await?);
    }
    if settings.reconcile {
        found.push(reconcile(pool).await?);
    }
    Ok(found)
}

fn since(now: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX)
}

fn window_text(window: Duration) -> String {
    humantime::format_duration(window).to_string()
}

/// Seconds as people read them: whole seconds, in the largest units.
pub fn age_text(seconds: f64) -> String {
    humantime::format_duration(Duration::from_secs(seconds.max(0.0) as u64)).to_string()
}

fn count_finding(rule: Rule, value: i64, count: u64, window: Duration, detail: Value) -> Finding {
    Finding {
        rule,
        firing: value > 0 && value as u64 > count,
        value: value as f64,
        threshold: count as f64,
        figure: format!(
            "{value} in the last {} (alert above {count})",
            window_text(window)
        ),
        detail,
    }
}

fn item(kind: &str, id: &str, label: String) -> Value {
    json!({ "kind": kind, "id": id, "label": label })
}

async fn event_failures(
    pool: &PgPool,
    now: DateTime<Utc>,
    count: u64,
    window: Duration,
) -> sqlx::Result<Finding> {
    let from = since(now, window);
    let value: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_failures \
          WHERE kind = 'process_event' AND failed_at > $1 AND failed_at <= $2",
    )
    .bind(from)
    .bind(now)
    .fetch_one(pool)
    .await?;
    let rows: Vec<(String, Option<String>, bool)> = sqlx::query_as(
        "SELECT job_id, event_id, retryable FROM job_failures \
          WHERE kind = 'process_event' AND failed_at > $1 AND failed_at <= $2 \
          ORDER BY failed_at DESC, id DESC LIMIT $3",
    )
    .bind(from)
    .bind(now)
    .bind(SAMPLES)
    .fetch_all(pool)
    .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|(job, event, retryable)| {
            let how = if *retryable { "will retry" } else { "dead" };
            match event {
                Some(event) => item("event", event, format!("event {event} ({how})")),
                None => item("job", job, format!("job {job} ({how})")),
            }
        })
        .collect();
    Ok(count_finding(
        Rule::EventFailures,
        value,
        count,
        window,
        json!({ "items": items }),
    ))
}

async fn dead_letters(
    pool: &PgPool,
    now: DateTime<Utc>,
    count: u64,
    window: Duration,
) -> sqlx::Result<Finding> {
    let from = since(now, window);
    let value: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dead_letters WHERE dead_at > $1 AND dead_at <= $2",
    )
    .bind(from)
    .bind(now)
    .fetch_one(pool)
    .await?;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT job_id, kind FROM dead_letters WHERE dead_at > $1 AND dead_at <= $2 \
          ORDER BY dead_at DESC, job_id DESC LIMIT $3",
    )
    .bind(from)
    .bind(now)
    .bind(SAMPLES)
    .fetch_all(pool)
    .await?;
    Ok(count_finding(
        Rule::DeadLetters,
        value,
        count,
        window,
        json!({ "items": dead_letter_items(&rows) }),
    ))
}

fn dead_letter_items(rows: &[(String, String)]) -> Vec<Value> {
    rows.iter()
        .map(|(job, kind)| {
            json!({ "kind": "dead_letter", "id": job, "job_kind": kind,
                    "label": format!("{kind} job {job}") })
        })
        .collect()
}

async fn any_dead_letter(pool: &PgPool) -> sqlx::Result<Finding> {
    let value: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dead_letters WHERE requeued_at IS NULL")
            .fetch_one(pool)
            .await?;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT job_id, kind FROM dead_letters WHERE requeued_at IS NULL \
          ORDER BY dead_at DESC, job_id DESC LIMIT $1",
    )
    .bind(SAMPLES)
    .fetch_all(pool)
    .await?;
    Ok(Finding {
        rule: Rule::AnyDeadLetter,
        firing: value > 0,
        value: value as f64,
        threshold: 0.0,
        figure: format!("{value} not requeued (alert on any)"),
        detail: json!({ "items": dead_letter_items(&rows) }),
    })
}

async fn rejected(
    pool: &PgPool,
    now: DateTime<Utc>,
    count: u64,
    window: Duration,
) -> sqlx::Result<Finding> {
    // Rows are per minute: a minute counts when it began inside the window.
    let by_reason: Vec<(String, i64)> = sqlx::query_as(
        "SELECT reason, sum(count)::bigint FROM rejected_deliveries \
          WHERE minute > $1 AND minute <= $2 AND reason = ANY($3) \
          GROUP BY reason ORDER BY 2 DESC, 1",
    )
    .bind(since(now, window))
    .bind(now)
    .bind(SIGNATURE_REASONS)
    .fetch_all(pool)
    .await?;
    let value = by_reason.iter().map(|(_, n)| n).sum();
    let reasons: serde_json::Map<String, Value> = by_reason
        .into_iter()
        .map(|(reason, n)| (reason, n.into()))
        .collect();
    Ok(count_finding(
        Rule::Rejected,
        value,
        count,
        window,
        json!({ "items": [], "by_reason": reasons }),
    ))
}

/// Notices or emails still pending after a failed attempt, the oldest for longer than `age`.
async fn failing(
    pool: &PgPool,
    now: DateTime<Utc>,
    age: Duration,
    rule: Rule,
) -> sqlx::Result<Finding> {
    let kind = match rule {
        Rule::NoticesFailing => "notice",
        _ => "email",
    };
    let query = match rule {
        Rule::NoticesFailing => {
            "SELECT id, extract(epoch FROM $1 - created_at)::float8, count(*) OVER ()::bigint \
               FROM app_notifications WHERE status = 'pending' AND attempts > 0 \
              ORDER BY created_at, id LIMIT $2"
        }
        _ => {
            "SELECT id, extract(epoch FROM $1 - created_at)::float8, count(*) OVER ()::bigint \
               FROM emails WHERE status = 'pending' AND attempts > 0 \
              ORDER BY created_at, id LIMIT $2"
        }
    };
    let rows: Vec<(String, f64, i64)> = sqlx::query_as(query)
        .bind(now)
        .bind(SAMPLES)
        .fetch_all(pool)
        .await?;
    let oldest = rows.first().map_or(0.0, |r| r.1);
    let failing = rows.first().map_or(0, |r| r.2);
    let threshold = age.as_secs_f64();
    let items: Vec<Value> = rows
        .iter()
        .map(|(id, _, _)| item(kind, id, format!("{kind} {id}")))
        .collect();
    Ok(Finding {
        rule,
        firing: oldest > threshold,
        value: oldest,
        threshold,
        figure: format!(
            "{failing} failing, the oldest for {} (alert after {})",
            age_text(oldest),
            age_text(threshold)
        ),
        detail: json!({ "items": items, "failing": failing }),
    })
}

async fn oldest_job(pool: &PgPool, now: DateTime<Utc>, age: Duration) -> sqlx::Result<Finding> {
    // Jobs due that no worker has fetched (as the console's overview counts them).
    let oldest: Option<(String, String, f64)> = sqlx::query_as(
        "SELECT id, job_type, extract(epoch FROM $1 - run_at)::float8 FROM apalis.jobs \
          WHERE (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts)) \
            AND run_at <= $1 \
          ORDER BY run_at LIMIT 1",
    )
    .bind(now)
    .fetch_optional(pool)
    .await?;
    let threshold = age.as_secs_f64();
    let value = oldest.as_ref().map_or(0.0, |o| o.2);
    let items: Vec<Value> = oldest
        .iter()
        .map(|(id, kind, _)| item("job", id, format!("{kind} job {id}")))
        .collect();
    Ok(Finding {
        rule: Rule::OldestJob,
        firing: value > threshold,
        value,
        threshold,
        figure: format!(
            "the oldest job due has waited {} (alert after {})",
            age_text(value),
            age_text(threshold)
        ),
        detail: json!({ "items": items }),
    })
}

async fn no_events(pool: &PgPool, now: DateTime<Utc>, age: Duration) -> sqlx::Result<Finding> {
    let last: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT max(received_at) FROM webhook_events WHERE received_at <= $1")
            .bind(now)
            .fetch_one(pool)
            .await?;
    let threshold = age.as_secs_f64();
    // Never any event: as old as the threshold allows to say, so that it fires.
    let value = last.map_or(f64::INFINITY, |at| (now - at).as_seconds_f64());
    let figure = match last {
        Some(at) => format!(
            "the last event arrived {} ago, at {} (alert after {})",
            age_text(value),
            at.format("%Y-%m-%d %H:%M UTC"),
            age_text(threshold)
        ),
        None => format!(
            "no event was ever received (alert after {})",
            age_text(threshold)
        ),
    };
    Ok(Finding {
        rule: Rule::NoEvents,
        firing: value > threshold,
        value: if value.is_finite() { value } else { -1.0 },
        threshold,
        figure,
        detail: json!({ "items": [], "last_event_at": last }),
    })
}

async fn reconcile(pool: &PgPool) -> sqlx::Result<Finding> {
    type Run = (i64, String, i32, Vec<String>, Vec<String>, Option<String>);
    let run: Option<Run> = sqlx::query_as(
        "SELECT id, outcome, events_recovered, recovered_sample, problems, error \
           FROM reconcile_runs \
          WHERE NOT dry_run AND outcome IN ('succeeded', 'failed') \
          ORDER BY started_at DESC, id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    let Some((id, outcome, recovered, sample, problems, error)) = run else {
        return Ok(Finding {
            rule: Rule::Reconcile,
            firing: false,
            value: 0.0,
            threshold: 0.0,
            figure: "no reconciliation run yet".to_owned(),
            detail: json!({ "items": [] }),
        });
    };
    let failed = outcome == "failed";
    let mut said = Vec::new();
    if failed {
        said.push("the last run failed".to_owned());
    }
    if recovered > 0 {
        said.push(format!(
            "the last run recovered {recovered} events whose webhooks never arrived"
        ));
    }
    said.extend(problems.iter().cloned());
    let items: Vec<Value> = sample
        .iter()
        .take(SAMPLES as usize)
        .map(|e| item("event", e, format!("recovered event {e}")))
        .collect();
    Ok(Finding {
        rule: Rule::Reconcile,
        firing: failed || recovered > 0 || !problems.is_empty(),
        value: f64::from(recovered),
        threshold: 0.0,
        figure: if said.is_empty() {
            format!("run {id} succeeded with nothing to recover")
        } else {
            format!("run {id}: {}", said.join("; "))
        },
        detail: json!({ "items": items, "run": id, "outcome": outcome,
                        "problems": problems, "error": error }),
    })
}
