//! CPU and memory figures from /proc (Linux only): the receiver's peak and current resident
//! memory, and CPU ticks of the machine, the receiver, PostgreSQL and this process, sampled
//! around each timed run to tell which side is the limit.

use anyhow::Context as _;
use load_common::report::round;
use serde_json::{Value, json};

/// The receiver's peak and current resident memory, from /proc/PID/status.
pub fn memory(pid: u32) -> anyhow::Result<Value> {
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
pub struct CpuSample {
    machine_total: u64,
    machine_idle: u64,
    cpus: usize,
    receiver: Option<u64>,
    postgres: u64,
    load: u64,
}

impl CpuSample {
    pub fn take(receiver_pid: Option<u32>) -> Self {
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

    pub fn usage(&self, after: &CpuSample) -> Value {
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
    fn process_ticks_reads_this_process() {
        assert!(process_ticks("/proc/self/stat").is_some());
        assert!(machine_ticks().is_some());
    }
}
