//! Settings of the job workers: how jobs are fetched, retried, given up on and kept. Part of
//! the `run` daemon's settings; docs/configuration.md is the reference page.

use std::time::Duration;

use billhook_core::config::positive_duration;

#[derive(clap::Args, Debug, Clone)]
pub struct QueueSettings {
    /// Jobs of one kind processed at once by this process. Events applied at once are also
    /// bounded by the pool's free connections (`queue::connections`).
    #[arg(long = "concurrency", env = "BILLHOOK_WORKER_CONCURRENCY", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,

    /// Jobs fetched per poll. Throughput depends mostly on this: in the latest sweep
    /// (docs/performance.md, "Worker") 10 applied ~340 events/s, 50 ~820, 100 ~1,020 and
    /// 200 ~810, so 100 is the default.
    #[arg(long = "batch-size", env = "BILLHOOK_WORKER_BATCH_SIZE", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,

    /// Poll interval beside LISTEN/NOTIFY. NOTIFY is not sent for retries that come due, for
    /// requeues or for scheduled jobs, and some notified jobs were still picked up only by the
    /// poll: at 1 s the receipt-to-applied lag p99 was 708 ms under 200 events/s, at 100 ms
    /// 66 ms. An idle poll is one cheap query.
    #[arg(long = "poll-interval", env = "BILLHOOK_WORKER_POLL_INTERVAL", default_value = "100ms",
          value_parser = positive_duration)]
    pub poll_interval: Duration,

    /// Heartbeat interval. A worker that misses `missed-heartbeats` in a row is presumed dead
    /// and its jobs return to the queue: 5s × 3 brings them back within about 15 s.
    #[arg(long = "heartbeat-interval", env = "BILLHOOK_WORKER_HEARTBEAT_INTERVAL", default_value = "5s",
          value_parser = positive_duration)]
    pub heartbeat_interval: Duration,

    /// Missed heartbeats before a worker's jobs are taken back.
    #[arg(long = "missed-heartbeats", env = "BILLHOOK_WORKER_MISSED_HEARTBEATS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub missed_heartbeats: u32,

    /// Delay before the first retry; each further retry doubles it (with ±50 % jitter).
    #[arg(long = "retry-base", env = "BILLHOOK_RETRY_BASE", default_value = "5s",
          value_parser = positive_duration)]
    pub retry_base: Duration,

    /// Longest delay between two attempts.
    #[arg(long = "retry-max", env = "BILLHOOK_RETRY_MAX", default_value = "30m",
          value_parser = positive_duration)]
    pub retry_max: Duration,

    /// How long SIGTERM waits for in-flight jobs before the process exits anyway (they then
    /// return to the queue through the heartbeat).
    #[arg(long = "shutdown-timeout", env = "BILLHOOK_WORKER_SHUTDOWN_TIMEOUT", default_value = "30s",
          value_parser = positive_duration)]
    pub shutdown_timeout: Duration,

    /// A job worker that keeps failing (its database away) is restarted with growing pauses;
    /// after failing without a break for this long, the process exits non-zero for its
    /// supervisor. Long enough to ride out a PostgreSQL restart or failover.
    #[arg(long = "give-up-after", env = "BILLHOOK_WORKER_GIVE_UP_AFTER", default_value = "5m",
          value_parser = positive_duration)]
    pub give_up_after: Duration,

    /// Finished jobs are deleted from apalis's table after this long (failed ones are kept).
    #[arg(long = "job-retention", env = "BILLHOOK_JOB_RETENTION", default_value = "7d",
          value_parser = positive_duration)]
    pub job_retention: Duration,
}
