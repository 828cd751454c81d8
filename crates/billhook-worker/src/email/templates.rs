//! Email templates: a subject, a text part and an HTML part per template, rendered with
//! minijinja. Built-in defaults are compiled in; a file of the same name in the override
//! directory (`NAME.subject`, `NAME.txt`, `NAME.html`) replaces any one of them, read at each
//! render so an operator's change needs no rebuild or restart. HTML parts are auto-escaped.

use std::path::Path;

use anyhow::Context as _;
use minijinja::{Environment, Value as Jinja};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    OrderConfirmation,
    PaymentReceipt,
    PaymentFailed,
    RefundConfirmation,
    TrialEnding,
    DunningReminder,
    FinalWarning,
    SubscriptionCancelled,
    /// An alert's opening, reminder or resolution, to BILLHOOK_ALERT_EMAIL.
    Alert,
    /// The daily summary, to BILLHOOK_SUMMARY_EMAIL, with its chart inline.
    DailySummary,
}

macro_rules! built_in {
    ($name:literal) => {
        [
            include_str!(concat!("../../templates/", $name, ".subject")),
            include_str!(concat!("../../templates/", $name, ".txt")),
            include_str!(concat!("../../templates/", $name, ".html")),
        ]
    };
}

const PARTS: [&str; 3] = ["subject", "txt", "html"];

