//! Where emails go: an SMTP server ([`super::smtp`], on lettre's connection), or .eml files in
//! a directory (lettre's file transport) when no server is configured.

use anyhow::Context as _;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncFileTransport, AsyncTransport as _, Message, Tokio1Executor};
use secrecy::ExposeSecret as _;

use super::settings::EmailSettings;
use super::smtp::{Accepted, SmtpClient};
use super::templates::Rendered;

pub enum Transport {
    Smtp(SmtpClient),
    Files(AsyncFileTransport<Tokio1Executor>, std::path::PathBuf),
}

/// A message that reached its destination: where it went, for the logs, and the SMTP
/// conversation still open, to close once the caller has recorded the delivery.
pub struct Delivered {
    pub destination: String,
    pub accepted: Option<Accepted>,
}

impl Delivered {
    /// Ends the SMTP conversation (QUIT), after the delivery is recorded.
    pub async fn close(self) {
        if let Some(accepted) = self.accepted {
            accepted.close().await;
        }
    }
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
        let credentials = match (&settings.smtp_username, &settings.smtp_password) {
            (Some(user), Some(password)) => Some(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            )),
            (None, None) => None,
            _ => anyhow::bail!(
                "BILLHOOK_SMTP_USERNAME and BILLHOOK_SMTP_PASSWORD go together: set both or neither"
            ),
        };
        Ok(Self::Smtp(SmtpClient::new(
            host,
            settings.smtp_port,
            settings.smtp_tls,
            credentials,
            settings.smtp_timeout,
        )?))
    }

    /// Sends one message. For SMTP, `Ok` means the server accepted it, and the conversation
    /// is left open in [`Delivered`] so that the caller records the delivery before anything
    /// else can happen.
    pub async fn send(&self, message: Message) -> anyhow::Result<Delivered> {
        match self {
            Self::Smtp(smtp) => {
                let accepted = smtp.deliver(&message).await?;
                Ok(Delivered {
                    destination: format!("smtp {}", accepted.response.code()),
                    accepted: Some(accepted),
                })
            }
            Self::Files(files, dir) => {
                let id = files
                    .send(message)
                    .await
                    .with_context(|| format!("cannot write the email to {}", dir.display()))?;
                Ok(Delivered {
                    destination: dir.join(format!("{id}.eml")).display().to_string(),
                    accepted: None,
                })
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
        let alternative =
            MultiPart::alternative_plain_html(rendered.text.clone(), rendered.html.clone());
        let body = if rendered.images.is_empty() {
            alternative
        } else {
            // multipart/related: the HTML and the images it shows by Content-ID.
            let png = ContentType::parse("image/png").context("the PNG content type")?;
            rendered.images.iter().fold(
                MultiPart::related().multipart(alternative),
                |related, (id, bytes)| {
                    related.singlepart(
                        Attachment::new_inline(id.clone()).body(bytes.clone(), png.clone()),
                    )
                },
            )
        };
        builder.multipart(body).context("cannot build the message")
    }
}
