//! receiver-load: drives a running billhook-receiver with realistic, correctly signed Stripe
//! events and reports throughput and latency percentiles per concurrency. A benchmark script's
//! tool (scripts/bench-receiver.sh), never a test: numbers depend on the machine.
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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use billhook_core::stripe::event_types::HANDLED;
use billhook_core::stripe::{WebhookSecret, WebhookSecrets};
use billhook_testkit::fixtures::{self, ApiShape};
use clap::Parser as _;
use serde_json::{Value, json};

/// Largest run accepted, so a typo cannot build gigabytes of events.
const MAX_EVENTS: usize = 1_000_000;
const MAX_CONCURRENCY: usize = 1024;
/// Signatures are made when the run's events are built; the receiver's default tolerance is
/// 300 s, so a run must end well before that.
const MAX_RUN_SECS: u64 = 240;
/// Error messages kept per run (the count is always complete).
const KEPT_ERRORS: usize = 5;

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

/// One event, ready to send.
struct Prepared {
    body: Vec<u8>,
    signature: String,
}

#[derive(Default)]
struct TaskResult {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<u16, usize>,
    transport_errors: usize,
    duplicates: usize,
    sent: usize,
    messages: Vec<String>,
}

impl TaskResult {
    fn merge(&mut self, other: TaskResult) {
        self.latencies_us.extend(other.latencies_us);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
        self.duplicates += other.duplicates;
        self.sent += other.sent;
        for m in other.messages {
            if self.messages.len() < KEPT_ERRORS {
                self.messages.push(m);
            }
        }
    }

    fn errors(&self, planned: usize) -> usize {
        let bad_status: usize = self
            .statuses
            .iter()
            .filter(|(s, _)| **s != 200)
            .map(|(_, n)| n)
            .sum();
        bad_status + self.transport_errors + planned.saturating_sub(self.sent)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url = checked_url(&args.url)?;
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
    ensure!(
        (1..=MAX_RUN_SECS).contains(&args.max_run_secs),
        "--max-run-secs must be 1..={MAX_RUN_SECS} (signatures expire after 300 s)"
    );
    ensure!(
        (1..=60_000).contains(&args.request_timeout_ms),
        "--request-timeout-ms must be 1..=60000"
    );
    let secrets = WebhookSecrets::parse(&args.secret).context("--secret")?;
    let secret = secrets.first().clone();
    let request_timeout = Duration::from_millis(args.request_timeout_ms);

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
        let mean_body = timed.iter().map(|p| p.body.len()).sum::<usize>() / timed.len().max(1);
        eprintln!(
            "c={concurrency}: built in {:.1} s, mean body {mean_body} bytes",
            built.elapsed().as_secs_f64()
        );

        let clients = (0..concurrency)
            .map(|_| client(request_timeout))
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

        let run = report_run(
            concurrency,
            events,
            mean_body,
            wall,
            &mut result,
            &before,
            &after,
        );
        eprintln!("{}", human_line(&run));
        runs.push(run);
    }

    let peak = match args.receiver_pid {
        Some(pid) => Some(memory(pid)?),
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
    let table = human_table(&runs, peak.as_ref());
    if args.json {
        eprintln!("{table}");
        println!("{}", serde_json::to_string_pretty(&output)?);
    } else {
        println!("{table}");
    }
    Ok(())
}

/// Accepts only plain HTTP to 127.0.0.1: this tool is never pointed at anything but a local
/// receiver.
fn checked_url(raw: &str) -> anyhow::Result<url::Url> {
    let url = url::Url::parse(raw).with_context(|| format!("--url `{raw}` is not a URL"))?;
    if url.scheme() != "http" || url.host_str() != Some("127.0.0.1") {
        bail!("--url must be http://127.0.0.1:<port>/…; got `{raw}`");
    }
    Ok(url)
}

/// `n` distinct events cycling through `types` and both payload shapes, signed now.
fn prepare(n: usize, types: Types, secret: &WebhookSecret) -> anyhow::Result<Vec<Prepared>> {
    let timestamp = fixtures::unix_now();
    let list = types.list();
    ensure!(!list.is_empty(), "no event types to send");
    (0..n)
        .map(|i| {
            let event_type = list[i % list.len()];
            // 19 and 3 types are odd, so i % 2 meets every type in both shapes; with an even
            // count the shape flips every full cycle instead.
            let shape = if list.len() % 2 == 1 {
                ApiShape::ALL[i % 2]
            } else {
                ApiShape::ALL[(i / list.len()) % 2]
            };
            let event = fixtures::event(event_type, shape)
                .with_context(|| format!("no built-in example for {event_type}"))?;
            let body = fixtures::to_body(&event);
            let signature = secret.sign(timestamp, &body);
            Ok(Prepared { body, signature })
        })
        .collect()
}

/// One HTTP/1.1 client holding at most one idle (keep-alive) connection.
fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .no_proxy()
        .timeout(timeout)
        .build()
        .context("cannot build the HTTP client")
}

