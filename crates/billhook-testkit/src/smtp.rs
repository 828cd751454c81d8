//! A real SMTP server process for tests (crates/billhook-testkit/smtp/sink.py, Python's
//! standard library): started on a port of its own, stopped by its process id, and read back
//! as decoded messages.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct SmtpSink {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

/// A port that is free now and stays free for a while: drawn below Linux's ephemeral range
/// (32768 and up), where the port-0 listeners of other tests running in parallel never land.
/// A test that starts a server on it later (SMTP "down, then up") relies on that.
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = rand::random_range(20_000..32_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000");
}

impl SmtpSink {
    /// Starts the server on a free port.
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    /// Starts the server on `port` (e.g. one a worker has been failing to reach).
    pub async fn start_on(port: u16) -> Self {
        Self::launch(port, None, None).await
    }

    /// Starts a server that requires AUTH PLAIN with `user` and `password` before MAIL.
    pub async fn start_with_auth(user: &str, password: &str) -> Self {
        Self::launch(free_port(), Some(format!("{user}:{password}")), None).await
    }

    /// Starts a server on `port` that accepts connections and never says a word.
    pub async fn start_silent_on(port: u16) -> Self {
        Self::launch(port, None, Some("silent")).await
    }

    /// Starts a server that accepts every message, then never answers QUIT.
    pub async fn start_silent_after_data() -> Self {
        Self::launch(free_port(), None, Some("silent-after-data")).await
    }

    async fn launch(port: u16, credentials: Option<String>, mode: Option<&str>) -> Self {
        let dir = std::env::temp_dir().join(format!("billhook-smtp-{}", ulid::Ulid::generate()));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/smtp/sink.py");
        let child = Command::new("python3")
            .arg(script)
            .args(mode.map(|m| format!("--mode={m}")))
            .arg(port.to_string())
            .arg(&dir)
            .args(credentials)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start the SMTP sink (python3 {script}): {e}"));
        let sink = Self {
            port,
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the SMTP sink never listened on {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sink
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .map(|p| {
                let text =
                    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            })
            .collect()
    }

    /// Waits until `n` messages have arrived, then returns them.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "waited {limit:?} for {n} message(s); got {}: {messages:?}",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
