//! Reading Stripe's lists (`GET /v1/events`, `/v1/customers`, …) page by page, for
//! reconciliation and the first sync. Unlike a job's single call, a listing is long work done
//! outside the job queue, so it retries by itself: a 429, a 5xx or a connection failure is
//! tried again after `Retry-After` when Stripe sends one, else after a growing, jittered delay;
//! every request waits for the client's rate limit first ([`StripeApi::with_rate`]).
//!
//! A 401 or 403 stops at once with [`ListError::Key`], which says what is wrong with the key
//! and never shows it.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::api::StripeApi;

/// Attempts of one request before the listing gives up.
pub const ATTEMPTS: u32 = 6;
/// The first retry's delay; each further one doubles it, up to [`MAX_DELAY`].
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured as given; a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// One page of a list. Items stay raw so an event keeps its bytes exactly as Stripe sent them.
#[derive(Debug, Deserialize)]
pub struct Page {
    pub data: Vec<Box<RawValue>>,
    #[serde(default)]
    pub has_more: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// 401 or 403: no retry can help; the operator must fix the key.
    #[error("{0}")]
    Key(String),
    /// Another 4xx: the request itself is wrong (an unknown cursor, a parameter Stripe refuses).
    #[error("Stripe API GET {path} refused the request ({status}): {message}")]
    Refused {
        path: String,
        status: u16,
        message: String,
    },
    /// Stripe could not be reached or kept failing through every attempt.
    #[error("Stripe API GET {path} failed {attempts} times; last: {last}")]
    Unavailable {
        path: String,
        attempts: u32,
        last: String,
    },
    /// The answer was not the list or object expected.
    #[error("Stripe API GET {path}: unexpected answer: {reason}")]
    Malformed { path: String, reason: String },
}

/// What one attempt came to.
enum Attempt {
    Done(String),
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Stop(ListError),
}

impl StripeApi {
    /// `GET path?query`, retried as the module says; the answer's body on success.
    pub async fn get_with_retries(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<String, ListError> {
        let mut delay = FIRST_DELAY;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            self.wait_for_rate().await;
            match self.attempt(path, query).await {
                Attempt::Done(body) => return Ok(body),
                Attempt::Stop(error) => return Err(error),
                Attempt::Retry { reason, after } => {
                    if attempt == ATTEMPTS {
                        last = reason;
                        break;
                    }
                    let wait = after.map_or_else(|| jitter(delay), |a| a.min(MAX_RETRY_AFTER));
                    tracing::warn!(path, attempt, reason = %reason, wait_ms = wait.as_millis() as u64,
                        "Stripe API call failed; retrying");
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(MAX_DELAY);
                    last = reason;
                }
            }
        }
        Err(ListError::Unavailable {
            path: path.to_owned(),
            attempts: ATTEMPTS,
            last,
        })
    }

    /// One page of the list at `path`.
    pub async fn list_page(&self, path: &str, query: &[(&str, String)]) -> Result<Page, ListError> {
        let body = self.get_with_retries(path, query).await?;
        serde_json::from_str(&body).map_err(|e| ListError::Malformed {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    async fn attempt(&self, path: &str, query: &[(&str, String)]) -> Attempt {
        let request = match self.get_request(path, query) {
            Ok(request) => request,
            Err(e) => {
                return Attempt::Stop(ListError::Refused {
                    path: path.to_owned(),
                    status: 0,
                    message: format!("{e:#}"),
                });
            }
        };
        let response = match request.send().await {
            Ok(response) => response,
            // reqwest's error names the URL, which never holds the key.
            Err(e) => {
                return Attempt::Retry {
                    reason: format!("{:#}", anyhow::Error::new(e)),
                    after: None,
                };
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = match response.text().await {
            Ok(body) => body,
            Err(e) => {
                return Attempt::Retry {
                    reason: format!("reading the answer: {:#}", anyhow::Error::new(e)),
                    after: None,
                };
            }
        };
        if status.is_success() {
            return Attempt::Done(body);
        }
        let message = stripe_message(&body);
        match status {
            StatusCode::UNAUTHORIZED => Attempt::Stop(ListError::Key(format!(
                "Stripe refused the API key (401 on GET {path}: {message}): \
                 BILLHOOK_STRIPE_API_KEY is not a valid key for this account (revoked, rolled, \
                 mistyped, or a test key against live data)"
            ))),
            StatusCode::FORBIDDEN => Attempt::Stop(ListError::Key(format!(
                "the Stripe API key may not read {path} (403: {message}): give the restricted \
                 key in BILLHOOK_STRIPE_API_KEY read access to it"
            ))),
            s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => Attempt::Retry {
                reason: format!("{status}: {message}"),
                after: retry_after,
            },
            s => Attempt::Stop(ListError::Refused {
                path: path.to_owned(),
                status: s.as_u16(),
                message,
            }),
        }
    }
}

/// Stripe's `error.message`, or the start of a body that is not Stripe's error JSON.
fn stripe_message(body: &str) -> String {
    super::api::error_message(body)
        .unwrap_or_else(|| super::api::redact_keys(&body.chars().take(200).collect::<String>()))
}

/// Between half and all of `delay`, so processes that failed together do not retry together.
fn jitter(delay: Duration) -> Duration {
    delay.mul_f64(rand::random_range(0.5..=1.0))
}

/// Reads a list to its end, one page at a time, newest first as Stripe lists.
pub struct Pager<'a> {
    api: &'a StripeApi,
    path: String,
    query: Vec<(&'static str, String)>,
    cursor: Option<String>,
    done: bool,
}

impl<'a> Pager<'a> {
    /// The list at `path` filtered by `query` (without `limit` or `starting_after`: the pager
    /// adds them), resuming after `cursor` when given.
    pub fn new(
        api: &'a StripeApi,
        path: impl Into<String>,
        query: Vec<(&'static str, String)>,
        cursor: Option<String>,
    ) -> Self {
        Self {
            api,
            path: path.into(),
            query,
            cursor,
            done: false,
        }
    }

    /// The next page, `None` after the last. An empty last page is not returned.
    pub async fn next(&mut self) -> Result<Option<Page>, ListError> {
        if self.done {
            return Ok(None);
        }
        let mut query = self.query.clone();
        query.push(("limit", "100".to_owned()));
        if let Some(cursor) = &self.cursor {
            query.push(("starting_after", cursor.clone()));
        }
        let page = self.api.list_page(&self.path, &query).await?;
        match page.data.last() {
            Some(last) => {
                self.cursor = Some(item_id(last).ok_or_else(|| ListError::Malformed {
                    path: self.path.clone(),
                    reason: "a list item without an id".to_owned(),
                })?);
            }
            None => {
                self.done = true;
                return Ok(None);
            }
        }
        self.done = !page.has_more;
        Ok(Some(page))
    }

    /// The id of the last item returned: where a resumed listing starts.
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }
}

/// The `id` of a raw list item.
pub fn item_id(item: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    serde_json::from_str::<Id>(item.get()).ok().map(|i| i.id)
}
