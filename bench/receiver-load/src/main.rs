//! receiver-load: drives a running billhook-receiver with realistic, correctly signed Stripe
//! events and reports throughput and latency percentiles per concurrency. A benchmark script's
//! tool (bench/receiver.sh), never a test: numbers depend on the machine.
//!
//! For each concurrency C it pre-builds and pre-signs the run's events (distinct ids, a mix of
//! every handled type in both payload shapes, or with `--types all` of every type the testkit
//! has an example of, the unhandled ones being stored as ignored without a job) before timing, opens C keep-alive HTTP/1.1
//! connections (one client per task, at most one pooled connection each), sends an untimed
//! warm-up, then the timed run: every request's latency from send to the last byte of the
//! answer. Any answer other than 200, any transport error or timeout, and any event not sent
//! before the run's deadline counts as an error.
//!
//! With `--receiver-pid` it also reports the receiver's CPU use during each run and its peak
//! resident memory (VmHWM) at the end; PostgreSQL's CPU use (all processes named `postgres`)
//! and the whole machine's busy time are reported for each run as well, to tell which side is
//! the limit. Linux only for those figures (/proc).

mod report;
mod resources;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use billhook_core::stripe::WebhookSecret;
use billhook_core::stripe::event_types::HANDLED;
use billhook_testkit::fixtures;
use clap::Parser as _;
use load_common::events::{self, SignedEvent};
use load_common::tally::Tally;
use load_common::{args as checks, http};
use serde_json::json;

use crate::resources::CpuSample;

/// Largest run accepted, so a typo cannot build gigabytes of events.
const MAX_EVENTS: usize = 1_000_000;
const MAX_CONCURRENCY: usize = 1024;

#[derive(clap::Parser, Debug)]
#[command(
    name = "receiver-load",
    about = "Benchmark a running billhook-receiver with pre-signed realistic Stripe events."
)]
struct Args {
    /// Webhook URL of the receiver. Only http://127.0.0.1 is accepted.
    #[arg(long, default_value = "http://127.0.0.1:8080/api/webhooks/stripe")]
    url: String,

    /// Timed events per run: one number for every run, or one per concurrency (e.g.
    /// `2000,20000,20000`).
    #[arg(long, value_delimiter = ',', default_value = "2000")]
    events: Vec<usize>,

    /// Concurrent connections; a list makes one run per entry, in order (e.g. `1,16,64`).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,

    /// The receiver's webhook secrets (as BILLHOOK_WEBHOOK_SECRETS); the first one signs.
    #[arg(long, env = "BILLHOOK_WEBHOOK_SECRETS", hide_env_values = true)]
    secret: String,

    /// The receiver's process id: adds its CPU use per run and its peak RSS (VmHWM).
    #[arg(long)]
    receiver_pid: Option<u32>,

    /// Untimed events sent over the same connections before each timed run.
    #[arg(long, default_value_t = 200)]
    warmup: usize,

    /// Per-request timeout, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,

    /// Longest a timed run may last, in seconds; events not sent by then count as errors.
    #[arg(long, default_value_t = 120)]
    max_run_secs: u64,

    /// Event types to cycle through: `handled` (event_types::HANDLED: every event is stored
    /// and enqueued) or `all` (every built-in example, realistic sizes; unhandled types are
    /// stored as `ignored`, without a job).
    #[arg(long, value_enum, default_value_t = Types::Handled)]
    types: Types,

