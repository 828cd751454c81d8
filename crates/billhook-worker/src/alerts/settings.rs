//! Settings of alerts: the rules' thresholds, the incident lifecycle and the channels.
//! docs/configuration.md is the reference page; docs/alerts.md says what each rule means.

use std::fmt;
use std::time::Duration;

use billhook_core::config::{Secret, positive_duration};
use reqwest::Url;
use secrecy::{ExposeSecret as _, SecretString};

/// A rule on a count over a window: `N/WINDOW` fires when more than N happened in the last
/// WINDOW (`5/1h`); `off` disables it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountRule {
    Off,
    Above { count: u64, window: Duration },
}

/// A rule on how long something has lasted: `DURATION` fires when it has lasted longer
/// (`15m`); `off` disables it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeRule {
    Off,
    Longer(Duration),
}

pub fn count_rule(value: &str) -> Result<CountRule, String> {
    if value.trim().eq_ignore_ascii_case("off") {
        return Ok(CountRule::Off);
    }
    let (count, window) = value
        .split_once('/')
        .ok_or_else(|| format!("`{value}` is not COUNT/WINDOW (such as 5/1h) or off"))?;
    let count = count
        .trim()
        .parse()
        .map_err(|_| format!("`{count}` is not a whole number"))?;
    let window = positive_duration(window.trim())?;
    Ok(CountRule::Above { count, window })
}

pub fn age_rule(value: &str) -> Result<AgeRule, String> {
    if value.trim().eq_ignore_ascii_case("off") {
        return Ok(AgeRule::Off);
    }
    positive_duration(value.trim()).map(AgeRule::Longer)
}

pub fn slack_url(value: &str) -> Result<SlackUrl, String> {
    let url = Url::parse(value).map_err(|_| "not a URL (its text is not shown)".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("only http and https URLs are accepted".to_owned());
    }
    Ok(SlackUrl(SecretString::from(value.to_owned())))
}

/// An incoming-webhook URL: its path is the credential, so it is never shown.
#[derive(Clone)]
pub struct SlackUrl(SecretString);

impl SlackUrl {
    pub fn url(&self) -> Url {
        Url::parse(self.0.expose_secret()).expect("checked when parsed")
    }
}

impl fmt::Debug for SlackUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SlackUrl(<redacted>)")
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct AlertSettings {
    /// How often `run` evaluates the alert rules (one evaluation at a time across every worker
    /// process).
    #[arg(id = "alert_interval", long = "alert-interval", env = "BILLHOOK_ALERT_INTERVAL", default_value = "1m",
          value_parser = positive_duration)]
    pub interval: Duration,

    /// Event processing failures (retries and dead letters of ProcessEvent jobs): more than
    /// COUNT in WINDOW.
    #[arg(id = "alert_event_failures", long = "alert-event-failures", env = "BILLHOOK_ALERT_EVENT_FAILURES",
          default_value = "5/1h", value_parser = count_rule)]
    pub event_failures: CountRule,

    /// New dead letters of any kind: more than COUNT in WINDOW.
    #[arg(id = "alert_dead_letters", long = "alert-dead-letters", env = "BILLHOOK_ALERT_DEAD_LETTERS",
          default_value = "10/1h", value_parser = count_rule)]
    pub dead_letters: CountRule,

    /// Any dead letter not yet requeued, however old (`on` or `off`).
    #[arg(id = "alert_any_dead_letter", long = "alert-any-dead-letter", env = "BILLHOOK_ALERT_ANY_DEAD_LETTER",
          default_value = "off", value_parser = on_off)]
    pub any_dead_letter: bool,

    /// Deliveries the receivers refused for their signature or its timestamp: more than COUNT
    /// in WINDOW.
    #[arg(id = "alert_rejected", long = "alert-rejected", env = "BILLHOOK_ALERT_REJECTED",
          default_value = "20/1h", value_parser = count_rule)]
    pub rejected: CountRule,

    /// A notice to the application still undelivered after failing for longer than this (the
    /// fulfilment path).
    #[arg(id = "alert_notices_failing", long = "alert-notices-failing", env = "BILLHOOK_ALERT_NOTICES_FAILING",
          default_value = "15m", value_parser = age_rule)]
    pub notices_failing: AgeRule,

    /// An email still unsent after failing for longer than this (SMTP down).
    #[arg(id = "alert_emails_failing", long = "alert-emails-failing", env = "BILLHOOK_ALERT_EMAILS_FAILING",
          default_value = "30m", value_parser = age_rule)]
    pub emails_failing: AgeRule,

    /// The oldest job due to run has waited longer than this (the workers are behind or
    /// stopped).
    #[arg(id = "alert_oldest_job", long = "alert-oldest-job", env = "BILLHOOK_ALERT_OLDEST_JOB",
          default_value = "10m", value_parser = age_rule)]
    pub oldest_job: AgeRule,

    /// No event received for longer than this. Off by default: quiet accounts exist.
    #[arg(id = "alert_no_events", long = "alert-no-events", env = "BILLHOOK_ALERT_NO_EVENTS",
          default_value = "off", value_parser = age_rule)]
    pub no_events: AgeRule,

    /// The last reconciliation run recovered missed events, failed, or found a problem (the
    /// endpoint disabled in Stripe, the watermark near Stripe's 30-day horizon).
    #[arg(id = "alert_reconcile", long = "alert-reconcile", env = "BILLHOOK_ALERT_RECONCILE",
          default_value = "on", value_parser = on_off)]
    pub reconcile: bool,

    /// How often an open incident that nobody acknowledged is sent again.
    #[arg(id = "alert_remind", long = "alert-remind", env = "BILLHOOK_ALERT_REMIND", default_value = "4h",
          value_parser = positive_duration)]
    pub remind: Duration,

    /// How long a rule must stay clear before its incident is resolved (no flapping).
    #[arg(id = "alert_resolve_after", long = "alert-resolve-after", env = "BILLHOOK_ALERT_RESOLVE_AFTER", default_value = "10m",
          value_parser = humantime::parse_duration)]
    pub resolve_after: Duration,

    /// Where alert emails go (comma-separated addresses), over the SMTP settings of all
    /// emails. Unset: no alert emails.
    #[arg(
        id = "alert_email",
        long = "alert-email",
        env = "BILLHOOK_ALERT_EMAIL",
        value_delimiter = ','
    )]
    pub email: Vec<String>,

    /// A Slack-compatible incoming-webhook URL alerts are posted to. Never shown: its path is
    /// its credential.
    #[arg(id = "alert_slack_url", long = "alert-slack-url", env = "BILLHOOK_ALERT_SLACK_URL", hide_env_values = true,
          value_parser = Secret(slack_url))]
    pub slack_url: Option<SlackUrl>,

    /// Send `alert.opened` and `alert.resolved` notices to the application (BILLHOOK_NOTIFY_URL).
    #[arg(id = "alert_notify_app", long = "alert-notify-app", env = "BILLHOOK_ALERT_NOTIFY_APP", default_value = "off",
          value_parser = on_off)]
    pub notify_app: bool,

    /// Longest one post to the Slack URL may take.
    #[arg(id = "alert_slack_timeout", long = "alert-slack-timeout", env = "BILLHOOK_ALERT_SLACK_TIMEOUT", default_value = "10s",
          value_parser = positive_duration)]
    pub slack_timeout: Duration,

    /// Attempts at posting one alert before it is dead-lettered.
    #[arg(id = "alert_slack_max_attempts", long = "alert-slack-max-attempts", env = "BILLHOOK_ALERT_SLACK_MAX_ATTEMPTS",
          default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub slack_max_attempts: u32,

    /// The console's address as people reach it (`https://billhook.example.com`): messages link
    /// to the events and jobs concerned. Unset: messages name them without links.
    #[arg(id = "alert_console_url", long = "console-url", env = "BILLHOOK_CONSOLE_URL", value_parser = console_url)]
    pub console_url: Option<Url>,
}

