//! Notices to the host application: an outbox in `app_notifications`, delivered by NotifyApp
//! jobs as Standard Webhooks (signed POSTs).
//!
//! Lifecycle of a notice: [`Outbox::enqueue`] writes the row and its job inside the
//! transaction that applies the Stripe event, so a rolled-back event leaves neither → the job
//! POSTs the stored body, retried with backoff while the application fails → `delivered`, or
//! `dead` with a dead letter once attempts run out. With no URL configured the row is written
//! as `skipped` and no job exists. Delivery is at least once: the `webhook-id` header (the
//! notice id) is the same on every attempt, for the application to drop repeats.

pub mod job;
pub mod settings;
pub mod sign;

use chrono::{SecondsFormat, Utc};
use sqlx::PgConnection;

use crate::queue::jobs::NotifyApp;
use crate::queue::{self, JobError};
use settings::NotifySettings;

/// One notice for [`Outbox::enqueue`].
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    /// The notice type the application branches on, e.g. `subscription.past_due`.
    pub kind: &'a str,
    /// At most one notice is ever written per key, so a replayed event adds none.
    pub dedupe_key: &'a str,
    /// The Stripe event that caused the notice; `None` for an alert's.
    pub event_id: Option<&'a str>,
    pub data: serde_json::Value,
}

/// Writes notices and their jobs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    sending: bool,
    max_attempts: u32,
}

impl Outbox {
    /// Sends when a URL is configured; refuses a URL without a secret.
    pub fn from_settings(settings: &NotifySettings) -> anyhow::Result<Self> {
        Ok(Self {
            sending: settings.target()?.is_some(),
            max_attempts: settings.max_attempts,
        })
    }

    /// Records every notice as `skipped` and sends nothing.
    pub fn disabled() -> Self {
        Self {
            sending: false,
            max_attempts: 1,
        }
    }

    /// Stores the notice, and when sending, its NotifyApp job, both inside the caller's
    /// transaction. Returns whether the notice is new: `false` when its dedupe key was already
    /// used, in which case nothing is written.
    #[tracing::instrument(skip_all, fields(kind = notice.kind, event_id = notice.event_id))]
    pub async fn enqueue(
        &self,
        conn: &mut PgConnection,
        notice: Notice<'_>,
    ) -> Result<bool, JobError> {
        let id = format!("ntf_{}", ulid::Ulid::generate());
        let body = serde_json::json!({
            "type": notice.kind,
            "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            "data": notice.data,
        });
        let status = if self.sending { "pending" } else { "skipped" };
        let inserted = sqlx::query(
            "INSERT INTO app_notifications (id, type, dedupe_key, event_id, body, status)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(&id)
        .bind(notice.kind)
        .bind(notice.dedupe_key)
        .bind(notice.event_id)
        .bind(&body)
        .bind(status)
        .execute(&mut *conn)
        .await?
        .rows_affected()
            == 1;
        if inserted && self.sending {
            let job = NotifyApp::new(id.clone(), notice.event_id.map(str::to_owned));
            queue::push(conn, &job, &id, self.max_attempts, None).await?;
        }
        if inserted {
            tracing::info!(notification_id = %id, status, "notice recorded");
        }
        Ok(inserted)
    }
}
