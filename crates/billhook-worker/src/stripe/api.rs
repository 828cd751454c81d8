//! The calls Billhook makes to Stripe's API: retrieving an object (to settle a same-second
//! tie between two events), for dunning cancelling a subscription, and reading lists for
//! reconciliation and the first sync ([`super::list`]). The base URL is configurable so tests
//! (and a proxy) can stand in for api.stripe.com.
//!
//! Errors: a 429, a 5xx or a connection failure is retryable; any other 4xx is permanent.
//! The key is sent as a bearer token and never appears in logs, errors or `Debug`. Every
//! request of one client shares its rate limit (`BILLHOOK_STRIPE_API_RATE`), below Stripe's.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use reqwest::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use crate::queue::JobError;

/// Requests per second one client sends at most unless told otherwise: below the 25 a second
/// Stripe allows in test mode (live mode allows 100).
pub const DEFAULT_RATE: u32 = 20;

#[derive(Clone)]
pub struct StripeApi {
    base: reqwest::Url,
    key: SecretString,
    client: reqwest::Client,
    limiter: Arc<governor::DefaultDirectRateLimiter>,
}

impl std::fmt::Debug for StripeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeApi")
            .field("base", &self.base.as_str())
            .field("key", &"[redacted]")
            .finish()
    }
}

impl StripeApi {
    pub fn new(base: reqwest::Url, key: SecretString, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("billhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client for Stripe's API")?;
        Ok(Self {
            base,
            key,
            client,
            limiter: Arc::new(limiter(DEFAULT_RATE)),
        })
    }

    /// The same client sending at most `per_second` requests a second.
    pub fn with_rate(mut self, per_second: u32) -> Self {
        self.limiter = Arc::new(limiter(per_second));
        self
    }

    /// Waits until the rate limit lets one more request go.
    pub(super) async fn wait_for_rate(&self) {
        self.limiter.until_ready().await;
    }

    /// A GET of `path?query` with the key; `query` is form-encoded, so repeated names are how
    /// Stripe takes arrays (`types[]=a&types[]=b`).
    pub(super) fn get_request(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<reqwest::RequestBuilder, JobError> {
        let mut url = self.url(path)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(self.client.get(url).bearer_auth(self.key.expose_secret()))
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, JobError> {
        self.base
            .join(path.trim_start_matches('/'))
            .with_context(|| format!("cannot join {path} to the Stripe API base URL"))
            .map_err(JobError::Permanent)
    }

    /// `GET path`, rendered in `api_version` (the event's) so the object has the shape the
    /// handlers expect.
    pub async fn retrieve(&self, path: &str, api_version: Option<&str>) -> Result<Value, JobError> {
        self.wait_for_rate().await;
        let mut request = self.get_request(path, &[])?;
        if let Some(version) = api_version {
            request = request.header("Stripe-Version", version);
        }
        self.send(request, "GET", path).await
    }

    /// `DELETE path` with an Idempotency-Key, so a retried call cannot act twice.
    pub async fn delete(&self, path: &str, idempotency_key: &str) -> Result<Value, JobError> {
        self.wait_for_rate().await;
        let request = self
            .client
            .delete(self.url(path)?)
            .bearer_auth(self.key.expose_secret())
            .header("Idempotency-Key", idempotency_key);
        self.send(request, "DELETE", path).await
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        method: &str,
        path: &str,
    ) -> Result<Value, JobError> {
        let response = request.send().await.map_err(|e| {
            // reqwest's error names the URL, which never holds the key.
            JobError::Retryable(
                anyhow::Error::new(e).context(format!("Stripe API {method} {path}")),
            )
        })?;
        let status = response.status();
        let body = response.text().await.map_err(|e| {
            JobError::Retryable(
                anyhow::Error::new(e)
                    .context(format!("Stripe API {method} {path}: reading the answer")),
            )
        })?;
        if status.is_success() {
            return serde_json::from_str(&body).map_err(|e| {
                JobError::Retryable(anyhow::Error::new(e).context(format!(
                    "Stripe API {method} {path}: the answer is not JSON"
                )))
            });
        }
        let message = error_message(&body).unwrap_or_default();
        let error = anyhow::anyhow!("Stripe API {method} {path} answered {status}: {message}");
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Err(JobError::Retryable(error))
        } else {
            Err(JobError::Permanent(error))
        }
    }
}

/// Stripe's `error.message` from an error answer, with anything shaped like an API key taken
/// out: Stripe's 401 names the key it refused (masked, but still part of it).
pub(super) fn error_message(body: &str) -> Option<String> {
    let value = serde_json::from_str::<Value>(body).ok()?;
    let message = value.pointer("/error/message")?.as_str()?;
    Some(redact_keys(message))
}

/// `text` with every word that starts like a Stripe key (`sk_`, `rk_`, `pk_`) replaced.
pub(super) fn redact_keys(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            let bare = word.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
            if ["sk_", "rk_", "pk_"].iter().any(|p| bare.starts_with(p)) {
                "[key]"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn limiter(per_second: u32) -> governor::DefaultDirectRateLimiter {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    governor::RateLimiter::direct(governor::Quota::per_second(rate))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn a_key_stripe_names_in_its_error_is_taken_out() {
        let body = r#"{"error":{"message":"Invalid API Key provided: sk_test_****************abcd","type":"invalid_request_error"}}"#;
        let message = super::error_message(body).expect("a message");
        assert_eq!(message, "Invalid API Key provided: [key]");
        assert_eq!(
            super::redact_keys("key (rk_live_1234) refused"),
            "key [key] refused"
        );
    }

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::StripeApi;

    /// An answer whose headers arrive and whose body never finishes: the call still ends at
    /// its deadline (reqwest's timeout covers the whole exchange, body included), as a
    /// retryable failure.
    #[tokio::test]
    async fn an_answer_that_never_finishes_fails_at_the_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = [0_u8; 4096];
            let _ = socket.read(&mut request).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
                .await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        let base = format!("http://{address}/").parse().expect("URL");
        let api = StripeApi::new(
            base,
            "sk_test_deadline".to_owned().into(),
            Duration::from_secs(1),
        )
        .expect("client");

        let result = tokio::time::timeout(
            Duration::from_secs(30),
            api.retrieve("/v1/invoices/in_1", None),
        )
        .await
        .expect("the call ends at its deadline, not when the server finishes");

        let error = result.expect_err("the answer never finished");
        assert!(error.is_retryable(), "{error}");
        assert!(!format!("{error}").contains("sk_test_deadline"));
        server.abort();
    }
}
