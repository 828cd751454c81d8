//! This deployment's webhook endpoint as Stripe has it (`BILLHOOK_STRIPE_WEBHOOK_ENDPOINT`: a
//! `we_…` id or the URL): its status, the events it sends and its API version. Stripe disables
//! an endpoint after days of failed deliveries and then sends nothing, not even retries; an
//! endpoint that does not send a handled type starves a feature silently. Both are problems.

use billhook_core::stripe::event_types;
use serde_json::{Value, json};

use crate::stripe::StripeApi;
use crate::stripe::list::{ListError, Pager};

/// The endpoint's figures (recorded with the run) and what is wrong with it.
#[derive(Debug)]
pub struct Report {
    pub endpoint: Value,
    pub problems: Vec<String>,
    pub disabled: bool,
    pub missing_types: Vec<&'static str>,
}

pub async fn check(api: &StripeApi, wanted: &str) -> Result<Report, ListError> {
    let found =
        if wanted.starts_with("we_") {
            match api
                .get_with_retries(&format!("/v1/webhook_endpoints/{wanted}"), &[])
                .await
            {
                Ok(body) => Some(serde_json::from_str::<Value>(&body).map_err(|e| {
                    ListError::Malformed {
                        path: "/v1/webhook_endpoints".to_owned(),
                        reason: e.to_string(),
                    }
                })?),
                Err(ListError::Refused { status: 404, .. }) => None,
                Err(e) => return Err(e),
            }
        } else {
            find_by_url(api, wanted).await?
        };
    let Some(endpoint) = found else {
        return Ok(Report {
            endpoint: json!({ "wanted": wanted, "found": false }),
            problems: vec![format!(
                "Stripe has no webhook endpoint {wanted} on this account \
                 (BILLHOOK_STRIPE_WEBHOOK_ENDPOINT): no events are being delivered to it"
            )],
            disabled: false,
            missing_types: Vec::new(),
        });
    };
    Ok(report(&endpoint))
}

async fn find_by_url(api: &StripeApi, url: &str) -> Result<Option<Value>, ListError> {
    let wanted = url.trim_end_matches('/');
    let mut pager = Pager::new(api, "/v1/webhook_endpoints", Vec::new(), None);
    while let Some(page) = pager.next().await? {
        for item in &page.data {
            let endpoint: Value =
                serde_json::from_str(item.get()).map_err(|e| ListError::Malformed {
                    path: "/v1/webhook_endpoints".to_owned(),
                    reason: e.to_string(),
                })?;
            let url = endpoint.get("url").and_then(Value::as_str).unwrap_or("");
            if url.trim_end_matches('/') == wanted {
                return Ok(Some(endpoint));
            }
        }
    }
    Ok(None)
}

/// What the endpoint's status and enabled events mean for Billhook.
pub fn report(endpoint: &Value) -> Report {
    let text = |key: &str| endpoint.get(key).and_then(Value::as_str);
    let id = text("id").unwrap_or("?");
    let status = text("status").unwrap_or("unknown");
    let enabled: Vec<&str> = endpoint
        .get("enabled_events")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let all = enabled.contains(&"*");
    let missing_types: Vec<&'static str> = if all {
        Vec::new()
    } else {
        event_types::HANDLED
            .iter()
            .copied()
            .filter(|t| !enabled.contains(t))
            .collect()
    };
    let mut problems = Vec::new();
    let disabled = status != "enabled";
    if disabled {
        problems.push(format!(
            "Stripe's webhook endpoint {id} is {status}: Stripe sends it nothing, not even \
             retries. Fix what made deliveries fail, enable it again in the Dashboard \
             (Developers → Webhooks), and let reconciliation recover what was missed (30 days at most)"
        ));
    }
    if !missing_types.is_empty() {
        problems.push(format!(
            "Stripe's webhook endpoint {id} does not send event types Billhook handles: {}. \
             Add them to the endpoint (reconciliation recovers them meanwhile)",
            missing_types.join(", ")
        ));
    }
    Report {
        endpoint: json!({
            "id": id,
            "url": text("url"),
            "status": status,
            "enabled_events": enabled,
            "api_version": text("api_version"),
            "livemode": endpoint.get("livemode"),
        }),
        problems,
        disabled,
        missing_types,
    }
}

#[cfg(test)]
mod tests {
    use billhook_core::stripe::event_types;
    use serde_json::json;

    use super::report;

    #[test]
    fn an_enabled_endpoint_sending_everything_has_no_problem() {
        let r = report(
            &json!({ "id": "we_1", "status": "enabled", "enabled_events": ["*"],
            "api_version": "2025-03-31.basil", "url": "https://x/webhook" }),
        );
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(r.endpoint["api_version"], "2025-03-31.basil");
    }

    #[test]
    fn a_disabled_endpoint_and_missing_types_are_problems() {
        let r = report(&json!({ "id": "we_1", "status": "disabled",
            "enabled_events": event_types::HANDLED.iter().filter(|t| **t != "invoice.paid").collect::<Vec<_>>() }));
        assert!(r.disabled);
        assert_eq!(r.missing_types, vec!["invoice.paid"]);
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
        assert!(r.problems[0].contains("we_1 is disabled"));
        assert!(r.problems[1].contains("invoice.paid"));
    }
}