fn on_off(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("`{value}` is not on or off")),
    }
}

fn console_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("`{value}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("only http and https URLs are accepted".to_owned());
    }
    Ok(url)
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            event_failures: CountRule::Above {
                count: 5,
                window: Duration::from_secs(3600),
            },
            dead_letters: CountRule::Above {
                count: 10,
                window: Duration::from_secs(3600),
            },
            any_dead_letter: false,
            rejected: CountRule::Above {
                count: 20,
                window: Duration::from_secs(3600),
            },
            notices_failing: AgeRule::Longer(Duration::from_secs(15 * 60)),
            emails_failing: AgeRule::Longer(Duration::from_secs(30 * 60)),
            oldest_job: AgeRule::Longer(Duration::from_secs(10 * 60)),
            no_events: AgeRule::Off,
            reconcile: true,
            remind: Duration::from_secs(4 * 3600),
            resolve_after: Duration::from_secs(10 * 60),
            email: Vec::new(),
            slack_url: None,
            notify_app: false,
            slack_timeout: Duration::from_secs(10),
            slack_max_attempts: 20,
            console_url: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_their_forms_and_refuse_others() {
        assert_eq!(
            count_rule("5/1h"),
            Ok(CountRule::Above {
                count: 5,
                window: Duration::from_secs(3600)
            })
        );
        assert_eq!(count_rule("OFF"), Ok(CountRule::Off));
        assert!(count_rule("5").is_err());
        assert!(count_rule("x/1h").is_err());
        assert!(count_rule("5/0s").is_err());
        assert_eq!(
            age_rule("15m"),
            Ok(AgeRule::Longer(Duration::from_secs(900)))
        );
        assert_eq!(age_rule("off"), Ok(AgeRule::Off));
        assert!(age_rule("soon").is_err());
        assert_eq!(on_off("on"), Ok(true));
        assert!(on_off("maybe").is_err());
    }

    #[test]
    fn a_slack_url_is_never_shown() {
        let url = slack_url("https://hooks.slack.test/services/T000/B000/XXXXSECRET").expect("url");
        assert!(!format!("{url:?}").contains("SECRET"));
        let refused = slack_url("hooks.slack.test/services/SECRET").expect_err("no scheme");
        assert!(!refused.contains("SECRET"), "{refused}");
    }
}
