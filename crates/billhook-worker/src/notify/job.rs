//! Deliver one stored notice to the host application: a signed POST of its body.
//!
//! No transaction is held across the request (it may take the whole timeout). Two runs of one
//! job side by side (a worker presumed dead that was only slow) can both deliver; the
//! application tells them apart by `webhook-id`, as Standard Webhooks expects of it.

use anyhow::{Context as _, anyhow};
use chrono::Utc;
use reqwest::header::CONTENT_TYPE;
use sqlx::PgPool;

use super::settings::{NotifySettings, Target};
use super::sign::{ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use crate::queue::jobs::NotifyApp;
use crate::queue::{JobError, JobKind};

pub struct NotifyAppJob {
    pool: PgPool,
    client: reqwest::Client,
    /// `None` when no URL is configured: jobs left from a time when one was are dead-lettered,
    /// to be requeued once it is set again.
    target: Option<Target>,
}

impl NotifyAppJob {
    /// Refuses a URL without a secret.
    pub fn new(pool: PgPool, settings: &NotifySettings) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            // A redirect is a failure to retry, never a reason to send the signed body
            // somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("billhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client for notices")?;
        Ok(Self {
            pool,
            client,
            target: settings.target()?,
        })
    }
}

impl JobKind for NotifyAppJob {
    type Args = NotifyApp;

    fn event_id(args: &serde_json::Value) -> Option<String> {
        args.get("event_id")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    }

    #[tracing::instrument(name = "notify_app", skip_all,
        fields(notification_id = %args.notification_id(), event_id = args.event_id()))]
    async fn run(&self, args: NotifyApp) -> Result<(), JobError> {
        let id = args.notification_id();
        let Some(target) = &self.target else {
            return Err(JobError::Permanent(anyhow!(
                "BILLHOOK_NOTIFY_URL is not set on this worker; requeue once it is"
            )));
        };
        let Some(stored) = load(&self.pool, id).await? else {
            return Err(JobError::Permanent(anyhow!(
                "notification {id} is not stored"
            )));
        };
        if stored.status == "delivered" {
            tracing::info!("notice already delivered; nothing to do");
            return Ok(());
        }
        let timestamp = Utc::now().timestamp();
        let signature = sign(&target.key, id, timestamp, stored.body.as_bytes());
        let sent = self
            .client
            .post(target.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ID_HEADER, id)
            .header(TIMESTAMP_HEADER, timestamp)
            .header(SIGNATURE_HEADER, signature)
            .body(stored.body)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                let status = response.status().as_u16();
                mark_delivered(&self.pool, id, status).await?;
                tracing::info!(status, "notice delivered");
                Ok(())
            }
            Ok(response) => {
                let status = response.status();
                let error = anyhow!("the application answered {status}");
                record_attempt(&self.pool, id, Some(status.as_u16()), &format!("{error}")).await?;
                Err(JobError::Retryable(error))
            }
            // Without the URL: it may carry a token, and it is configuration, not news.
            Err(e) => {
                let error = anyhow::Error::new(e.without_url())
                    .context("the application cannot be reached");
                record_attempt(&self.pool, id, None, &format!("{error:#}")).await?;
                Err(JobError::Retryable(error))
            }
        }
    }

    async fn record_failure(
        &self,
        conn: &mut sqlx::PgConnection,
        args: &serde_json::Value,
        _attempt: u32,
        error: &str,
        dead: bool,
    ) -> anyhow::Result<()> {
        let Some(id) = args.get("notification_id").and_then(|v| v.as_str()) else {
            return Ok(());
        };
        // A requeued dead notice is pending again until it is delivered or dies again.
        sqlx::query(
            "UPDATE app_notifications
                SET last_error = $2, status = CASE WHEN $3 THEN 'dead' ELSE 'pending' END
              WHERE id = $1 AND status IN ('pending', 'dead')",
        )
        .bind(id)
        .bind(error)
        .bind(dead)
        .execute(conn)
        .await?;
        Ok(())
    }
}

struct Stored {
    status: String,
    /// PostgreSQL's rendering of the jsonb body: the same bytes on every attempt.
    body: String,
}

async fn load(pool: &PgPool, id: &str) -> sqlx::Result<Option<Stored>> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT status, body::text FROM app_notifications WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(status, body)| Stored { status, body }))
}

async fn mark_delivered(pool: &PgPool, id: &str, status: u16) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE app_notifications
            SET status = 'delivered', delivered_at = now(), attempts = attempts + 1,
                last_status = $2, last_error = NULL
          WHERE id = $1 AND status <> 'delivered'",
    )
    .bind(id)
    .bind(i32::from(status))
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a request that did not deliver: `status` is the answer's, `None` when there was
/// none (refused, timed out).
async fn record_attempt(
    pool: &PgPool,
    id: &str,
    status: Option<u16>,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE app_notifications
            SET attempts = attempts + 1, last_status = $2, last_error = $3
          WHERE id = $1 AND status <> 'delivered'",
    )
    .bind(id)
    .bind(status.map(i32::from))
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_argument_is_versioned_and_names_its_event() {
        let job = NotifyApp::new("ntf_01".into(), Some("evt_1".into()));
        let value = serde_json::to_value(&job).expect("encodes");
        assert_eq!(
            value,
            serde_json::json!({"v": "1", "notification_id": "ntf_01", "event_id": "evt_1"})
        );
        assert_eq!(NotifyAppJob::event_id(&value).as_deref(), Some("evt_1"));
        assert_eq!(
            serde_json::from_value::<NotifyApp>(value).expect("decodes"),
            job
        );
    }
}
