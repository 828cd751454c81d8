//! `billhook-worker run`: every job kind on the queue's workers ([`crate::queue::Workers`]),
//! with the admin listener (/healthz, /readyz, /metrics) and the scheduled tasks
//! ([`crate::schedule`]: reconciliation, alert evaluation) beside them.
//!
//! Lifecycle: start → refuse an unmigrated database or unusable settings → serve until
//! `shutdown` completes → let in-flight jobs finish within the shutdown timeout → return.
//! A job worker that gives up ends the process with an error, for its supervisor to restart.

pub mod admin;
pub mod metrics;
pub mod settings;

use std::future::Future;
use std::net::TcpListener;

use anyhow::Context as _;
use sqlx::PgPool;

use crate::alerts::Alerts;
use crate::alerts::channels::Channels;
use crate::alerts::post::PostAlertJob;
use crate::billing::context::Context;
use crate::billing::job::ProcessEventJob;
use crate::dunning::Dunning;
use crate::dunning::job::DunningStepJob;
use crate::email::Mailer;
use crate::email::job::SendEmailJob;
use crate::notify::Outbox;
use crate::notify::job::NotifyAppJob;
use crate::queue::{Ended, Workers, connections};
use crate::reconcile::{self, Reconciler};
use crate::summary::Summaries;
use metrics::Metrics;
use settings::RunSettings;

/// A worker process bound to its admin port, ready to run.
pub struct Daemon {
    pool: PgPool,
    settings: RunSettings,
    admin: TcpListener,
    metrics: Metrics,
    name: String,
    jobs: Jobs,
    /// Reconciliation, when a Stripe API key is configured.
    reconciler: Option<Reconciler>,
    alerts: Alerts,
    summaries: Summaries,
    /// The operator console, unless BILLHOOK_CONSOLE_LISTEN is `off`.
    console: Option<billhook_console::Console>,
}

/// Every job kind, built (and its settings checked) before the process starts serving.
struct Jobs {
    process_event: ProcessEventJob,
    notify_app: NotifyAppJob,
    send_email: SendEmailJob,
    dunning_step: DunningStepJob,
    post_alert: PostAlertJob,
}

impl Jobs {
    /// The job kinds `run` adds, each with a queue holding one connection for its LISTEN.
    const KINDS: u32 = 5;
}

