//! One SMTP conversation per email, under one deadline, ending as soon as the server has
//! accepted the message.
//!
//! lettre's `AsyncSmtpTransport` bounds only the TCP connect: a server that accepts the
//! connection and never greets held a SendEmail job (and one of the worker's slots) for as long
//! as it stayed silent. It also waits for the answer to QUIT before reporting success, so a
//! crash or a silent server at that point turned an accepted message into a failed attempt and
//! a second copy. Here the whole exchange (connect, greeting, STARTTLS, AUTH, MAIL, RCPT,
//! DATA) runs under [`SmtpClient::deadline`], and [`SmtpClient::deliver`] returns the moment
//! the server answers DATA with 2xx, holding the open connection in [`Accepted`]: the caller
//! records the acceptance first, then closes the conversation with [`Accepted::close`].

use std::time::Duration;

use anyhow::Context as _;
use lettre::Message;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;

use super::settings::SmtpTls;

/// How long the QUIT after an accepted message may take. The message is delivered already;
/// this only spares the server a dropped connection.
const QUIT_DEADLINE: Duration = Duration::from_secs(2);

/// Authentication mechanisms offered, in lettre's default order.
const MECHANISMS: [Mechanism; 2] = [Mechanism::Plain, Mechanism::Login];

pub struct SmtpClient {
    host: String,
    port: u16,
    tls: SmtpTls,
    /// Built once: certificate roots and the server name to verify.
    tls_parameters: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// Bound on one whole conversation, from connecting to the answer to DATA.
    pub deadline: Duration,
}

/// The server answered DATA with 2xx: the message is its responsibility now.
pub struct Accepted {
    pub response: Response,
    connection: AsyncSmtpConnection,
}

/// The deadline passed before the server accepted the message.
#[derive(Debug, thiserror::Error)]
#[error("the SMTP server did not accept the message within {0:?}")]
pub struct DeadlineExceeded(pub Duration);

impl SmtpClient {
    pub fn new(
        host: &str,
        port: u16,
        tls: SmtpTls,
        credentials: Option<Credentials>,
        deadline: Duration,
    ) -> anyhow::Result<Self> {
        let tls_parameters = match tls {
            SmtpTls::None => None,
            SmtpTls::Starttls | SmtpTls::Tls => Some(
                TlsParameters::new(host.to_owned())
                    .with_context(|| format!("SMTP host {host}: cannot set up TLS"))?,
            ),
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            tls,
            tls_parameters,
            credentials,
            hello: ClientId::default(),
            deadline,
        })
    }

    /// Hands `message` to the server within the deadline. An error means the server did not
    /// accept it (refused, unreachable, or too slow): a retry cannot duplicate it.
    pub async fn deliver(&self, message: &Message) -> anyhow::Result<Accepted> {
        tokio::time::timeout(self.deadline, self.converse(message))
            .await
            .map_err(|_| anyhow::Error::new(DeadlineExceeded(self.deadline)))?
    }

    async fn converse(&self, message: &Message) -> anyhow::Result<Accepted> {
        let wrapper = match self.tls {
            SmtpTls::Tls => self.tls_parameters.clone(),
            SmtpTls::Starttls | SmtpTls::None => None,
        };
        let mut connection = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.deadline),
            &self.hello,
            wrapper,
            None,
        )
        .await
        .context("cannot connect to the SMTP server")?;
        if let (SmtpTls::Starttls, Some(parameters)) = (self.tls, &self.tls_parameters) {
            connection
                .starttls(parameters.clone(), &self.hello)
                .await
                .context("STARTTLS failed")?;
        }
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&MECHANISMS, credentials)
                .await
                .context("SMTP authentication failed")?;
        }
        let response = connection
            .send(message.envelope(), &message.formatted())
            .await
            .context("SMTP delivery failed")?;
        Ok(Accepted {
            response,
            connection,
        })
    }
}

impl Accepted {
    /// Says QUIT and closes, within a short deadline of its own; failures do not matter here.
    pub async fn close(mut self) {
        if tokio::time::timeout(QUIT_DEADLINE, self.connection.quit())
            .await
            .is_err()
        {
            tracing::debug!("the SMTP server did not answer QUIT; connection dropped");
        }
    }
}
