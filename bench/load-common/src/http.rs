//! Sending events as Stripe does: one HTTP/1.1 client per connection, holding that one
//! keep-alive connection, and a signed JSON POST whose answer is read to the last byte.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use url::Url;

use crate::events::SignedEvent;
use crate::tally::Tally;

/// One HTTP/1.1 client holding at most one idle (keep-alive) connection.
pub fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .no_proxy()
        .timeout(timeout)
        .build()
        .context("cannot build the HTTP client")
}

/// Posts `event` to `url` and records it in `tally`: sent, then answered (with its latency
/// from `started` to the last byte of the answer) or failed. `started` is the caller's so a
/// paced sender measures how late it sent and the latency from the same instant.
pub async fn post(
    client: &reqwest::Client,
    url: &Url,
    event: &SignedEvent,
    started: Instant,
    tally: &mut Tally,
) {
    tally.sent += 1;
    let answer = async {
        let response = client
            .post(url.clone())
            .header("content-type", "application/json; charset=utf-8")
            .header(
                "user-agent",
                "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            )
            .header("stripe-signature", event.signature.as_str())
            .body(event.body.clone())
            .send()
            .await?;
        let status = response.status().as_u16();
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, body))
    }
    .await;
    let latency = started.elapsed();
    match answer {
        Ok((status, body)) => tally.answered(latency, status, &body),
        Err(e) => tally.failed(&e),
    }
}
