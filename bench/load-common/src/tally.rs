//! What a load task saw: one latency per answer, the count per HTTP status, transport errors,
//! duplicates, and a few error messages. Each task keeps its own tally; the run merges them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::percentiles::micros;

/// Error messages kept per run (the counts are always complete).
pub const KEPT_ERRORS: usize = 5;

/// One task's counts, or a whole run's once merged.
#[derive(Default)]
pub struct Tally {
    /// Microseconds from sending to the last byte of the answer, one per answer (not per
    /// transport error); in answer order until the caller sorts them.
    pub latencies_us: Vec<u64>,
    pub statuses: BTreeMap<u16, usize>,
    /// Requests that got no answer: connection errors and timeouts.
    pub transport_errors: usize,
    /// 200 answers whose body did not say `"duplicate": false`.
    pub duplicates: usize,
    /// Requests sent, answered or not.
    pub sent: usize,
    /// The first [`KEPT_ERRORS`] error messages.
    pub messages: Vec<String>,
}

impl Tally {
    /// An empty tally with room for `answers` latencies, so that the timed loop does not
    /// allocate.
    pub fn with_capacity(answers: usize) -> Self {
        Self {
            latencies_us: Vec::with_capacity(answers),
            ..Self::default()
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
        self.duplicates += other.duplicates;
        self.sent += other.sent;
        for m in other.messages {
            self.note(m);
        }
    }

    /// Keeps `message` if fewer than [`KEPT_ERRORS`] are kept.
    pub fn note(&mut self, message: String) {
        if self.messages.len() < KEPT_ERRORS {
            self.messages.push(message);
        }
    }

    /// An answer. A 200 counts as a duplicate unless its body says `"duplicate": false` (what
    /// the receiver answers for an event it stores for the first time); any other status is
    /// noted with the start of its body.
    pub fn answered(&mut self, latency: Duration, status: u16, body: &[u8]) {
        self.latencies_us.push(micros(latency));
        *self.statuses.entry(status).or_default() += 1;
        if status == 200 {
            let duplicate = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("duplicate").and_then(Value::as_bool));
            if duplicate != Some(false) {
                self.duplicates += 1;
            }
        } else {
            self.note(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ));
        }
    }

    /// A request that got no answer (connection error or timeout).
    pub fn failed(&mut self, error: &reqwest::Error) {
        self.transport_errors += 1;
        self.note(format!("{error:?}"));
    }

    /// Answers with status 200.
    pub fn ok(&self) -> usize {
        self.statuses.get(&200).copied().unwrap_or(0)
    }

    /// Of `planned` events: answers other than 200, transport errors, and events never sent.
    pub fn errors(&self, planned: usize) -> usize {
        let bad_status: usize = self
            .statuses
            .iter()
            .filter(|(s, _)| **s != 200)
            .map(|(_, n)| n)
            .sum();
        bad_status + self.transport_errors + planned.saturating_sub(self.sent)
    }

    /// The count per status as a JSON object keyed by the status code.
    pub fn statuses_json(&self) -> Map<String, Value> {
        self.statuses
            .iter()
            .map(|(s, n)| (s.to_string(), json!(n)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_200_is_a_duplicate_unless_the_receiver_says_otherwise() {
        let mut t = Tally::default();
        t.answered(MS, 200, br#"{"duplicate":false}"#);
        t.answered(MS, 200, br#"{"duplicate":true}"#);
        t.answered(MS, 200, b"not json");
        t.answered(MS, 200, b"{}");
        assert_eq!(t.duplicates, 3);
        assert_eq!(t.ok(), 4);
        assert_eq!(t.latencies_us, vec![1_000; 4]);
    }

    #[test]
    fn errors_are_bad_statuses_transport_errors_and_unsent_events() {
        let mut t = Tally {
            sent: 4,
            ..Tally::default()
        };
        t.answered(MS, 200, br#"{"duplicate":false}"#);
        t.answered(MS, 500, &[b'x'; 300]);
        t.answered(MS, 401, b"no");
        let error = reqwest::Client::new()
            .get("not a url")
            .build()
            .expect_err("an invalid URL");
        t.failed(&error);
        assert_eq!(t.errors(6), 2 + 1 + 2);
        assert_eq!(t.transport_errors, 1);
        assert_eq!(t.latencies_us.len(), 3);
        assert_eq!(t.messages[0], format!("HTTP 500: {}", "x".repeat(200)));
        assert_eq!(t.messages[1], "HTTP 401: no");
        assert_eq!(
            Value::Object(t.statuses_json()),
            json!({ "200": 1, "401": 1, "500": 1 })
        );
    }

    #[test]
    fn merging_adds_counts_and_keeps_a_few_messages() {
        let mut total = Tally::default();
        for _ in 0..3 {
            let mut t = Tally {
                sent: 3,
                ..Tally::default()
            };
            for _ in 0..3 {
                t.answered(MS, 503, b"busy");
            }
            total.merge(t);
        }
        assert_eq!(total.sent, 9);
        assert_eq!(total.statuses[&503], 9);
        assert_eq!(total.latencies_us.len(), 9);
        assert_eq!(total.messages.len(), KEPT_ERRORS);
    }
}
