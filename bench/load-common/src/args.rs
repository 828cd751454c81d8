//! Checks of the options both load tools take: the receiver's URL, how long a run may last,
//! the per-request timeout and the signing secret. The messages name the options, so they are
//! the tools' own error output.

use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use billhook_core::stripe::{WebhookSecret, WebhookSecrets};
use url::Url;

/// Signatures are made when a run's events are built; the receiver's default tolerance is
/// 300 s, so a run must end well before that.
pub const MAX_RUN_SECS: u64 = 240;

/// Accepts only plain HTTP to 127.0.0.1: the load tools are never pointed at anything but a
/// local receiver.
pub fn checked_url(raw: &str) -> anyhow::Result<Url> {
    let url = Url::parse(raw).with_context(|| format!("--url `{raw}` is not a URL"))?;
    if url.scheme() != "http" || url.host_str() != Some("127.0.0.1") {
        bail!("--url must be http://127.0.0.1:<port>/…; got `{raw}`");
    }
    Ok(url)
}

/// `--max-run-secs`: 1 to [`MAX_RUN_SECS`].
pub fn check_max_run_secs(secs: u64) -> anyhow::Result<()> {
    ensure!(
        (1..=MAX_RUN_SECS).contains(&secs),
        "--max-run-secs must be 1..={MAX_RUN_SECS} (signatures expire after 300 s)"
    );
    Ok(())
}

/// `--request-timeout-ms`: 1 ms to one minute.
pub fn request_timeout(ms: u64) -> anyhow::Result<Duration> {
    ensure!(
        (1..=60_000).contains(&ms),
        "--request-timeout-ms must be 1..=60000"
    );
    Ok(Duration::from_millis(ms))
}

/// `--secret`, written as BILLHOOK_WEBHOOK_SECRETS: the first secret signs every event.
pub fn signing_secret(raw: &str) -> anyhow::Result<WebhookSecret> {
    let secrets = WebhookSecrets::parse(raw).context("--secret")?;
    Ok(secrets.first().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_to_127_0_0_1_is_accepted() {
        assert!(checked_url("http://127.0.0.1:8080/api/webhooks/stripe").is_ok());
        assert!(checked_url("https://127.0.0.1:8080/").is_err());
        assert!(checked_url("http://example.com/").is_err());
        assert!(checked_url("http://localhost:8080/").is_err());
        assert!(checked_url("nope").is_err());
    }

    #[test]
    fn a_run_ends_before_its_signatures_expire() {
        assert!(check_max_run_secs(1).is_ok());
        assert!(check_max_run_secs(MAX_RUN_SECS).is_ok());
        assert!(check_max_run_secs(0).is_err());
        assert!(check_max_run_secs(MAX_RUN_SECS + 1).is_err());
    }

    #[test]
    fn request_timeouts_are_bounded() {
        assert_eq!(request_timeout(250).ok(), Some(Duration::from_millis(250)));
        assert!(request_timeout(0).is_err());
        assert!(request_timeout(60_001).is_err());
    }

    #[test]
    fn the_first_secret_signs() {
        let secret = signing_secret("one=whsec_a,two=whsec_b").expect("secrets");
        assert_eq!(secret.label(), "one");
        assert!(signing_secret("").is_err());
    }
}
