//! Writes a transition's messages, inside the transaction that made the transition: one email
//! per BILLHOOK_ALERT_EMAIL address (the emails outbox), a Slack post (`alert_posts` and its
//! post_alert job), and for openings and resolutions a notice to the application
//! (`app_notifications`). Each is keyed on the transition's history row, so it is written once,
//! and each is delivered by its own jobs with their own retries: a channel that is down holds
//! up neither the others nor the evaluation.

use sqlx::PgConnection;

use super::incident::{Action, Transition};
use super::message::{self, Incident};
use super::settings::AlertSettings;
use crate::email::{Mailer, NewEmail, Template};
use crate::notify::{Notice, Outbox};
use crate::queue::jobs::PostAlert;
use crate::queue::{self, JobError};

/// Where messages go.
#[derive(Debug, Clone)]
pub struct Channels {
    pub settings: AlertSettings,
    pub mailer: Mailer,
    /// `None` unless BILLHOOK_ALERT_NOTIFY_APP is on.
    pub outbox: Option<Outbox>,
}

impl Channels {
    pub async fn announce(
        &self,
        conn: &mut PgConnection,
        transition: &Transition,
    ) -> Result<(), JobError> {
        let incident: Incident = sqlx::query_as(
            "SELECT id, rule, state, threshold, value, peak, detail, opened_at, resolved_at, \
                    acknowledged_by FROM alert_incidents WHERE id = $1",
        )
        .bind(&transition.incident_id)
        .fetch_one(&mut *conn)
        .await?;
        let data = message::data(
            &incident,
            transition.action,
            self.settings.console_url.as_ref(),
        );
        let key = format!("alert:{}", transition.history_id);
        for address in &self.settings.email {
            let source = format!("{key}:{address}");
            self.mailer
                .enqueue(
                    conn,
                    NewEmail {
                        template: Template::Alert,
                        source: &source,
                        recipient: Some(address),
                        event_id: None,
                        data: data.clone(),
                        send_after: None,
                    },
                )
                .await?;
        }
        if let Some(outbox) = &self.outbox
            && transition.action != Action::Reminded
        {
            let kind = format!("alert.{}", transition.action.name());
            outbox
                .enqueue(
                    conn,
                    Notice {
                        kind: &kind,
                        dedupe_key: &key,
                        event_id: None,
                        data: data.clone(),
                    },
                )
                .await?;
        }
        if self.settings.slack_url.is_some() {
            let id = format!("alp_{}", ulid::Ulid::generate());
            let inserted = sqlx::query(
                "INSERT INTO alert_posts (id, history_id, body) VALUES ($1, $2, $3) \
                 ON CONFLICT (history_id) DO NOTHING",
            )
            .bind(&id)
            .bind(transition.history_id)
            .bind(message::slack_body(&data))
            .execute(&mut *conn)
            .await?
            .rows_affected()
                == 1;
            if inserted {
                let job = PostAlert::V1 {
                    post_id: id.clone(),
                };
                queue::push(conn, &job, &id, self.settings.slack_max_attempts, None).await?;
            }
        }
        tracing::info!(incident = %incident.id, rule = %incident.rule,
            action = transition.action.name(), "alert announced");
        Ok(())
    }
}
