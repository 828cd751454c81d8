//! An incident's lifecycle, one rule at a time, in one transaction with the messages it sends:
//! opened when its rule fires (notify once), reminded at most every BILLHOOK_ALERT_REMIND while
//! it fires and nobody acknowledged it, resolved once the rule has been clear for
//! BILLHOOK_ALERT_RESOLVE_AFTER (notify once). The row is locked for the decision and only one
//! incident per rule can be open (a unique index), so two evaluations racing notify once.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use super::rules::{Finding, Rule};
use super::settings::AlertSettings;

/// What happened to an incident at this evaluation; each is one `alert_history` row and the
/// messages keyed on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Opened,
    Reminded,
    Resolved,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Reminded => "reminded",
            Self::Resolved => "resolved",
        }
    }
}

/// A transition to announce.
#[derive(Debug, Clone)]
pub struct Transition {
    pub incident_id: String,
    pub history_id: i64,
    pub action: Action,
    pub opened_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Open {
    id: String,
    opened_at: DateTime<Utc>,
    last_notified_at: DateTime<Utc>,
    acknowledged_at: Option<DateTime<Utc>>,
    clear_since: Option<DateTime<Utc>>,
}

fn after(at: DateTime<Utc>, wait: std::time::Duration) -> DateTime<Utc> {
    at + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)
}

/// Moves `rule`'s incident on by what the rule saw at `now` (`None`: the rule is off, which
/// counts as clear). Returns the transition to announce, if any.
pub async fn advance(
    conn: &mut PgConnection,
    settings: &AlertSettings,
    rule: Rule,
    finding: Option<&Finding>,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Transition>> {
    let open: Option<Open> = sqlx::query_as(
        "SELECT id, opened_at, last_notified_at, acknowledged_at, clear_since \
           FROM alert_incidents WHERE rule = $1 AND state = 'open' FOR UPDATE",
    )
    .bind(rule.name())
    .fetch_optional(&mut *conn)
    .await?;
    let firing = finding.filter(|f| f.firing);
    match (open, firing) {
        (None, None) => Ok(None),
        (None, Some(f)) => open_incident(conn, f, now).await,
        (Some(open), Some(f)) => {
            sqlx::query(
                "UPDATE alert_incidents SET value = $2, peak = greatest(peak, $2), detail = $3, \
                        last_fired_at = $4, clear_since = NULL WHERE id = $1",
            )
            .bind(&open.id)
            .bind(f.value)
            .bind(detail(f))
            .bind(now)
            .execute(&mut *conn)
            .await?;
            if open.acknowledged_at.is_some() || now < after(open.last_notified_at, settings.remind)
            {
                return Ok(None);
            }
            sqlx::query("UPDATE alert_incidents SET last_notified_at = $2 WHERE id = $1")
                .bind(&open.id)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            let history_id = history(conn, &open.id, Action::Reminded, Some(f.value), now).await?;
            Ok(Some(Transition {
                incident_id: open.id,
                history_id,
                action: Action::Reminded,
                opened_at: open.opened_at,
            }))
        }
        (Some(open), None) => {
            let clear_since = open.clear_since.unwrap_or(now);
            if now < after(clear_since, settings.resolve_after) {
                if open.clear_since.is_none() {
                    sqlx::query("UPDATE alert_incidents SET clear_since = $2 WHERE id = $1")
                        .bind(&open.id)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                }
                return Ok(None);
            }
            let value = finding.map(|f| f.value);
            sqlx::query(
                "UPDATE alert_incidents SET state = 'resolved', resolved_at = $2, \
                        clear_since = $3, value = coalesce($4, value) WHERE id = $1",
            )
            .bind(&open.id)
            .bind(now)
            .bind(clear_since)
            .bind(value)
            .execute(&mut *conn)
            .await?;
            let history_id = history(conn, &open.id, Action::Resolved, value, now).await?;
            Ok(Some(Transition {
                incident_id: open.id,
                history_id,
                action: Action::Resolved,
                opened_at: open.opened_at,
            }))
        }
    }
}

fn detail(f: &Finding) -> serde_json::Value {
    let mut detail = f.detail.clone();
    if let Some(map) = detail.as_object_mut() {
        map.insert("figure".to_owned(), f.figure.clone().into());
    }
    detail
}

async fn open_incident(
    conn: &mut PgConnection,
    f: &Finding,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Transition>> {
    let id = format!("alr_{}", ulid::Ulid::generate());
    let inserted = sqlx::query(
        "INSERT INTO alert_incidents (id, rule, threshold, value, peak, detail, opened_at, \
                                      last_fired_at, last_notified_at) \
         VALUES ($1, $2, $3, $4, $4, $5, $6, $6, $6) \
         ON CONFLICT (rule) WHERE state = 'open' DO NOTHING",
    )
    .bind(&id)
    .bind(f.rule.name())
    .bind(f.threshold)
    .bind(f.value)
    .bind(detail(f))
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        return Ok(None);
    }
    let history_id = history(conn, &id, Action::Opened, Some(f.value), now).await?;
    Ok(Some(Transition {
        incident_id: id,
        history_id,
        action: Action::Opened,
        opened_at: now,
    }))
}

async fn history(
    conn: &mut PgConnection,
    incident: &str,
    action: Action,
    value: Option<f64>,
    now: DateTime<Utc>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO alert_history (incident_id, action, value, at) VALUES ($1, $2, $3, $4) \
         RETURNING id",
    )
    .bind(incident)
    .bind(action.name())
    .bind(value)
    .bind(now)
    .fetch_one(conn)
    .await
}

/// Why an acknowledgement changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error("no incident {0}")]
    NotFound(String),
    #[error("incident {0} is resolved")]
    Resolved(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Acknowledges an open incident: no more reminders; it still resolves (and says so) by
/// itself. Returns whether it changed anything (`false`: already acknowledged). Recorded in
/// its history and the audit log with `actor`.
pub async fn acknowledge(pool: &sqlx::PgPool, id: &str, actor: &str) -> Result<bool, AckError> {
    let mut tx = pool.begin().await?;
    let state: Option<(String, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT state, acknowledged_at FROM alert_incidents WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    match state {
        None => return Err(AckError::NotFound(id.to_owned())),
        Some((state, _)) if state != "open" => return Err(AckError::Resolved(id.to_owned())),
        Some((_, Some(_))) => return Ok(false),
        Some(_) => {}
    }
    let now = Utc::now();
    sqlx::query(
        "UPDATE alert_incidents SET acknowledged_at = $2, acknowledged_by = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO alert_history (incident_id, action, actor, at) \
         VALUES ($1, 'acknowledged', $2, $3)",
    )
    .bind(id)
    .bind(actor)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO audit_log (event_id, entity, entity_id, action, detail, actor) \
         VALUES ('', 'alert_incident', $1, 'acknowledged', '{}', $2)",
    )
    .bind(id)
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}