impl Daemon {
    /// Refuses an unmigrated database or unusable settings (notices, email, Stripe's API),
    /// and binds the admin listener.
    pub async fn build(pool: PgPool, settings: RunSettings) -> anyhow::Result<Self> {
        billhook_core::db::check_migrated(&pool).await?;
        let metrics = Metrics::new();
        let stripe = settings.billing.stripe_api()?;
        let mailer = Mailer {
            max_attempts: settings.email.max_attempts,
            payment_failed_hold: settings.email.payment_failed_hold,
        };
        let dunning = Dunning {
            schedule: settings.dunning.schedule.clone(),
            max_attempts: settings.dunning.max_attempts,
        };
        let outbox = Outbox::from_settings(&settings.notify)?;
        let alerts = Alerts {
            pool: pool.clone(),
            channels: Channels {
                settings: settings.alerts.clone(),
                mailer: mailer.clone(),
                outbox: settings.alerts.notify_app.then(|| outbox.clone()),
            },
        };
        let summaries = Summaries {
            pool: pool.clone(),
            settings: settings.summary.clone(),
            mailer: mailer.clone(),
            console_url: settings.alerts.console_url.clone(),
        };
        if settings.alerts.notify_app && settings.notify.url.is_none() {
            anyhow::bail!(
                "BILLHOOK_ALERT_NOTIFY_APP is on but BILLHOOK_NOTIFY_URL is not set: alerts \
                 would be recorded as notices and never sent"
            );
        }
        let context = Context {
            outbox,
            ledger: settings.billing.ledger_rule,
            stripe: stripe.clone(),
            mailer: mailer.clone(),
            dunning: dunning.clone(),
        };
        let max_connections = pool.options().get_max_connections();
        let event_slots = connections::for_jobs(max_connections, Jobs::KINDS);
        tracing::info!(
            events_at_once = event_slots.min(settings.queue.concurrency),
            database_max_connections = max_connections,
            "events applied at once: the pool less one LISTEN connection per job kind ({}) \
             and {} kept for the queues' polls, scheduled tasks and the console",
            Jobs::KINDS,
            connections::RESERVED
        );
        let jobs = Jobs {
            process_event: ProcessEventJob::new(
                pool.clone(),
                metrics.events.clone(),
                context,
                event_slots,
            ),
            notify_app: NotifyAppJob::new(pool.clone(), &settings.notify)?,
            send_email: SendEmailJob::new(pool.clone(), &settings.email)?,
            dunning_step: DunningStepJob {
                pool: pool.clone(),
                dunning,
                mailer,
                stripe: stripe.clone(),
            },
            post_alert: PostAlertJob::new(pool.clone(), &settings.alerts)?,
        };
        let reconciler = stripe.map(|api| Reconciler {
            pool: pool.clone(),
            api,
            settings: settings.reconcile.clone(),
            metrics: metrics.reconcile.clone(),
        });
        settings.retention.check()?;
        crate::billing::settings::store(&pool, &settings.billing).await?;
        let admin = TcpListener::bind(&settings.admin_listen)
            .with_context(|| format!("cannot listen on {}", settings.admin_listen))?;
        let console = if settings.console.is_off() {
            None
        } else {
            Some(crate::console::build(&pool, &settings.console)?)
        };
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "billhook".to_owned());
        // Unique per process start: a restarted worker must not inherit its predecessor's
        // heartbeat, or the job it was running when killed would stay Running forever.
        let name = format!("{host}-{}", ulid::Ulid::generate());
        Ok(Self {
            pool,
            settings,
            admin,
            metrics,
            name,
            jobs,
            reconciler,
            alerts,
            summaries,
            console,
        })
    }

    pub fn admin_port(&self) -> u16 {
        self.admin.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The console's port, when this process serves it.
    pub fn console_port(&self) -> Option<u16> {
        self.console.as_ref().map(billhook_console::Console::port)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            pool,
            settings,
            admin,
            metrics,
            name,
            jobs,
            reconciler,
            alerts,
            summaries,
            console,
        } = self;
        let admin = admin::serve(admin, pool.clone(), metrics.clone())?;
        let admin_handle = admin.handle();
        let admin_task = tokio::spawn(admin);
        let (stop_console, console_stopped) = tokio::sync::oneshot::channel::<()>();
        let console_task = console.map(|console| {
            tokio::spawn(console.run(async {
                let _ = console_stopped.await;
            }))
        });
        let retention_pool = pool.clone();
        let mut workers = Workers::new(pool, settings.queue.clone(), name.clone(), metrics.queue);
        workers.add(jobs.process_event);
        workers.add(jobs.notify_app);
        workers.add(jobs.send_email);
        workers.add(jobs.dunning_step);
        workers.add(jobs.post_alert);
        debug_assert_eq!(workers.kinds(), Jobs::KINDS as usize);
        let (stop_schedule, schedule_stopped) = tokio::sync::oneshot::channel::<()>();
        let schedule = match reconciler {
            Some(reconciler) => {
                tracing::info!(
                    interval = %humantime::format_duration(settings.reconcile.interval),
                    "reconciliation with Stripe's Events API scheduled"
                );
                tokio::spawn(schedule_reconcile(
                    reconciler,
                    settings.reconcile.interval,
                    schedule_stopped,
                ))
            }
            None => {
                tracing::warn!(
                    "reconciliation is off: BILLHOOK_STRIPE_API_KEY is not set, so events whose \
                     webhooks never arrive are not recovered"
                );
                tokio::spawn(async {})
            }
        };
        tracing::info!(worker = %name, admin = %settings.admin_listen,
            console = %if console_task.is_some() { settings.console.listen.as_str() } else { "off" },
            "billhook-worker running");
        let (stop_alerts, alerts_stopped) = tokio::sync::oneshot::channel::<()>();
        let alerts_interval = settings.alerts.interval;
        let alerts_task = tokio::spawn(schedule_alerts(alerts, alerts_interval, alerts_stopped));
        let (stop_retention, retention_stopped) = tokio::sync::oneshot::channel::<()>();
        let retention_task = tokio::spawn(schedule_retention(
            retention_pool,
            settings.retention.clone(),
            retention_stopped,
        ));
        let (stop_summary, summary_stopped) = tokio::sync::oneshot::channel::<()>();
        let summary_task = tokio::spawn(schedule_summary(summaries, summary_stopped));
        let ended = workers.run(shutdown).await;
        let _ = stop_schedule.send(());
        let _ = stop_alerts.send(());
        let _ = stop_summary.send(());
        let _ = stop_retention.send(());
        let _ = schedule.await;
        let _ = alerts_task.await;
        let _ = summary_task.await;
        let _ = retention_task.await;
        let _ = stop_console.send(());
        if let Some(task) = console_task {
            match task.await {
                Ok(Err(e)) => {
                    tracing::error!(error = %format!("{e:#}"), "the console ended with an error")
                }
                Err(e) => tracing::error!(error = %e, "the console's task failed"),
                Ok(Ok(())) => {}
            }
        }
        admin_handle.stop(true).await;
        let _ = admin_task.await;
        // A worker that gave up must not look like a clean stop, so a supervisor (systemd,
        // compose, Kubernetes) restarts the process.
        if ended? == Ended::GaveUp {
            anyhow::bail!(
                "a job worker kept failing for longer than {} (BILLHOOK_WORKER_GIVE_UP_AFTER); see the errors above",
                humantime::format_duration(settings.queue.give_up_after)
            );
        }
        tracing::info!("billhook-worker stopped");
        Ok(())
    }
}