impl Template {
    pub const ALL: [Template; 10] = [
        Self::OrderConfirmation,
        Self::PaymentReceipt,
        Self::PaymentFailed,
        Self::RefundConfirmation,
        Self::TrialEnding,
        Self::DunningReminder,
        Self::FinalWarning,
        Self::SubscriptionCancelled,
        Self::Alert,
        Self::DailySummary,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::OrderConfirmation => "order_confirmation",
            Self::PaymentReceipt => "payment_receipt",
            Self::PaymentFailed => "payment_failed",
            Self::RefundConfirmation => "refund_confirmation",
            Self::TrialEnding => "trial_ending",
            Self::DunningReminder => "dunning_reminder",
            Self::FinalWarning => "final_warning",
            Self::SubscriptionCancelled => "subscription_cancelled",
            Self::Alert => "alert",
            Self::DailySummary => "daily_summary",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    fn built_in(self) -> [&'static str; 3] {
        match self {
            Self::OrderConfirmation => built_in!("order_confirmation"),
            Self::PaymentReceipt => built_in!("payment_receipt"),
            Self::PaymentFailed => built_in!("payment_failed"),
            Self::RefundConfirmation => built_in!("refund_confirmation"),
            Self::TrialEnding => built_in!("trial_ending"),
            Self::DunningReminder => built_in!("dunning_reminder"),
            Self::FinalWarning => built_in!("final_warning"),
            Self::SubscriptionCancelled => built_in!("subscription_cancelled"),
            Self::Alert => built_in!("alert"),
            Self::DailySummary => built_in!("daily_summary"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Images the HTML shows inline (`<img src="cid:ID">`): (ID, PNG bytes).
    pub images: Vec<(String, Vec<u8>)>,
}

/// The Content-ID of the daily summary's chart, as its HTML template names it.
pub const CHART_ID: &str = "chart@billhook";

/// Renders `template` with `data` (a JSON object). An error (a broken override, say) is one
/// no retry will cure: the email is dead-lettered, to be requeued once the template is fixed.
pub fn render(
    template: Template,
    overrides: Option<&Path>,
    data: &Value,
) -> anyhow::Result<Rendered> {
    let mut env = Environment::new();
    env.add_filter("money", money);
    let built_in = template.built_in();
    for (part, default) in PARTS.iter().zip(built_in) {
        let file = format!("{}.{part}", template.name());
        let source = match overrides.map(|dir| dir.join(&file)) {
            Some(path) if path.exists() => std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read the template {}", path.display()))?,
            _ => default.to_owned(),
        };
        env.add_template_owned(file.clone(), source)
            .with_context(|| format!("the template {file} does not parse"))?;
    }
    let context = Jinja::from_serialize(data);
    let part = |part: &str| -> anyhow::Result<String> {
        let file = format!("{}.{part}", template.name());
        env.get_template(&file)
            .and_then(|t| t.render(&context))
            .with_context(|| format!("the template {file} does not render"))
    };
    Ok(Rendered {
        // A subject is one line, whatever the template's trailing newline.
        subject: part("subject")?
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ")
            .trim()
            .to_owned(),
        text: part("txt")?,
        html: part("html")?,
        images: images(template, data)?,
    })
}

/// The images a template's HTML carries inline: the summary's chart, drawn from its data.
fn images(template: Template, data: &Value) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    if template != Template::DailySummary {
        return Ok(Vec::new());
    }
    let hourly = serde_json::from_value(data["hourly"].clone())
        .context("the summary's data has no hourly series")?;
    Ok(vec![(
        CHART_ID.to_owned(),
        crate::summary::chart::png(&hourly)?,
    )])
}

/// `{{ amount | money(currency) }}`: minor units as `50.00 USD` (`5000 JPY`, `1.500 KWD`).
fn money(amount: Option<i64>, currency: Option<String>) -> String {
    let Some(amount) = amount else {
        return String::new();
    };
    let currency = currency.unwrap_or_default().to_ascii_uppercase();
    let decimals = crate::stripe::money::decimals(&currency);
    if decimals == 0 {
        return format!("{amount} {currency}").trim().to_owned();
    }
    let scale = 10_i64.pow(decimals);
    let sign = if amount < 0 { "-" } else { "" };
    let (whole, fraction) = (amount.abs() / scale, amount.abs() % scale);
    format!(
        "{sign}{whole}.{fraction:0width$} {currency}",
        width = decimals as usize
    )
    .trim()
    .to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn money_follows_the_currency_decimals() {
        assert_eq!(money(Some(5000), Some("usd".into())), "50.00 USD");
        assert_eq!(money(Some(5), Some("eur".into())), "0.05 EUR");
        assert_eq!(money(Some(5000), Some("jpy".into())), "5000 JPY");
        assert_eq!(money(Some(1500), Some("kwd".into())), "1.500 KWD");
        assert_eq!(money(None, Some("usd".into())), "");
    }

    #[test]
    fn every_built_in_template_renders_and_escapes_html() {
        let data = json!({ "name": "Jenny <Rosen>", "amount": 5000, "amount_refunded": 2000,
            "currency": "usd", "order_reference": "order_1", "reference": "pi_1",
            "failure_reason": "Your card has insufficient funds.", "invoice": "in_1",
            "pay_url": "https://pay.example/in_1", "cancel_on": "2026-12-01", "trial_end": "2026-12-01",
            "subscription": "sub_1", "has_payment_method": false, "fully_refunded": false });
        // The customer's templates; the operator's (alerts) have their own test.
        for template in Template::ALL
            .into_iter()
            .filter(|t| !matches!(t, Template::Alert | Template::DailySummary))
        {
            let r = render(template, None, &data).expect("renders");
            assert!(
                !r.subject.is_empty() && !r.subject.contains('\n'),
                "{template:?}"
            );
            assert!(r.text.contains("Jenny <Rosen>"), "{template:?}: {}", r.text);
            assert!(
                r.html.contains("Jenny &lt;Rosen&gt;"),
                "{template:?}: {}",
                r.html
            );
        }
    }

    #[test]
    fn the_alert_template_says_what_fired_and_what_to_do() {
        let data = json!({ "action": "opened", "title": "Emails are <not> being sent",
            "figure": "3 failing", "since": "2026-12-03 06:10 UTC", "what_to_do": "Check SMTP.",
            "items": [{ "label": "email eml_1", "url": "https://ops.example/emails/eml_1" },
                      { "label": "job j1", "url": null }],
            "by_reason": { "mismatch": 4 },
            "incident_id": "alr_1", "incident_url": "https://ops.example/alerts/alr_1" });
        let r = render(Template::Alert, None, &data).expect("renders");
        assert_eq!(r.subject, "[Billhook] Alert: Emails are <not> being sent");
        for part in [
            "3 failing",
            "Since: 2026-12-03 06:10 UTC",
            "email eml_1: https://ops.example/emails/eml_1",
            "  - job j1\n",
            "mismatch: 4",
            "What to do: Check SMTP.",
            "Incident alr_1: https://ops.example/alerts/alr_1",
        ] {
            assert!(r.text.contains(part), "{part} in {}", r.text);
        }
        assert!(
            r.html.contains("Emails are &lt;not&gt; being sent"),
            "{}",
            r.html
        );
        assert!(
            r.html
                .contains("<a href=\"https:&#x2f;&#x2f;ops.example&#x2f;emails&#x2f;eml_1\">"),
            "{}",
            r.html
        );
        let resolved = json!({ "action": "resolved", "title": "T", "figure": "0 failing",
            "since": "2026-12-03 06:10 UTC", "lasted": "25m", "items": [], "incident_id": "alr_1" });
        let r = render(Template::Alert, None, &resolved).expect("renders");
        assert_eq!(r.subject, "[Billhook] Resolved: T");
        assert!(r.text.contains("Clear now, after 25m"), "{}", r.text);
        assert!(!r.text.contains("What to do"), "{}", r.text);
    }

    #[test]
    fn an_override_file_replaces_one_part() {
        let dir =
            std::env::temp_dir().join(format!("billhook-templates-{}", ulid::Ulid::generate()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("payment_receipt.subject"), "Thanks, {{ name }}!").expect("write");
        let r = render(
            Template::PaymentReceipt,
            Some(&dir),
            &json!({ "name": "Ana", "amount": 100,
            "currency": "usd", "reference": "pi_1" }),
        )
        .expect("renders");
        assert_eq!(r.subject, "Thanks, Ana!");
        assert!(r.text.contains("1.00 USD"), "{}", r.text);
        std::fs::write(dir.join("payment_receipt.txt"), "{% if %}").expect("write");
        assert!(render(Template::PaymentReceipt, Some(&dir), &json!({})).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