/// Sends every event of `events` over the clients, one task per client, each task taking the
/// next unsent event until none is left or `deadline` passes.
async fn drive(
    clients: &[reqwest::Client],
    url: &url::Url,
    events: Arc<Vec<Prepared>>,
    deadline: Instant,
) -> anyhow::Result<TaskResult> {
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
    let mut total = TaskResult::default();
    for handle in handles {
        total.merge(handle.await.context("a load task panicked")?);
    }
    Ok(total)
}

async fn send_loop(
    client: reqwest::Client,
    url: url::Url,
    events: Arc<Vec<Prepared>>,
    next: Arc<AtomicUsize>,
    deadline: Instant,
) -> TaskResult {
    let mut result = TaskResult {
        latencies_us: Vec::with_capacity(events.len()),
        ..TaskResult::default()
    };
    // At most one iteration per event, and none after the deadline.
    for _ in 0..events.len() {
        if Instant::now() >= deadline {
            break;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(event) = events.get(i) else { break };
        result.sent += 1;
        let started = Instant::now();
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
        let elapsed = started.elapsed();
        match answer {
            Ok((status, body)) => {
                result
                    .latencies_us
                    .push(elapsed.as_micros().try_into().unwrap_or(u64::MAX));
                *result.statuses.entry(status).or_default() += 1;
                if status == 200 {
                    let duplicate = serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(|v| v.get("duplicate").and_then(Value::as_bool));
                    if duplicate != Some(false) {
                        result.duplicates += 1;
                    }
                } else if result.messages.len() < KEPT_ERRORS {
                    result.messages.push(format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    ));
                }
            }
            Err(e) => {
                result.transport_errors += 1;
                if result.messages.len() < KEPT_ERRORS {
                    result.messages.push(format!("{e:?}"));
                }
            }
        }
    }
    result
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = (p * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted[index] as f64 / 1000.0
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

fn report_run(
    concurrency: usize,
    events: usize,
    mean_body: usize,
    wall: Duration,
    result: &mut TaskResult,
    before: &CpuSample,
    after: &CpuSample,
) -> Value {
    result.latencies_us.sort_unstable();
    let lat = &result.latencies_us;
    let ok = result.statuses.get(&200).copied().unwrap_or(0);
    let wall_s = wall.as_secs_f64();
    let mean_ms = if lat.is_empty() {
        0.0
    } else {
        lat.iter().sum::<u64>() as f64 / lat.len() as f64 / 1000.0
    };
    json!({
        "concurrency": concurrency,
        "events": events,
        "mean_body_bytes": mean_body,
        "sent": result.sent,
        "ok": ok,
        "errors": result.errors(events),
        "duplicates": result.duplicates,
        "statuses": result.statuses.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "transport_errors": result.transport_errors,
        "error_samples": result.messages,
        "wall_s": round(wall_s, 3),
        "throughput_per_s": round(ok as f64 / wall_s.max(1e-9), 1),
        "latency_ms": {
            "mean": round(mean_ms, 3),
            "p50": round(percentile(lat, 0.50), 3),
            "p90": round(percentile(lat, 0.90), 3),
            "p99": round(percentile(lat, 0.99), 3),
            "max": round(percentile(lat, 1.0), 3),
        },
        "cpu_percent_of_one_core": before.usage(after),
    })
}

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut v = v;
    for key in path {
        v = &v[*key];
    }
    v.as_f64().unwrap_or(f64::NAN)
}

fn human_line(run: &Value) -> String {
    format!(
        "c={:<3} events={:<6} errors={:<4} wall={:>7.2}s  {:>8.1} events/s  p50={:.2} p90={:.2} p99={:.2} max={:.2} ms  cpu%: receiver={:.0} postgres={:.0} load={:.0} machine-busy={:.0}/{:.0}",
        f(run, &["concurrency"]),
        f(run, &["events"]),
        f(run, &["errors"]),
        f(run, &["wall_s"]),
        f(run, &["throughput_per_s"]),
        f(run, &["latency_ms", "p50"]),
        f(run, &["latency_ms", "p90"]),
        f(run, &["latency_ms", "p99"]),
        f(run, &["latency_ms", "max"]),
        f(run, &["cpu_percent_of_one_core", "receiver"]),
        f(run, &["cpu_percent_of_one_core", "postgres"]),
        f(run, &["cpu_percent_of_one_core", "load_generator"]),
        f(run, &["cpu_percent_of_one_core", "machine_busy"]),
        f(run, &["cpu_percent_of_one_core", "machine_capacity"]),
    )
}

fn human_table(runs: &[Value], memory: Option<&Value>) -> String {
    let mut out = String::from(
        "concurrency   events  errors   wall s   events/s   p50 ms   p90 ms   p99 ms   max ms\n",
    );
    for run in runs {
        out.push_str(&format!(
            "{:>11} {:>8} {:>7} {:>8.2} {:>10.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2}\n",
            f(run, &["concurrency"]),
            f(run, &["events"]),
            f(run, &["errors"]),
            f(run, &["wall_s"]),
            f(run, &["throughput_per_s"]),
            f(run, &["latency_ms", "p50"]),
            f(run, &["latency_ms", "p90"]),
            f(run, &["latency_ms", "p99"]),
            f(run, &["latency_ms", "max"]),
        ));
        if let Some(samples) = run["error_samples"].as_array().filter(|s| !s.is_empty()) {
            out.push_str(&format!("  error samples: {samples:?}\n"));
        }
    }
    if let Some(m) = memory {
        out.push_str(&format!(
            "receiver peak RSS (VmHWM): {} kB, current RSS: {} kB\n",
            m["vm_hwm_kb"], m["vm_rss_kb"]
        ));
    }
    out
}

/// The receiver's peak and current resident memory, from /proc/PID/status.
fn memory(pid: u32) -> anyhow::Result<Value> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status (is the receiver running?)"))?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Ok(json!({ "vm_hwm_kb": field("VmHWM:"), "vm_rss_kb": field("VmRSS:") }))
}

