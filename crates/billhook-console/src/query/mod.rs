//! What the console reads, one module per area: typed rows (`Serialize`) that the JSON API
//! answers as they are and the pages render, so both always show the same data.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::api::cursor;

pub mod alerts;
pub mod customers;
pub mod dead_letters;
pub mod dunning;
pub mod emails;
pub mod events;
pub mod notices;
pub mod orders;
pub mod overview;

/// One keyset page of a list, newest first.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from `rows` fetched with `LIMIT limit + 1`: the first `limit` rows, and the
    /// cursor after the last of them (its sort key by `key`) when a further row shows there
    /// is more.
    pub fn from_rows(
        mut rows: Vec<T>,
        limit: i64,
        key: impl Fn(&T) -> (DateTime<Utc>, &str),
    ) -> Self {
        let limit = usize::try_from(limit).unwrap_or(0);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = more
            .then(|| {
                rows.last().map(|last| {
                    let (at, id) = key(last);
                    cursor::encode(at, id)
                })
            })
            .flatten();
        Self {
            items: rows,
            next_cursor,
        }
    }
}

/// A text filter from a query string, where an HTML form sends an empty field as `""`: blank
/// means not given.
pub fn blank_is_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value: Option<String> = serde::Deserialize::deserialize(d)?;
    Ok(value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()))
}

/// A time filter from a query string: RFC 3339 (`2026-12-01T00:00:00Z`), or the
/// `2026-12-01T00:00` an HTML `datetime-local` field sends (read as UTC); blank means not given.
pub fn blank_is_none_time<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let Some(value) = blank_is_none(d)? else {
        return Ok(None);
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(&value) {
        return Ok(Some(at.with_timezone(&Utc)));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(&value, format).ok())
        .map(|at| Some(at.and_utc()))
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{value}` is not a time (RFC 3339, e.g. 2026-12-01T00:00:00Z)"
            ))
        })
}

/// A list row as the JSON-building queries of most areas give it: the keyset sort key (a time
/// and an id) and the row as a JSON object.
pub type Keyed = (DateTime<Utc>, String, serde_json::Value);

impl Page<Keyed> {
    /// The rows without their sort keys.
    pub fn rows(self) -> Page<serde_json::Value> {
        Page {
            items: self.items.into_iter().map(|(_, _, row)| row).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// A keyset page of `Keyed` rows fetched with `LIMIT limit + 1`.
pub fn keyed_page(rows: Vec<Keyed>, limit: i64) -> Page<serde_json::Value> {
    Page::from_rows(rows, limit, |(at, id, _)| (*at, id.as_str())).rows()
}

/// Rows as JSON objects from a query whose one column is `jsonb`, bound to `key` as `$1`.
pub async fn json_rows(
    pool: &sqlx::PgPool,
    sql: &'static str,
    key: &str,
) -> Result<Vec<serde_json::Value>, crate::api::ApiError> {
    Ok(sqlx::query_scalar::<_, serde_json::Value>(sql)
        .bind(key)
        .fetch_all(pool)
        .await?)
}

/// One JSON row, or a 404 naming what was asked for.
pub async fn json_row(
    pool: &sqlx::PgPool,
    sql: &'static str,
    key: &str,
    what: &str,
) -> Result<serde_json::Value, crate::api::ApiError> {
    sqlx::query_scalar::<_, serde_json::Value>(sql)
        .bind(key)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| crate::api::ApiError::NotFound(format!("no {what} {key}")))
}

/// Refuses a value not among `allowed`, naming them.
pub fn one_of(
    field: &str,
    value: Option<&str>,
    allowed: &[&str],
) -> Result<(), crate::api::ApiError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(crate::api::ApiError::BadRequest(format!(
            "{field} `{v}` is not one of {}",
            allowed.join(", ")
        ))),
        _ => Ok(()),
    }
}
