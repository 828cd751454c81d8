//! worker-load: the event source of the worker benchmark (bench/worker.sh). A
//! benchmark script's tool, never a test: numbers depend on the machine.
//!
//! It posts `--events` distinct, correctly signed `customer.created` / `customer.updated`
//! events (alternating, both API shapes) to a running billhook-receiver. Every event is about a
//! customer of its own, so the worker's per-object advisory lock never serialises two of them
//! and every apply is an insert. Ids carry the run's `--tag`: event `evt_<tag>_<n>`, customer
//! `cus_<tag>_<n>`, so the script can pick a run's rows out of `webhook_events`.
//!
//! Two ways to send:
//! - burst (no `--rate`): `--concurrency` keep-alive connections send as fast as the receiver
//!   answers; used to fill the queue before the throughput runs.
//! - paced (`--rate R`): event n is due at start + n/R seconds, sent by whichever of the
//!   `--concurrency` connections is free; a connection never sends before an event is due, so
//!   the load is steady rather than bursts. How late events left against their schedule is
//!   reported, so a receiver that cannot keep up shows.
//!
//! Every send is bounded: at most `--events` requests, none after `--max-run-secs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use billhook_core::stripe::WebhookSecret;
use clap::Parser as _;
use load_common::events::{self, SignedEvent};
use load_common::percentiles::{micros, percentile};
use load_common::report::{per_second, round};
use load_common::tally::Tally;
use load_common::{args as checks, http};
use serde_json::{Value, json};
use tokio::time::Instant;

const MAX_EVENTS: usize = 200_000;
const MAX_CONCURRENCY: usize = 256;
const MAX_RATE: f64 = 20_000.0;
/// The two handled types that create or update a customer.
const TYPES: [&str; 2] = ["customer.created", "customer.updated"];

#[derive(clap::Parser, Debug)]
#[command(
    name = "worker-load",
    about = "Post distinct signed customer events to a running billhook-receiver, in a burst or paced."
)]
struct Args {
    /// Webhook URL of the receiver. Only http://127.0.0.1 is accepted.
    #[arg(long, default_value = "http://127.0.0.1:8080/api/webhooks/stripe")]
    url: String,

    /// Events to send.
    #[arg(long)]
    events: usize,

    /// Prefix of this run's ids (lowercase letters and digits, at most 16).
    #[arg(long)]
    tag: String,

    /// Events per second, paced; without it, a burst.
    #[arg(long)]
    rate: Option<f64>,

    /// Keep-alive connections (each sends one request at a time).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,

    /// The receiver's webhook secrets (as BILLHOOK_WEBHOOK_SECRETS); the first one signs.
    #[arg(long, env = "BILLHOOK_WEBHOOK_SECRETS", hide_env_values = true)]
    secret: String,

    /// Per-request timeout, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,

    /// Longest the run may last, in seconds; events not sent by then count as errors.
    #[arg(long, default_value_t = 120)]
    max_run_secs: u64,
}

#[derive(Default)]
struct TaskResult {
    tally: Tally,
    /// Paced runs: microseconds from each event's due time to its sending.
    late_us: Vec<u64>,
}

impl TaskResult {
    fn merge(&mut self, other: TaskResult) {
        self.tally.merge(other.tally);
        self.late_us.extend(other.late_us);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url = checks::checked_url(&args.url)?;
    check_tag(&args.tag)?;
    ensure!(
        (1..=MAX_EVENTS).contains(&args.events),
        "--events must be 1..={MAX_EVENTS}"
    );
    ensure!(
        (1..=MAX_CONCURRENCY).contains(&args.concurrency),
        "--concurrency must be 1..={MAX_CONCURRENCY}"
    );
    checks::check_max_run_secs(args.max_run_secs)?;
    let request_timeout = checks::request_timeout(args.request_timeout_ms)?;
    if let Some(rate) = args.rate {
        ensure!(
            rate.is_finite() && rate > 0.0 && rate <= MAX_RATE,
            "--rate must be in (0, {MAX_RATE}]"
        );
        ensure!(
            args.events as f64 / rate <= args.max_run_secs as f64,
            "{} events at {rate}/s take longer than --max-run-secs {}",
            args.events,
            args.max_run_secs
        );
    }
    let secret = checks::signing_secret(&args.secret)?;
    let events = Arc::new(prepare(args.events, &args.tag, &secret)?);
    let mean_body = events::mean_body_bytes(&events);

    let clients = (0..args.concurrency)
        .map(|_| http::client(request_timeout))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Paced runs start a little later so that every task is waiting when the first is due.
    let start = Instant::now() + Duration::from_millis(if args.rate.is_some() { 100 } else { 0 });
    let deadline = start + Duration::from_secs(args.max_run_secs);
    let next = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let url = url.clone();
            let events = Arc::clone(&events);
            let next = Arc::clone(&next);
            let rate = args.rate;
            tokio::spawn(async move {
                send_loop(client, url, events, next, start, rate, deadline).await
            })
        })
        .collect();
    let mut total = TaskResult::default();
    for handle in handles {
        total.merge(handle.await.context("a load task panicked")?);
    }
    let wall = Instant::now().saturating_duration_since(start);

    let TaskResult {
        tally: mut result,
        mut late_us,
    } = total;
    result.latencies_us.sort_unstable();
    late_us.sort_unstable();
    let ok = result.ok();
    let errors = result.errors(args.events);
    let ms = |v: &[u64], p: f64| round(percentile(v, p), 3);
    let output = json!({
        "tag": args.tag,
        "mode": if args.rate.is_some() { "paced" } else { "burst" },
        "rate_per_s": args.rate,
        "concurrency": args.concurrency,
        "events": args.events,
        "event_types": TYPES,
        "mean_body_bytes": mean_body,
        "sent": result.sent,
        "ok": ok,
        "errors": errors,
        "duplicates": result.duplicates,
        "statuses": result.statuses_json(),
        "transport_errors": result.transport_errors,
        "error_samples": result.messages,
        "wall_s": round(wall.as_secs_f64(), 3),
        "achieved_per_s": round(per_second(ok, wall), 1),
        "http_latency_ms": {
            "p50": ms(&result.latencies_us, 0.50),
            "p90": ms(&result.latencies_us, 0.90),
            "p99": ms(&result.latencies_us, 0.99),
            "max": ms(&result.latencies_us, 1.0),
        },
        // Paced runs: how long after its due time each event was sent.
        "send_late_ms": if args.rate.is_some() { json!({
            "p50": ms(&late_us, 0.50),
            "p99": ms(&late_us, 0.99),
            "max": ms(&late_us, 1.0),
        }) } else { Value::Null },
    });
    eprintln!(
        "worker-load {}: {} sent, {} ok, {} errors in {:.2} s ({:.0}/s); HTTP p50 {:.2} ms, p99 {:.2} ms",
        args.tag,
        result.sent,
        ok,
        errors,
        wall.as_secs_f64(),
        per_second(ok, wall),
        percentile(&result.latencies_us, 0.5),
        percentile(&result.latencies_us, 0.99),
    );
    if !result.messages.is_empty() {
        eprintln!("  error samples: {:?}", result.messages);
    }
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}