/// CPU ticks at one instant: the whole machine, the receiver, every `postgres` process and
/// this process. Percentages are computed against the machine's total ticks, so the clock
/// tick rate does not matter.
struct CpuSample {
    machine_total: u64,
    machine_idle: u64,
    cpus: usize,
    receiver: Option<u64>,
    postgres: u64,
    load: u64,
}

impl CpuSample {
    fn take(receiver_pid: Option<u32>) -> Self {
        let (machine_total, machine_idle, cpus) = machine_ticks().unwrap_or((0, 0, 1));
        Self {
            machine_total,
            machine_idle,
            cpus,
            receiver: receiver_pid.and_then(|p| process_ticks(&format!("/proc/{p}/stat"))),
            postgres: postgres_ticks(),
            load: process_ticks("/proc/self/stat").unwrap_or(0),
        }
    }

    fn usage(&self, after: &CpuSample) -> Value {
        let total = after.machine_total.saturating_sub(self.machine_total);
        if total == 0 {
            return Value::Null;
        }
        // Percent of one core: ticks / (all cores' ticks) × cores × 100.
        let pct = |ticks: u64| round(ticks as f64 / total as f64 * self.cpus as f64 * 100.0, 1);
        let idle = after.machine_idle.saturating_sub(self.machine_idle);
        json!({
            "machine_capacity": self.cpus * 100,
            "machine_busy": pct(total.saturating_sub(idle)),
            "receiver": match (self.receiver, after.receiver) {
                (Some(a), Some(b)) => json!(pct(b.saturating_sub(a))),
                _ => Value::Null,
            },
            "postgres": pct(after.postgres.saturating_sub(self.postgres)),
            "load_generator": pct(after.load.saturating_sub(self.load)),
        })
    }
}

/// (total ticks, idle + iowait ticks, number of CPUs) from /proc/stat.
fn machine_ticks() -> Option<(u64, u64, usize)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut lines = stat.lines();
    let first = lines.next()?;
    let values: Vec<u64> = first
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    let cpus = lines
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count()
        .max(1);
    Some((total, idle, cpus))
}

/// utime + stime of one process (all its threads), in ticks.
fn process_ticks(stat_path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // The command name may contain spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Summed ticks of every process named `postgres` (server, backends, WAL writer…). Backends
/// that exit during a run are missed; the receiver's pooled connections stay up.
fn postgres_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "postgres")
        })
        .filter_map(|e| process_ticks(&e.path().join("stat").to_string_lossy()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn only_local_http_is_accepted() {
        assert!(checked_url("http://127.0.0.1:8080/api/webhooks/stripe").is_ok());
        assert!(checked_url("https://127.0.0.1:8080/").is_err());
        assert!(checked_url("http://example.com/").is_err());
        assert!(checked_url("http://localhost:8080/").is_err());
    }

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

    #[test]
    fn process_ticks_reads_this_process() {
        assert!(process_ticks("/proc/self/stat").is_some());
        assert!(machine_ticks().is_some());
    }
}
