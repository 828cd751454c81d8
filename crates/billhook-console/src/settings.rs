//! Settings of the console. docs/configuration.md is the reference page.

use billhook_core::config::Secret;

use crate::tokens::{self, Tokens};

#[derive(clap::Args, Debug, Clone)]
pub struct ConsoleSettings {
    /// Address of the console's listener (its pages, and the JSON API under /api/v1). `off`:
    /// `billhook-worker run` serves no console (run `billhook-worker console` apart instead).
    #[arg(
        long = "console-listen",
        env = "BILLHOOK_CONSOLE_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    pub listen: String,

    /// Access tokens, comma-separated: `label=read:TOKEN` or `label=operate:TOKEN` (at least 24
    /// characters each). Without tokens the console refuses to listen on anything but a
    /// loopback address.
    #[arg(long = "console-tokens", env = "BILLHOOK_CONSOLE_TOKENS", value_name = "BILLHOOK_CONSOLE_TOKENS",
          hide_env_values = true, value_parser = Secret(tokens::parse_setting))]
    pub tokens: Option<Tokens>,
}

impl ConsoleSettings {
    /// Whether `run` is told to serve no console.
    pub fn is_off(&self) -> bool {
        self.listen.trim().eq_ignore_ascii_case("off")
    }
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9090".to_owned(),
            tokens: None,
        }
    }
}
