//! Where emails go: an SMTP server through lettre, or .eml files in a directory (lettre's file
//! transport) when no server is configured.

use anyhow::Context as _;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor,
};
use secrecy::ExposeSecret as _;

use super::settings::{EmailSettings, SmtpTls};
use super::templates::Rendered;

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>, std::path::PathBuf),
}

/// The sender's addresses, parsed once at start.
#[derive(Clone)]
pub struct Sender {
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
}

impl Transport {
    pub fn from_settings(settings: &EmailSettings) -> anyhow::Result<Self> {
        let Some(host) = &settings.smtp_host else {
            std::fs::create_dir_all(&settings.dir).with_context(|| {
                format!(
                    "cannot create the email directory {}",
                    settings.dir.display()
                )
            })?;
            tracing::warn!(dir = %settings.dir.display(),
                "no SMTP server configured (BILLHOOK_SMTP_HOST): emails are written as .eml files");
            return Ok(Self::Files(
                AsyncFileTransport::new(&settings.dir),
                settings.dir.clone(),
            ));
        };
        let builder = match settings.smtp_tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .with_context(|| format!("SMTP host {host}"))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .with_context(|| format!("SMTP host {host}"))?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        let mut builder = builder
            .port(settings.smtp_port)
            .timeout(Some(settings.smtp_timeout));
        match (&settings.smtp_username, &settings.smtp_password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(
                    user.clone(),
                    password.expose_secret().to_owned(),
                ));
            }
            (None, None) => {}
            _ => anyhow::bail!(
                "BILLHOOK_SMTP_USERNAME and BILLHOOK_SMTP_PASSWORD go together: set both or neither"
            ),
        }
        Ok(Self::Smtp(builder.build()))
    }

    /// Sends one message; returns where it went, for the logs.
    pub async fn send(&self, message: Message) -> anyhow::Result<String> {
        match self {
            Self::Smtp(smtp) => {
                let response = smtp.send(message).await.context("SMTP delivery failed")?;
                Ok(format!("smtp {}", response.code()))
            }
            Self::Files(files, dir) => {
                let id = files
                    .send(message)
                    .await
                    .with_context(|| format!("cannot write the email to {}", dir.display()))?;
                Ok(dir.join(format!("{id}.eml")).display().to_string())
            }
        }
    }
}

impl Sender {
    pub fn from_settings(settings: &EmailSettings) -> anyhow::Result<Self> {
        let from = settings.from.parse().with_context(|| {
            format!("BILLHOOK_EMAIL_FROM `{}` is not an address", settings.from)
        })?;
        let reply_to = settings
            .reply_to
            .as_deref()
            .map(|r| {
                r.parse()
                    .with_context(|| format!("BILLHOOK_EMAIL_REPLY_TO `{r}` is not an address"))
            })
            .transpose()?;
        Ok(Self { from, reply_to })
    }

    /// The message for `rendered` to `to`, with a Message-ID made from the email's id, so a
    /// repeat after a crash is recognisably the same message.
    pub fn message(
        &self,
        email_id: &str,
        to: &str,
        rendered: &Rendered,
    ) -> anyhow::Result<Message> {
        let to: Mailbox = to
            .parse()
            .with_context(|| format!("the recipient `{to}` is not an address"))?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&rendered.subject)
            .message_id(Some(format!("<{email_id}@billhook>")));
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                rendered.text.clone(),
                rendered.html.clone(),
            ))
            .context("cannot build the message")
    }
}