    /// Print the results as one JSON document on stdout (the table then goes to stderr).
    #[arg(long)]
    json: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Types {
    Handled,
    All,
}

impl Types {
    fn list(self) -> &'static [&'static str] {
        match self {
            Self::Handled => HANDLED,
            Self::All => fixtures::EVENT_TYPES,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url = checks::checked_url(&args.url)?;
    ensure!(!args.concurrency.is_empty(), "--concurrency is empty");
    ensure!(
        args.events.len() == 1 || args.events.len() == args.concurrency.len(),
        "--events takes one number or one per --concurrency entry"
    );
    for &c in &args.concurrency {
        ensure!(
            (1..=MAX_CONCURRENCY).contains(&c),
            "concurrency must be 1..={MAX_CONCURRENCY}"
        );
    }
    for &n in &args.events {
        ensure!(
            (1..=MAX_EVENTS).contains(&n),
            "events must be 1..={MAX_EVENTS}"
        );
    }
    ensure!(
        args.warmup <= MAX_EVENTS,
        "warmup must be at most {MAX_EVENTS}"
    );
    checks::check_max_run_secs(args.max_run_secs)?;
    let request_timeout = checks::request_timeout(args.request_timeout_ms)?;
    let secret = checks::signing_secret(&args.secret)?;

    let mut runs = Vec::new();
    for (i, &concurrency) in args.concurrency.iter().enumerate() {
        let events = if args.events.len() == 1 {
            args.events[0]
        } else {
            args.events[i]
        };
        eprintln!(
            "c={concurrency}: building and signing {events} + {} warm-up events",
            args.warmup
        );
        let built = Instant::now();
        let warmup = Arc::new(prepare(args.warmup, args.types, &secret)?);
        let timed = Arc::new(prepare(events, args.types, &secret)?);
        let mean_body = events::mean_body_bytes(&timed);
        eprintln!(
            "c={concurrency}: built in {:.1} s, mean body {mean_body} bytes",
            built.elapsed().as_secs_f64()
        );

        let clients = (0..concurrency)
            .map(|_| http::client(request_timeout))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !warmup.is_empty() {
            let deadline = Instant::now() + Duration::from_secs(args.max_run_secs);
            let w = drive(&clients, &url, warmup, deadline).await?;
            let errors = w.errors(args.warmup);
            if errors > 0 {
                eprintln!(
                    "c={concurrency}: warm-up had {errors} error(s): {:?}",
                    w.messages
                );
            }
        }

        let before = CpuSample::take(args.receiver_pid);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(args.max_run_secs);
        let mut result = drive(&clients, &url, Arc::clone(&timed), deadline).await?;
        let wall = started.elapsed();
        let after = CpuSample::take(args.receiver_pid);
        drop(clients);

        let run = report::run(
            concurrency,
            events,
            mean_body,
            wall,
            &mut result,
            &before,
            &after,
        );
        eprintln!("{}", report::human_line(&run));
        runs.push(run);
    }

    let peak = match args.receiver_pid {
        Some(pid) => Some(resources::memory(pid)?),
        None => None,
    };
    let output = json!({
        "url": url.as_str(),
        "warmup_events_per_run": args.warmup,
        "types": format!("{:?}", args.types).to_lowercase(),
        "event_types": args.types.list(),
        "handled_types": HANDLED,
        "runs": runs,
        "receiver_memory_kb": peak,
    });
    let table = report::human_table(&runs, peak.as_ref());
    if args.json {
        eprintln!("{table}");
        println!("{}", serde_json::to_string_pretty(&output)?);
    } else {
        println!("{table}");
    }
    Ok(())
}

/// `n` distinct events cycling through `types` and both payload shapes, signed now.
fn prepare(n: usize, types: Types, secret: &WebhookSecret) -> anyhow::Result<Vec<SignedEvent>> {
    let list = types.list();
    ensure!(!list.is_empty(), "no event types to send");
    events::sign_each(n, secret, |i| events::example(list, i))
}

/// Sends every event of `events` over the clients, one task per client, each task taking the
/// next unsent event until none is left or `deadline` passes.
async fn drive(
    clients: &[reqwest::Client],
    url: &url::Url,
    events: Arc<Vec<SignedEvent>>,
    deadline: Instant,
) -> anyhow::Result<Tally> {
    let next = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = clients
        .iter()
        .map(|client| {
            let client = client.clone();
            let url = url.clone();
            let events = Arc::clone(&events);
            let next = Arc::clone(&next);
            tokio::spawn(async move { send_loop(client, url, events, next, deadline).await })
        })
        .collect();
    let mut total = Tally::default();
    for handle in handles {
        total.merge(handle.await.context("a load task panicked")?);
    }
    Ok(total)
}

async fn send_loop(
    client: reqwest::Client,
    url: url::Url,
    events: Arc<Vec<SignedEvent>>,
    next: Arc<AtomicUsize>,
    deadline: Instant,
) -> Tally {
    let mut result = Tally::with_capacity(events.len());
    // At most one iteration per event, and none after the deadline.
    for _ in 0..events.len() {
        if Instant::now() >= deadline {
            break;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(event) = events.get(i) else { break };
        http::post(&client, &url, event, Instant::now(), &mut result).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use billhook_core::stripe::WebhookSecrets;
    use serde_json::Value;

    use super::*;

    #[test]
    fn prepared_events_are_distinct_and_verify() {
        let secrets = WebhookSecrets::parse("whsec_test").expect("secret");
        let events = prepare(40, Types::All, secrets.first()).expect("events");
        assert_eq!(
            prepare(7, Types::Handled, secrets.first())
                .expect("handled")
                .len(),
            7
        );
        let ids: std::collections::HashSet<String> = events
            .iter()
            .map(|p| {
                let v: Value = serde_json::from_slice(&p.body).expect("json");
                v["id"].as_str().expect("id").to_owned()
            })
            .collect();
        assert_eq!(ids.len(), 40);
        for p in &events {
            let now = fixtures::unix_now();
            billhook_core::stripe::signature::verify(
                Some(&p.signature),
                &p.body,
                &secrets,
                now,
                300,
            )
            .expect("verifies");
        }
    }
}
