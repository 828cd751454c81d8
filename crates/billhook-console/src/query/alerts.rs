//! Alert incidents (issue 15): the list, one incident with its history and the messages each
//! transition sent, and the open ones for the overview.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{Keyed, Page, json_row, json_rows, keyed_page, one_of};
use crate::api::{ApiError, cursor, limit};

pub const STATES: &[&str] = &["open", "resolved"];

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct Filter {
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub state: Option<String>,
    /// A rule, e.g. `event_failures`.
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub rule: Option<String>,
    pub limit: Option<i64>,
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub cursor: Option<String>,
}

/// An incident as lists show it.
const ROW: &str = "jsonb_build_object('id', id, 'rule', rule, 'state', state, \
    'figure', detail->>'figure', 'threshold', threshold, 'value', value, 'peak', peak, \
    'opened_at', opened_at, 'last_fired_at', last_fired_at, 'resolved_at', resolved_at, \
    'acknowledged_by', acknowledged_by, 'acknowledged_at', acknowledged_at)";

pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Page<Value>, ApiError> {
    one_of("state", filter.state.as_deref(), STATES)?;
    let limit = limit(filter.limit)?;
    let after = filter.cursor.as_deref().map(cursor::decode).transpose()?;
    let sql = format!(
        "SELECT opened_at, id, {ROW} FROM alert_incidents \
          WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR rule = $2) \
            AND ($3::timestamptz IS NULL OR (opened_at, id) < ($3, $4)) \
          ORDER BY opened_at DESC, id DESC LIMIT $5"
    );
    let rows: Vec<Keyed> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&filter.state)
        .bind(&filter.rule)
        .bind(after.as_ref().map(|(at, _)| *at))
        .bind(after.as_ref().map(|(_, id)| id.as_str()))
        .bind(limit + 1)
        .fetch_all(pool)
        .await?;
    Ok(keyed_page(rows, limit))
}

/// The open incidents, newest first (the overview).
pub async fn open(pool: &PgPool) -> Result<Vec<Value>, ApiError> {
    let sql = format!(
        "SELECT {ROW} FROM alert_incidents WHERE state = 'open' ORDER BY opened_at DESC, id DESC"
    );
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?)
}

pub async fn show(pool: &PgPool, id: &str) -> Result<Value, ApiError> {
    let incident = json_row(
        pool,
        "SELECT jsonb_build_object('id', id, 'rule', rule, 'state', state, \
                'figure', detail->>'figure', 'threshold', threshold, 'value', value, \
                'peak', peak, 'concerned', detail->'items', 'by_reason', detail->'by_reason', \
                'opened_at', opened_at, 'last_fired_at', last_fired_at, \
                'clear_since', clear_since, 'last_notified_at', last_notified_at, \
                'acknowledged_at', acknowledged_at, 'acknowledged_by', acknowledged_by, \
                'resolved_at', resolved_at) \
           FROM alert_incidents WHERE id = $1",
        id,
        "incident",
    )
    .await?;
    let history = json_rows(
        pool,
        "SELECT jsonb_build_object('id', id, 'action', action, 'value', value, 'actor', actor, \
                'at', at) FROM alert_history WHERE incident_id = $1 ORDER BY id",
        id,
    )
    .await?;
    // What each transition sent: emails (source `alert:<history id>:<address>`), the Slack
    // post and the application's notice (both keyed `alert:<history id>`).
    let messages = json_rows(
        pool,
        "SELECT m FROM ( \
           SELECT e.created_at AS at, jsonb_build_object('channel', 'email', 'id', e.id, \
                  'to', e.recipient, 'status', e.status, 'attempts', e.attempts, \
                  'last_error', e.last_error, 'action', h.action) AS m \
             FROM alert_history h JOIN emails e ON e.template = 'alert' \
              AND e.source ~>=~ ('alert:' || h.id || ':') AND e.source ~<~ ('alert:' || h.id || ';') \
            WHERE h.incident_id = $1 \
           UNION ALL \
           SELECT p.created_at, jsonb_build_object('channel', 'slack', 'id', p.id, \
                  'status', p.status, 'attempts', p.attempts, 'last_status', p.last_status, \
                  'last_error', p.last_error, 'action', h.action) \
             FROM alert_history h JOIN alert_posts p ON p.history_id = h.id \
            WHERE h.incident_id = $1 \
           UNION ALL \
           SELECT n.created_at, jsonb_build_object('channel', 'notice', 'id', n.id, \
                  'status', n.status, 'attempts', n.attempts, 'last_status', n.last_status, \
                  'last_error', n.last_error, 'action', h.action) \
             FROM alert_history h JOIN app_notifications n ON n.dedupe_key = 'alert:' || h.id \
            WHERE h.incident_id = $1) AS sent ORDER BY at",
        id,
    )
    .await?;
    Ok(json!({ "incident": incident, "history": history, "messages": messages }))
}
