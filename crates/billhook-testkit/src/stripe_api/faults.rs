//! Faults a test injects into the stand-in: statuses answered instead of serving (to the next
//! requests, to those of one method, or to those under a path prefix, optionally with
//! `Retry-After`), and stalls that hold requests under a path prefix until released.
//!
//! Lifecycle of a stall: `stall_after(prefix, n)` lets `n` more matching requests through;
//! every later one waits on the release channel, outside the state's lock, until `release()`
//! bumps it and removes every stall. Requests arriving after the release pass.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde_json::json;
use tokio::sync::watch;

pub struct Faults {
    /// `fail_next` and `fail_next_method`: (method, if only that one; status), in order.
    statuses: Vec<(Option<String>, u16)>,
    /// `fail_next_path`, in the order added.
    paths: Vec<PathFailure>,
    stalls: Vec<Stall>,
    /// Bumped by `release()`; a stalled request waits for the next change.
    released: watch::Sender<u64>,
}

struct PathFailure {
    prefix: String,
    status: u16,
    left: usize,
    retry_after_secs: Option<u64>,
}

struct Stall {
    prefix: String,
    /// Matching requests still let through before the stall holds them.
    left: usize,
}

/// The answer given instead of serving a request.
pub struct Failure {
    status: u16,
    retry_after_secs: Option<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            statuses: Vec::new(),
            paths: Vec::new(),
            stalls: Vec::new(),
            released: watch::channel(0).0,
        }
    }
}

impl Faults {
    pub fn fail_next(&mut self, method: Option<&str>, statuses: &[u16]) {
        let method = method.map(str::to_owned);
        self.statuses
            .extend(statuses.iter().map(|status| (method.clone(), *status)));
    }

    pub fn fail_next_path(
        &mut self,
        prefix: &str,
        status: u16,
        count: usize,
        retry_after_secs: Option<u64>,
    ) {
        self.paths.push(PathFailure {
            prefix: prefix.to_owned(),
            status,
            left: count,
            retry_after_secs,
        });
    }

    pub fn stall_after(&mut self, prefix: &str, n: usize) {
        self.stalls.push(Stall {
            prefix: prefix.to_owned(),
            left: n,
        });
    }

    pub fn release(&mut self) {
        self.stalls.clear();
        self.released.send_modify(|generation| *generation += 1);
    }

    /// Counts an arriving request against the stalls; when one holds it, the receiver to wait
    /// on (its `changed()` resolves at the next `release()`).
    pub fn stall(&mut self, path: &str) -> Option<watch::Receiver<u64>> {
        let mut held = false;
        for stall in self.stalls.iter_mut() {
            if path.starts_with(&stall.prefix) {
                match stall.left.checked_sub(1) {
                    Some(left) => stall.left = left,
                    None => held = true,
                }
            }
        }
        held.then(|| self.released.subscribe())
    }

    /// The failure due for this request, if any: `fail_next`/`fail_next_method` first, then
    /// the first `fail_next_path` entry with requests left whose prefix matches.
    pub fn failure(&mut self, method: &str, path: &str) -> Option<Failure> {
        if let Some(index) = self
            .statuses
            .iter()
            .position(|(only, _)| only.as_deref().is_none_or(|only| only == method))
        {
            let (_, status) = self.statuses.remove(index);
            return Some(Failure {
                status,
                retry_after_secs: None,
            });
        }
        let entry = self
            .paths
            .iter_mut()
            .find(|entry| entry.left > 0 && path.starts_with(&entry.prefix))?;
        entry.left -= 1;
        Some(Failure {
            status: entry.status,
            retry_after_secs: entry.retry_after_secs,
        })
    }
}

impl Failure {
    pub fn response(&self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = HttpResponse::build(status);
        if let Some(secs) = self.retry_after_secs {
            response.insert_header(("Retry-After", secs.to_string()));
        }
        response.json(json!({ "error": { "type": "api_error", "message": "injected failure" } }))
    }
}
