//! Template filters for values the pages show as they are stored.

use std::fmt::Display;

use serde_json::Value;

/// A JSON value as text: a string without its quotes, nothing as `—`, anything else as JSON.
#[askama::filter_fn]
pub fn text(value: &Value, _: &dyn askama::Values) -> askama::Result<String> {
    Ok(match value {
        Value::Null => "—".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// An optional value, or `—`.
#[askama::filter_fn]
pub fn or_dash<T: Display>(value: &Option<T>, _: &dyn askama::Values) -> askama::Result<String> {
    Ok(value
        .as_ref()
        .map_or_else(|| "—".to_owned(), ToString::to_string))
}

/// A time as `2026-12-02 19:23:45`, UTC.
#[askama::filter_fn]
pub fn when(
    value: &chrono::DateTime<chrono::Utc>,
    _: &dyn askama::Values,
) -> askama::Result<String> {
    Ok(format_time(value))
}

fn format_time(value: &chrono::DateTime<chrono::Utc>) -> String {
    value.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// An optional time, or `—`.
#[askama::filter_fn]
pub fn when_opt(
    value: &Option<chrono::DateTime<chrono::Utc>>,
    _: &dyn askama::Values,
) -> askama::Result<String> {
    Ok(value.as_ref().map_or_else(|| "—".to_owned(), format_time))
}

/// The first `n` characters of a long text, with `…`.
#[askama::filter_fn]
pub fn clip(value: &str, _: &dyn askama::Values, n: usize) -> askama::Result<String> {
    Ok(match value.char_indices().nth(n) {
        Some((at, _)) => format!("{}…", &value[..at]),
        None => value.to_owned(),
    })
}

/// A field name as a heading: `paid_at` as `paid at`.
#[askama::filter_fn]
pub fn label(value: &str, _: &dyn askama::Values) -> askama::Result<String> {
    Ok(value.replace('_', " "))
}