/// Evaluates the alert rules on the interval until stopped (one evaluation per interval across
/// every process: [`Alerts::tick`]).
async fn schedule_alerts(
    alerts: Alerts,
    interval: std::time::Duration,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let first = std::time::Duration::from_millis(rand::random_range(500..2_000));
    let stop = async {
        let _ = stop.await;
    };
    crate::schedule::every(first, interval, stop, || async {
        match alerts.tick(chrono::Utc::now()).await {
            Ok(crate::alerts::Tick::Skipped(why)) => tracing::debug!(why, "alert evaluation skipped"),
            Ok(crate::alerts::Tick::Evaluated(_)) => {}
            Err(e) => tracing::error!(error = %format!("{e:#}"), "alert evaluation failed; the next interval tries again"),
        }
    })
    .await;
}

/// Removes finished work past its time every BILLHOOK_RETENTION_INTERVAL (one process at a
/// time, in small batches).
async fn schedule_retention(
    pool: sqlx::PgPool,
    settings: crate::retention::settings::RetentionSettings,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let first = std::time::Duration::from_millis(rand::random_range(5_000..15_000));
    let stop = async {
        let _ = stop.await;
    };
    crate::schedule::every(first, settings.interval, stop, || async {
        if let Err(e) = crate::retention::tick(&pool, &settings, chrono::Utc::now()).await {
            tracing::error!(error = %format!("{e:#}"), "retention could not run; the next interval tries again");
        }
    })
    .await;
}

/// Sends the daily summary when it is due (checked every minute, one process at a time).
async fn schedule_summary(summaries: Summaries, stop: tokio::sync::oneshot::Receiver<()>) {
    if summaries.settings.email.is_empty() {
        tracing::info!("no daily summary: BILLHOOK_SUMMARY_EMAIL is not set");
        return;
    }
    tracing::info!(at = %summaries.settings.at, "daily summary scheduled");
    let first = std::time::Duration::from_millis(rand::random_range(1_000..5_000));
    let stop = async {
        let _ = stop.await;
    };
    crate::schedule::every(first, std::time::Duration::from_secs(60), stop, || async {
        if let Err(e) = summaries.tick(chrono::Utc::now()).await {
            tracing::error!(error = %format!("{e:#}"), "the daily summary could not be written; the next minute tries again");
        }
    })
    .await;
}

/// Reconciles on the interval until stopped. The first run comes shortly after start (a
/// restarted worker catches up at once), staggered so that processes started together do not
/// all reach for the lock in the same instant.
async fn schedule_reconcile(
    reconciler: Reconciler,
    interval: std::time::Duration,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let first = std::time::Duration::from_millis(rand::random_range(1_000..5_000));
    let stop = async {
        let _ = stop.await;
    };
    crate::schedule::every(first, interval, stop, || async {
        match reconciler
            .run(reconcile::Trigger::Schedule, &reconcile::Options::default())
            .await
        {
            Ok(reconcile::Outcome::Skipped(why)) => tracing::debug!(why, "reconciliation skipped"),
            Ok(reconcile::Outcome::Ran(_)) => {}
            // Logged and recorded by the run; the next interval tries again.
            Err(reconcile::RunError::Failed { .. }) => {}
            Err(e) => tracing::error!(error = %format!("{e:#}"), "reconciliation could not run"),
        }
    })
    .await;
}
