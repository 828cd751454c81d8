//! Turning the JSON rows of `query` into what the generic record templates show: cells with
//! their text, a link when the value is the id of something the console has a page for, and a
//! status badge for statuses.

use serde_json::Value;

/// One table cell or fact.
pub struct Cell {
    pub text: String,
    pub href: Option<String>,
    /// Shown as a status badge (`s-<text>`).
    pub badge: bool,
    /// Long or structured: shown as preformatted JSON.
    pub block: bool,
}

/// The console's page for an id, by its Stripe or Billhook prefix.
pub fn link(id: &str) -> Option<String> {
    const PAGES: &[(&str, &str)] = &[
        ("evt_", "/events/"),
        ("cus_", "/customers/"),
        ("ord_", "/orders/"),
        ("dun_", "/dunning-runs/"),
        ("eml_", "/emails/"),
        ("ntf_", "/notices/"),
    ];
    PAGES
        .iter()
        .find(|(prefix, _)| id.starts_with(prefix))
        .map(|(_, path)| format!("{path}{}", urlencode(id)))
}

fn urlencode(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|s| s.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// The cell for `field` = `value`.
pub fn cell(field: &str, value: &Value) -> Cell {
    let badge = matches!(field, "status" | "state") && value.is_string();
    match value {
        Value::Null => Cell {
            text: "—".to_owned(),
            href: None,
            badge: false,
            block: false,
        },
        Value::String(s) => Cell {
            href: if field == "reference" { None } else { link(s) },
            text: s.clone(),
            badge,
            block: false,
        },
        Value::Array(_) | Value::Object(_) => Cell {
            text: serde_json::to_string_pretty(value).unwrap_or_default(),
            href: None,
            badge: false,
            block: true,
        },
        other => Cell {
            text: other.to_string(),
            href: None,
            badge: false,
            block: false,
        },
    }
}

/// A table: its columns and rows of cells.
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// Rows of `items` with the given columns.
    pub fn of(columns: &[&str], items: &[Value]) -> Self {
        Self {
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: items
                .iter()
                .map(|item| columns.iter().map(|c| cell(c, &item[*c])).collect())
                .collect(),
        }
    }

    /// Rows of `items` with every field the first one has, in its order.
    pub fn all(items: &[Value]) -> Self {
        let columns: Vec<String> = items
            .first()
            .and_then(Value::as_object)
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        let names: Vec<&str> = columns.iter().map(String::as_str).collect();
        Self::of(&names, items)
    }
}

/// A part of a record's page.
pub enum Section {
    Facts(Vec<(String, Cell)>),
    Table(Table),
    Empty,
}

/// The facts of one object: each field and its cell.
pub fn facts(object: &Value) -> Vec<(String, Cell)> {
    object
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), cell(k, v))).collect())
        .unwrap_or_default()
}

/// The parts of a record's JSON (as the API gives it) named in `order`, titled by their key:
/// objects as facts, lists as tables.
pub fn sections(record: &Value, order: &[&str]) -> Vec<(String, Section)> {
    order
        .iter()
        .map(|key| {
            let section = match &record[*key] {
                Value::Array(items) if items.is_empty() => Section::Empty,
                Value::Array(items) => Section::Table(Table::all(items)),
                Value::Null => Section::Empty,
                other => Section::Facts(facts(other)),
            };
            (key.replace('_', " "), section)
        })
        .collect()
}
