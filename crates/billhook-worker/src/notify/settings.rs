//! Settings of notices to the host application, declared here with their defaults;
//! docs/configuration.md is the reference page.

use std::time::Duration;

use billhook_core::config::positive_duration;
use reqwest::Url;

use super::sign::SigningKey;

// Explicit ids: these are flattened into the worker's command line beside DatabaseSettings,
// whose `url` and `timeout` would otherwise collide with ours.
#[derive(clap::Args, Debug, Clone)]
pub struct NotifySettings {
    /// Where notices are POSTed (http or https). Unset: notices are recorded as `skipped` and
    /// nothing is sent.
    #[arg(id = "notify_url", long = "notify-url", env = "BILLHOOK_NOTIFY_URL",
          value_parser = notify_url, requires = "notify_secret")]
    pub url: Option<Url>,

    /// Standard Webhooks signing secret: `whsec_` followed by the base64 of 24 to 64 random
    /// bytes. Required when the URL is set.
    #[arg(id = "notify_secret", long = "notify-secret", env = "BILLHOOK_NOTIFY_SECRET",
          hide_env_values = true, value_parser = SigningKeyParser)]
    pub secret: Option<SigningKey>,

    /// Longest one delivery may take, connecting included; a slower one counts as failed and
    /// is retried.
    #[arg(id = "notify_timeout", long = "notify-timeout", env = "BILLHOOK_NOTIFY_TIMEOUT",
          default_value = "10s", value_parser = positive_duration)]
    pub timeout: Duration,

    /// Attempts at delivering one notice before it is dead-lettered. 20 keeps trying for about
    /// five hours with the default retry settings (5 s doubling to 30 min, jittered): long
    /// enough to ride out a deploy or an afternoon's outage of the application, short enough
    /// that an engineer hears about a notice that cannot be delivered on the same day (dead
    /// letters can be requeued).
    #[arg(id = "notify_max_attempts", long = "notify-max-attempts", env = "BILLHOOK_NOTIFY_MAX_ATTEMPTS",
          default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
}

/// Where notices go and the key that signs them.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: Url,
    pub key: SigningKey,
}

impl NotifySettings {
    /// `None` when no URL is configured. A URL without a secret is refused: unsigned notices
    /// could be forged by anyone who can reach the application.
    pub fn target(&self) -> anyhow::Result<Option<Target>> {
        match (&self.url, &self.secret) {
            (None, _) => Ok(None),
            (Some(url), Some(key)) => Ok(Some(Target {
                url: url.clone(),
                key: key.clone(),
            })),
            (Some(_), None) => anyhow::bail!(
                "BILLHOOK_NOTIFY_URL is set but BILLHOOK_NOTIFY_SECRET is not: notices to the \
                 application are always signed; set the secret (whsec_…) or unset the URL"
            ),
        }
    }
}

fn notify_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("`{value}` is not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!("the scheme must be http or https, not `{other}`")),
    }
}

/// Parses the secret into a [`SigningKey`]. Its errors never contain the value, unlike clap's
/// own "invalid value '…'" message, which would print the secret to the terminal or the log.
#[derive(Clone)]
struct SigningKeyParser;

impl clap::builder::TypedValueParser for SigningKeyParser {
    type Value = SigningKey;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<SigningKey, clap::Error> {
        let name = arg.map_or_else(|| "BILLHOOK_NOTIFY_SECRET".to_owned(), ToString::to_string);
        let refused = |reason: &dyn std::fmt::Display| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for {name}: {reason}\n"),
            )
            .with_cmd(cmd)
        };
        let value = value.to_str().ok_or_else(|| refused(&"not UTF-8"))?;
        SigningKey::parse(value).map_err(|e| refused(&e))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use crate::cli::Cli;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn parse(notify: &[&str]) -> Result<Cli, clap::Error> {
        let mut args = vec![
            "billhook-worker",
            "--database-url",
            "postgres://db/billhook",
        ];
        args.extend_from_slice(notify);
        Cli::try_parse_from(args)
    }

    #[test]
    fn without_a_url_nothing_is_sent_and_the_defaults_apply() {
        let cli = parse(&[]).expect("parses");
        let notify = cli.run.notify;
        assert!(notify.target().expect("valid").is_none());
        assert_eq!(notify.timeout, std::time::Duration::from_secs(10));
        assert_eq!(notify.max_attempts, 20);
    }

    #[test]
    fn a_url_and_a_secret_give_a_target() {
        let cli = parse(&[
            "--notify-url",
            "https://app.example/hooks/billing",
            "--notify-secret",
            SECRET,
        ])
        .expect("parses");
        let target = cli.run.notify.target().expect("valid").expect("a target");
        assert_eq!(target.url.as_str(), "https://app.example/hooks/billing");
        assert!(!format!("{:?}", cli.run.notify).contains("MfKQ9r8"));
    }

    #[test]
    fn a_url_without_a_secret_is_refused() {
        let error = parse(&["--notify-url", "https://app.example/hooks"]).expect_err("refused");
        assert_eq!(
            error.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );

        let built_in_code = super::NotifySettings {
            url: Some("https://app.example/hooks".parse().expect("url")),
            secret: None,
            timeout: std::time::Duration::from_secs(10),
            max_attempts: 20,
        };
        let message = format!("{:#}", built_in_code.target().expect_err("refused"));
        assert!(message.contains("BILLHOOK_NOTIFY_SECRET"), "{message}");
    }

    #[test]
    fn a_bad_secret_or_url_is_refused_without_echoing_the_secret() {
        let error = parse(&[
            "--notify-url",
            "https://app.example",
            "--notify-secret",
            "hunter2",
        ])
        .expect_err("refused");
        let message = error.to_string();
        assert!(message.contains("whsec_"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");

        let error = parse(&[
            "--notify-url",
            "ftp://app.example",
            "--notify-secret",
            SECRET,
        ])
        .expect_err("refused");
        assert!(error.to_string().contains("http or https"), "{error}");
    }
}
