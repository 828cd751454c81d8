//! `billhook-worker alerts`: the incidents (open ones, or every recent one), acknowledging one,
//! and one evaluation of the rules now.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::alerts::channels::Channels;
use crate::alerts::incident;
use crate::alerts::{Alerts, Tick};
use crate::daemon::settings::RunSettings;
use crate::email::Mailer;
use crate::notify::Outbox;

#[derive(clap::Subcommand, Debug)]
pub enum AlertsCommand {
    /// The open incidents (--all: every incident, newest first).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Acknowledge an open incident: no more reminders; it still resolves by itself.
    Ack {
        /// The incident (alr_…).
        id: String,
        /// Who acknowledges, for the audit log.
        #[arg(long, env = "USER", default_value = "cli")]
        actor: String,
    },
    /// Evaluate the rules now (as the daemon does every BILLHOOK_ALERT_INTERVAL) and announce
    /// what changed; prints every rule's figure.
    Evaluate,
}

pub async fn run(
    pool: &PgPool,
    settings: &RunSettings,
    command: AlertsCommand,
) -> anyhow::Result<()> {
    match command {
        AlertsCommand::List { all, limit } => list(pool, all, limit).await,
        AlertsCommand::Ack { id, actor } => {
            if incident::acknowledge(pool, &id, &actor).await? {
                println!("{id} acknowledged by {actor}: no more reminders");
            } else {
                println!("{id} was already acknowledged");
            }
            Ok(())
        }
        AlertsCommand::Evaluate => {
            let outbox = Outbox::from_settings(&settings.notify)?;
            let alerts = Alerts {
                pool: pool.clone(),
                channels: Channels {
                    settings: settings.alerts.clone(),
                    mailer: Mailer {
                        max_attempts: settings.email.max_attempts,
                        payment_failed_hold: settings.email.payment_failed_hold,
                    },
                    outbox: settings.alerts.notify_app.then_some(outbox),
                },
            };
            let evaluation = match alerts.tick(Utc::now()).await? {
                Tick::Evaluated(evaluation) => evaluation,
                Tick::Skipped(why) => {
                    println!("nothing done: {why}");
                    return Ok(());
                }
            };
            for f in &evaluation.findings {
                let state = if f.firing { "FIRING" } else { "ok" };
                println!("{:<16} {state:<7} {}", f.rule.name(), f.figure);
            }
            for (rule, t) in &evaluation.transitions {
                println!("{} {} ({})", t.incident_id, t.action.name(), rule.name());
            }
            Ok(())
        }
    }
}

type Row = (
    String,
    String,
    String,
    serde_json::Value,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<String>,
);

async fn list(pool: &PgPool, all: bool, limit: i64) -> anyhow::Result<()> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, rule, state, detail, opened_at, resolved_at, acknowledged_by \
           FROM alert_incidents WHERE $1 OR state = 'open' \
          ORDER BY opened_at DESC, id DESC LIMIT $2",
    )
    .bind(all)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        println!(
            "{}",
            if all {
                "no incidents"
            } else {
                "no open incidents"
            }
        );
    }
    for (id, rule, state, detail, opened, resolved, acked) in rows {
        let until = resolved.map_or(String::new(), |r| format!(" → {}", r.format("%F %T")));
        let ack = acked.map_or(String::new(), |by| format!(", acknowledged by {by}"));
        println!(
            "{id}  {rule:<16} {state:<8} {}{until}{ack}\n    {}",
            opened.format("%F %T"),
            detail["figure"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}
