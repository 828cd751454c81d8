//! Post one alert message to the Slack-compatible incoming webhook (BILLHOOK_ALERT_SLACK_URL).
//! A post that fails is retried with backoff like any job, and dead-lettered when attempts run
//! out; a repeat after a crash between the answer and the mark posts the message twice, which
//! is the channel's nature (incoming webhooks have no idempotency key).

use anyhow::{Context as _, anyhow};
use sqlx::PgPool;

use super::settings::{AlertSettings, SlackUrl};
use crate::queue::jobs::PostAlert;
use crate::queue::{JobError, JobKind};

pub struct PostAlertJob {
    pool: PgPool,
    client: reqwest::Client,
    url: Option<SlackUrl>,
}

impl PostAlertJob {
    pub fn new(pool: PgPool, settings: &AlertSettings) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(settings.slack_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("billhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client for alert posts")?;
        Ok(Self {
            pool,
            client,
            url: settings.slack_url.clone(),
        })
    }
}

impl JobKind for PostAlertJob {
    type Args = PostAlert;

    fn event_id(_: &serde_json::Value) -> Option<String> {
        None
    }

    #[tracing::instrument(name = "post_alert", skip_all)]
    async fn run(&self, args: PostAlert) -> Result<(), JobError> {
        let PostAlert::V1 { post_id } = args;
        let Some(url) = &self.url else {
            return Err(JobError::Permanent(anyhow!(
                "BILLHOOK_ALERT_SLACK_URL is not set on this worker; requeue once it is"
            )));
        };
        let stored: Option<(String, String)> =
            sqlx::query_as("SELECT status, body::text FROM alert_posts WHERE id = $1")
                .bind(&post_id)
                .fetch_optional(&self.pool)
                .await?;
        let Some((status, body)) = stored else {
            return Err(JobError::Permanent(anyhow!(
                "alert post {post_id} is not stored"
            )));
        };
        if status == "delivered" {
            return Ok(());
        }
        let sent = self
            .client
            .post(url.url())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let (code, error) = match sent {
            Ok(response) if response.status().is_success() => {
                let code = i32::from(response.status().as_u16());
                sqlx::query(
                    "UPDATE alert_posts SET status = 'delivered', delivered_at = now(), \
                            attempts = attempts + 1, last_status = $2, last_error = NULL \
                      WHERE id = $1 AND status <> 'delivered'",
                )
                .bind(&post_id)
                .bind(code)
                .execute(&self.pool)
                .await?;
                tracing::info!(post = %post_id, status = code, "alert posted");
                return Ok(());
            }
            Ok(response) => (
                Some(i32::from(response.status().as_u16())),
                anyhow!("the alert webhook answered {}", response.status()),
            ),
            // Never the URL: its path is the credential.
            Err(e) => (
                None,
                anyhow::Error::new(e.without_url()).context("the alert webhook cannot be reached"),
            ),
        };
        sqlx::query(
            "UPDATE alert_posts SET attempts = attempts + 1, last_status = $2, last_error = $3 \
              WHERE id = $1 AND status <> 'delivered'",
        )
        .bind(&post_id)
        .bind(code)
        .bind(format!("{error:#}"))
        .execute(&self.pool)
        .await?;
        Err(JobError::Retryable(error))
    }

    async fn record_failure(
        &self,
        conn: &mut sqlx::PgConnection,
        args: &serde_json::Value,
        _attempt: u32,
        error: &str,
        dead: bool,
    ) -> anyhow::Result<()> {
        let Some(id) = args.get("post_id").and_then(|v| v.as_str()) else {
            return Ok(());
        };
        sqlx::query(
            "UPDATE alert_posts SET last_error = $2, \
                    status = CASE WHEN $3 THEN 'dead' ELSE 'pending' END \
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