fn check_tag(tag: &str) -> anyhow::Result<()> {
    ensure!(
        !tag.is_empty()
            && tag.len() <= 16
            && tag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "--tag must be 1 to 16 lowercase letters or digits"
    );
    Ok(())
}

/// Event `n` of a run: `customer.created` or `customer.updated`, about customer
/// `cus_<tag>_<n>`, with id `evt_<tag>_<n>`.
fn event(tag: &str, n: usize) -> anyhow::Result<Value> {
    // Two types: the shape flips every pair, so both types come in both shapes.
    let mut event = events::example(&TYPES, n)?;
    event["id"] = json!(format!("evt_{tag}_{n:07}"));
    let object = event
        .get_mut("data")
        .and_then(|d| d.get_mut("object"))
        .context("the example event has no data.object")?;
    object["id"] = json!(format!("cus_{tag}_{n:07}"));
    object["email"] = json!(format!("{tag}.{n}@example.com"));
    Ok(event)
}

/// `n` events, signed now.
fn prepare(n: usize, tag: &str, secret: &WebhookSecret) -> anyhow::Result<Vec<SignedEvent>> {
    events::sign_each(n, secret, |i| event(tag, i))
}

async fn send_loop(
    client: reqwest::Client,
    url: url::Url,
    events: Arc<Vec<SignedEvent>>,
    next: Arc<AtomicUsize>,
    start: Instant,
    rate: Option<f64>,
    deadline: Instant,
) -> TaskResult {
    let mut result = TaskResult::default();
    // At most one iteration per event, and none after the deadline.
    for _ in 0..events.len() {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(event) = events.get(i) else { break };
        let due = match rate {
            Some(r) => start + Duration::from_secs_f64(i as f64 / r),
            None => start,
        };
        if due >= deadline || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep_until(due).await;
        let started = Instant::now();
        if rate.is_some() {
            result
                .late_us
                .push(micros(started.saturating_duration_since(due)));
        }
        http::post(&client, &url, event, started.into_std(), &mut result.tally).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use billhook_core::stripe::WebhookSecrets;
    use billhook_testkit::fixtures;

    use super::*;

    #[test]
    fn events_are_distinct_customers_of_both_types_and_shapes() {
        let secrets = WebhookSecrets::parse("whsec_test").expect("secret");
        let events = prepare(8, "t1", secrets.first()).expect("events");
        let mut seen = std::collections::HashSet::new();
        let mut kinds = std::collections::HashSet::new();
        for (n, p) in events.iter().enumerate() {
            let envelope = billhook_core::stripe::Envelope::parse(&p.body).expect("envelope");
            assert_eq!(envelope.id.as_str(), format!("evt_t1_{n:07}"));
            let v: Value = serde_json::from_slice(&p.body).expect("json");
            let customer = v["data"]["object"]["id"].as_str().expect("id").to_owned();
            assert!(seen.insert(customer));
            kinds.insert((
                v["type"].as_str().expect("type").to_owned(),
                v["api_version"].as_str().expect("version").to_owned(),
            ));
            billhook_core::stripe::signature::verify(
                Some(&p.signature),
                &p.body,
                &secrets,
                fixtures::unix_now(),
                300,
            )
            .expect("verifies");
        }
        assert_eq!(kinds.len(), 4);
    }

    #[test]
    fn only_plain_tags_are_accepted() {
        assert!(check_tag("lag01").is_ok());
        assert!(check_tag("Lag").is_err());
        assert!(check_tag("").is_err());
        assert!(check_tag("a_b").is_err());
    }
}
