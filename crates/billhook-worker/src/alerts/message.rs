//! What an alert says, the same on every channel: what fired, the figure against its threshold,
//! since when, the first few events or jobs concerned with a link to each in the console
//! (BILLHOOK_CONSOLE_URL), and what to do. Built from the incident's stored row, never from
//! payloads: it holds ids and counts, no customer or card details and no secret.

use chrono::{DateTime, Utc};
use reqwest::Url;
use serde_json::{Value, json};

use super::incident::Action;
use super::rules::{Rule, age_text};

/// An incident as a message shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Incident {
    pub id: String,
    pub rule: String,
    pub state: String,
    pub threshold: f64,
    pub value: f64,
    pub peak: f64,
    pub detail: Value,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
}

/// The link to a page of the console, when its address is configured.
pub fn link(base: Option<&Url>, path: &str) -> Option<String> {
    base.map(|b| format!("{}{path}", b.as_str().trim_end_matches('/')))
}

fn item_path(item: &Value) -> Option<String> {
    let id = item["id"].as_str()?;
    let encoded = urlencoding(id);
    match item["kind"].as_str()? {
        "event" => Some(format!("/events/{encoded}")),
        "email" => Some(format!("/emails/{encoded}")),
        "notice" => Some(format!("/notices/{encoded}")),
        "dead_letter" => Some(format!(
            "/dead-letters?kind={}",
            urlencoding(item["job_kind"].as_str().unwrap_or_default())
        )),
        _ => None,
    }
}

/// Ids are ours or Stripe's (letters, digits, `_`); anything else is escaped all the same.
fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The message's variables, as the `alert` email template and the notice's data take them.
pub fn data(incident: &Incident, action: Action, console: Option<&Url>) -> Value {
    let rule = Rule::from_name(&incident.rule);
    let title = rule.map_or(incident.rule.as_str(), |r| r.title());
    let items: Vec<Value> = incident.detail["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    json!({
                        "label": item["label"].as_str().unwrap_or_default(),
                        "url": item_path(item).and_then(|p| link(console, &p)),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let lasted = incident
        .resolved_at
        .map(|at| age_text((at - incident.opened_at).as_seconds_f64()));
    json!({
        "action": action.name(),
        "rule": incident.rule,
        "title": title,
        "figure": incident.detail["figure"].as_str().unwrap_or_default(),
        "threshold": incident.threshold,
        "value": incident.value,
        "peak": incident.peak,
        "since": incident.opened_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        "opened_at": incident.opened_at,
        "resolved_at": incident.resolved_at,
        "lasted": lasted,
        "by_reason": incident.detail.get("by_reason"),
        "items": items,
        "what_to_do": rule.map_or("", Rule::what_to_do),
        "incident_id": incident.id,
        "incident_url": link(console, &format!("/alerts/{}", urlencoding(&incident.id))),
    })
}

/// The headline every channel starts with.
pub fn headline(data: &Value) -> String {
    let title = data["title"].as_str().unwrap_or_default();
    match data["action"].as_str() {
        Some("resolved") => format!("Resolved: {title}"),
        Some("reminded") => format!("Still open: {title}"),
        _ => format!("Alert: {title}"),
    }
}

/// Slack's escaping of `&`, `<` and `>` in message text.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Slack incoming-webhook body (`text` in Slack's mrkdwn), which Slack-compatible receivers
/// (Mattermost, Rocket.Chat, Discord's /slack endpoint) also take.
pub fn slack_body(data: &Value) -> Value {
    let mut text = format!("*{}*\n", slack_escape(&headline(data)));
    let figure = data["figure"].as_str().unwrap_or_default();
    match data["action"].as_str() {
        Some("resolved") => text.push_str(&format!(
            "Clear now, after {} (opened {}; last figure: {}).\n",
            data["lasted"].as_str().unwrap_or_default(),
            data["since"].as_str().unwrap_or_default(),
            slack_escape(figure)
        )),
        _ => text.push_str(&format!(
            "{} since {}.\n",
            slack_escape(figure),
            data["since"].as_str().unwrap_or_default()
        )),
    }
    if let Some(items) = data["items"].as_array().filter(|i| !i.is_empty()) {
        for item in items {
            let label = slack_escape(item["label"].as_str().unwrap_or_default());
            match item["url"].as_str() {
                Some(url) => text.push_str(&format!("• <{url}|{label}>\n")),
                None => text.push_str(&format!("• {label}\n")),
            }
        }
    }
    if data["action"].as_str() != Some("resolved") {
        text.push_str(&format!(
            "What to do: {}\n",
            slack_escape(data["what_to_do"].as_str().unwrap_or_default())
        ));
    }
    if let Some(url) = data["incident_url"].as_str() {
        text.push_str(&format!(
            "<{url}|Incident {}>",
            data["incident_id"].as_str().unwrap_or_default()
        ));
    } else {
        text.push_str(&format!(
            "Incident {}",
            data["incident_id"].as_str().unwrap_or_default()
        ));
    }
    json!({ "text": text })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident() -> Incident {
        Incident {
            id: "alr_01".into(),
            rule: "event_failures".into(),
            state: "open".into(),
            threshold: 5.0,
            value: 7.0,
            peak: 7.0,
            detail: json!({ "figure": "7 in the last 1h (alert above 5)", "items": [
                { "kind": "event", "id": "evt_1", "label": "event evt_1 (dead)" },
                { "kind": "dead_letter", "id": "j1", "job_kind": "send_email", "label": "send_email job j1" },
                { "kind": "job", "id": "j2", "label": "job <j2>" },
            ]}),
            opened_at: "2026-12-03T06:10:00Z".parse().expect("time"),
            resolved_at: None,
            acknowledged_by: None,
        }
    }

    #[test]
    fn items_link_to_the_console_when_its_address_is_known() {
        let base: Url = "https://ops.example/console/".parse().expect("url");
        let data = data(&incident(), Action::Opened, Some(&base));
        assert_eq!(
            data["items"][0]["url"],
            "https://ops.example/console/events/evt_1"
        );
        assert_eq!(
            data["items"][1]["url"],
            "https://ops.example/console/dead-letters?kind=send_email"
        );
        assert!(data["items"][2]["url"].is_null());
        assert_eq!(
            data["incident_url"],
            "https://ops.example/console/alerts/alr_01"
        );
        let without = super::data(&incident(), Action::Opened, None);
        assert!(without["items"][0]["url"].is_null());
    }

    #[test]
    fn the_slack_text_escapes_and_links() {
        let base: Url = "https://ops.example".parse().expect("url");
        let body = slack_body(&data(&incident(), Action::Opened, Some(&base)));
        let text = body["text"].as_str().expect("text");
        assert!(
            text.starts_with("*Alert: Stripe events are failing to process*"),
            "{text}"
        );
        assert!(
            text.contains("<https://ops.example/events/evt_1|event evt_1 (dead)>"),
            "{text}"
        );
        assert!(text.contains("• job &lt;j2&gt;"), "{text}");
        assert!(text.contains("What to do:"), "{text}");
    }
}
