//! Settings of outgoing email. docs/configuration.md is the reference page.

use std::path::PathBuf;
use std::time::Duration;

use billhook_core::config::positive_duration;
use secrecy::SecretString;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required), usually port 587.
    Starttls,
    /// TLS from the first byte ("SMTPS"), usually port 465.
    Tls,
    /// No encryption: only for a relay on the same host or network.
    None,
}

#[derive(clap::Args, Clone)]
pub struct EmailSettings {
    /// SMTP server. Unset: emails are written as .eml files to BILLHOOK_EMAIL_DIR instead.
    #[arg(long = "smtp-host", env = "BILLHOOK_SMTP_HOST")]
    pub smtp_host: Option<String>,

    #[arg(long = "smtp-port", env = "BILLHOOK_SMTP_PORT", default_value_t = 587)]
    pub smtp_port: u16,

    #[arg(
        long = "smtp-tls",
        env = "BILLHOOK_SMTP_TLS",
        value_enum,
        default_value = "starttls"
    )]
    pub smtp_tls: SmtpTls,

    #[arg(long = "smtp-username", env = "BILLHOOK_SMTP_USERNAME")]
    pub smtp_username: Option<String>,

    #[arg(
        long = "smtp-password",
        env = "BILLHOOK_SMTP_PASSWORD",
        hide_env_values = true
    )]
    pub smtp_password: Option<SecretString>,

    /// Deadline of one whole SMTP conversation, from connecting until the server accepts the
    /// message; past it the attempt fails and is retried.
    #[arg(long = "smtp-timeout", env = "BILLHOOK_SMTP_TIMEOUT", default_value = "30s",
          value_parser = positive_duration)]
    pub smtp_timeout: Duration,

    /// The From address, e.g. `Example Billing <billing@example.com>`.
    #[arg(
        long = "email-from",
        env = "BILLHOOK_EMAIL_FROM",
        default_value = "Billing <billing@localhost>"
    )]
    pub from: String,

    /// An optional Reply-To address.
    #[arg(
        id = "email_reply_to",
        long = "email-reply-to",
        env = "BILLHOOK_EMAIL_REPLY_TO"
    )]
    pub reply_to: Option<String>,

    /// Where emails go as .eml files when no SMTP host is set (scripts/dev.sh: .dev/mail).
    /// The default is under the system's temporary directory, never relative to where the
    /// worker was started, so it cannot litter a working tree.
    #[arg(
        id = "email_dir",
        long = "email-dir",
        env = "BILLHOOK_EMAIL_DIR",
        default_value_os_t = default_dir()
    )]
    pub dir: PathBuf,

    /// A directory of template files overriding the built-in ones (`NAME.subject`, `NAME.txt`,
    /// `NAME.html`); read at each send, so a change needs no restart.
    #[arg(
        id = "email_templates",
        long = "email-templates",
        env = "BILLHOOK_EMAIL_TEMPLATES"
    )]
    pub templates: Option<PathBuf>,

    /// Attempts of one SendEmail job. With the default backoff (5 s doubling, capped at 30 min)
    /// 12 attempts keep trying for about two and a half hours: an SMTP outage of that length
    /// needs a person, and the dead letter keeps the email for requeue.
    #[arg(id = "email_max_attempts", long = "email-max-attempts", env = "BILLHOOK_EMAIL_MAX_ATTEMPTS", default_value_t = 12,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,

    /// How long the email about a failed payment waits when the payment may belong to an
    /// invoice (API versions from 2025-03-31 no longer name it on the PaymentIntent). If the
    /// invoice's failure arrives meanwhile, its dunning run tells the customer and this email is
    /// withdrawn, so the customer hears once. `0s` sends at once.
    #[arg(id = "email_payment_failed_hold", long = "email-payment-failed-hold",
          env = "BILLHOOK_EMAIL_PAYMENT_FAILED_HOLD", default_value = "2m",
          value_parser = humantime::parse_duration)]
    pub payment_failed_hold: Duration,
}

impl std::fmt::Debug for EmailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSettings")
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("smtp_tls", &self.smtp_tls)
            .field("smtp_username", &self.smtp_username)
            .field(
                "smtp_password",
                &self.smtp_password.as_ref().map(|_| "[redacted]"),
            )
            .field("from", &self.from)
            .field("reply_to", &self.reply_to)
            .field("dir", &self.dir)
            .field("templates", &self.templates)
            .field("max_attempts", &self.max_attempts)
            .field("payment_failed_hold", &self.payment_failed_hold)
            .finish()
    }
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            smtp_host: None,
            smtp_port: 587,
            smtp_tls: SmtpTls::Starttls,
            smtp_username: None,
            smtp_password: None,
            smtp_timeout: Duration::from_secs(30),
            from: "Billing <billing@localhost>".to_owned(),
            reply_to: None,
            dir: default_dir(),
            templates: None,
            max_attempts: 12,
            payment_failed_hold: Duration::from_secs(120),
        }
    }
}

/// `$TMPDIR/billhook-mail` (`/tmp/billhook-mail` on most systems).
fn default_dir() -> PathBuf {
    std::env::temp_dir().join("billhook-mail")
}
