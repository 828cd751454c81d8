//! What a sync shows while it runs: on a terminal (stderr), one live line per type with the
//! objects fetched, written and kept and the rate; elsewhere, one log line per page with the
//! same figures.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::summary::TypeSummary;
use super::types::ObjectType;

/// Objects fetched, written and kept (the mirror had a newer version).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub fetched: i64,
    pub written: i64,
    pub kept: i64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Self) {
        self.fetched += other.fetched;
        self.written += other.written;
        self.kept += other.kept;
    }
}

/// Where progress goes: live lines, or log lines.
pub struct Progress {
    live: Option<MultiProgress>,
}

impl Progress {
    /// Live lines when stderr is a terminal, log lines otherwise.
    pub fn for_stderr() -> Self {
        if std::io::stderr().is_terminal() {
            Self {
                live: Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            }
        } else {
            Self::log()
        }
    }

    /// Log lines only (`tracing::info!`).
    pub fn log() -> Self {
        Self { live: None }
    }

    /// A message for the operator, above the live lines or as a log line.
    pub fn note(&self, message: &str) {
        match &self.live {
            Some(multi) => {
                if multi.println(message).is_err() {
                    tracing::info!("{message}");
                }
            }
            None => tracing::info!("{message}"),
        }
    }

    /// The line of `object_type`, starting from the counts `before` this process (a resumed
    /// run's earlier pages).
    pub fn start(&self, object_type: ObjectType, before: Counts) -> TypeLine {
        let bar = self.live.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<18} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(object_type.name());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let line = TypeLine {
            object_type,
            bar,
            started: Instant::now(),
            total: before,
            now: Counts::default(),
        };
        line.show();
        line
    }
}

/// One type's figures while it is listed.
pub struct TypeLine {
    object_type: ObjectType,
    bar: Option<ProgressBar>,
    started: Instant,
    /// The run's counts, earlier processes' included.
    total: Counts,
    /// This process's counts.
    now: Counts,
}

impl TypeLine {
    /// Adds a committed page's counts and shows them.
    pub fn page(&mut self, page: Counts) {
        self.total += page;
        self.now += page;
        match &self.bar {
            Some(_) => self.show(),
            None => tracing::info!(
                object_type = self.object_type.name(),
                fetched = self.total.fetched,
                written = self.total.written,
                kept = self.total.kept,
                per_second = format!("{:.1}", self.rate()),
                "sync page written"
            ),
        }
    }

    /// Objects fetched per second by this process.
    fn rate(&self) -> f64 {
        let seconds = self.started.elapsed().as_secs_f64();
        if seconds > 0.0 {
            self.now.fetched as f64 / seconds
        } else {
            0.0
        }
    }

    fn show(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "fetched {}, written {}, kept {}, {:.1}/s",
                self.total.fetched,
                self.total.written,
                self.total.kept,
                self.rate()
            ));
        }
    }

    /// The type's line in the summary; the live line stays on screen, finished.
    pub fn finish(self, done_before: bool) -> TypeSummary {
        self.show();
        if let Some(bar) = &self.bar {
            bar.finish();
        }
        TypeSummary {
            object_type: self.object_type,
            fetched: self.total.fetched,
            written: self.total.written,
            kept: self.total.kept,
            seconds: self.started.elapsed().as_secs_f64(),
            done_before,
        }
    }
}
