//! A real browser for tests: Debian's headless Chromium driven over WebDriver (chromedriver,
//! started per test on a port of its own, with a profile of its own), through fantoccini.
//! `scripts/test.sh` installs `chromium` and `chromium-driver`; without them a test fails
//! saying so, never skips.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use tokio::process::{Child, Command};

/// How long an element may take to appear.
const WAIT: Duration = Duration::from_secs(10);

pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
}

/// The program named by `variable`, else `default` if it exists, else a panic saying what to
/// install.
fn program(variable: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found (set {variable} to another path): the browser tests need Debian's \
         `chromium` and `chromium-driver` packages, which scripts/test.sh installs \
         (apt-get install chromium chromium-driver)",
        path.display()
    );
    path
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a 1280×900 window.
    pub async fn start() -> Self {
        let chromedriver = program("BILLHOOK_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = program("BILLHOOK_TEST_CHROMIUM", "/usr/bin/chromium");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", chromedriver.display()));
        let profile =
            std::env::temp_dir().join(format!("billhook-chromium-{}", ulid::Ulid::generate()));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--window-size=1280,900",
                    "--no-first-run",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        // fantoccini's client takes rustls's process-wide provider, and the workspace builds
        // two (sqlx's ring, reqwest's aws-lc-rs): name one. Already named: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            let attempt = ClientBuilder::rustls()
                .expect("a WebDriver client")
                .capabilities(capabilities.clone())
                .connect(&url)
                .await;
            match attempt {
                Ok(client) => break client,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no Chromium session through chromedriver at {url}: {e}"),
            }
        };
        Self {
            client,
            driver,
            profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("the browser opens {url}: {e}"));
    }

    /// The element `css` selects, waiting for it to appear.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("`{css}` did not appear: {e}"))
    }

    /// The text of the element `css` selects. An element the page replaced between finding
    /// and reading it (htmx swaps parts of pages) is found again.
    pub async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.find(css).await.text().await {
                Ok(text) => return text,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the text of `{css}`: {e}"),
            }
        }
    }

    /// The texts of every element `css` selects now (none: empty).
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for element in self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_default()
        {
            texts.push(element.text().await.unwrap_or_default());
        }
        texts
    }

    /// Waits until the element `css` selects holds `wanted` in its text.
    pub async fn wait_for_text(&self, css: &str, wanted: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.text(css).await;
            if text.contains(wanted) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "`{css}` never said `{wanted}`; it says: {text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `value` into the field `css` selects (after clearing it).
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("the field clears");
        field.send_keys(value).await.expect("the field takes keys");
    }

    /// Chooses the option with `value` in the select `css` selects.
    pub async fn select(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("`{css}` has no option {value}: {e}"));
    }

    /// Clicks the element `css` selects (found again if the page replaced it meanwhile).
    pub async fn click(&self, css: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.find(css).await.click().await {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("`{css}` cannot be clicked: {e}"),
            }
        }
    }

    /// The page's current address.
    pub async fn url(&self) -> String {
        self.client.current_url().await.expect("a url").to_string()
    }

    /// The page's HTML as the browser has it now.
    pub async fn source(&self) -> String {
        self.client.source().await.expect("the page source")
    }

    /// Saves a PNG of the window.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Ends the session and chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
