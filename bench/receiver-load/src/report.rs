//! The results of one run as JSON (the document the benchmark script reads with jq) and as the
//! human-readable line and table printed while and after it runs.

use std::time::Duration;

use load_common::percentiles::percentile;
use load_common::report::{per_second, round};
use load_common::tally::Tally;
use serde_json::{Value, json};

use crate::resources::CpuSample;

pub fn run(
    concurrency: usize,
    events: usize,
    mean_body: usize,
    wall: Duration,
    result: &mut Tally,
    before: &CpuSample,
    after: &CpuSample,
) -> Value {
    result.latencies_us.sort_unstable();
    let lat = &result.latencies_us;
    let ok = result.ok();
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
        "statuses": result.statuses_json(),
        "transport_errors": result.transport_errors,
        "error_samples": result.messages,
        "wall_s": round(wall.as_secs_f64(), 3),
        "throughput_per_s": round(per_second(ok, wall), 1),
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

pub fn human_line(run: &Value) -> String {
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

pub fn human_table(runs: &[Value], memory: Option<&Value>) -> String {
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
