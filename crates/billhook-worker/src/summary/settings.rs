//! Settings of the daily summary. docs/configuration.md is the reference page.

use std::fmt;

use chrono::NaiveTime;
use chrono_tz::Tz;

/// When the summary goes out: a time of day in a time zone (`08:00 UTC`, `07:30 Europe/Paris`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendAt {
    pub time: NaiveTime,
    pub zone: Tz,
}

impl fmt::Debug for SendAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.time.format("%H:%M"), self.zone.name())
    }
}

impl fmt::Display for SendAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

pub fn send_at(value: &str) -> Result<SendAt, String> {
    let mut parts = value.split_whitespace();
    let time = parts.next().unwrap_or_default();
    let zone = parts.next().unwrap_or("UTC");
    if parts.next().is_some() {
        return Err(format!(
            "`{value}` is not HH:MM [ZONE], such as 08:00 Europe/Paris"
        ));
    }
    let time = NaiveTime::parse_from_str(time, "%H:%M")
        .map_err(|_| format!("`{time}` is not a time of day HH:MM"))?;
    let zone: Tz = zone
        .parse()
        .map_err(|_| format!("`{zone}` is not an IANA time zone (UTC, Europe/Paris, …)"))?;
    Ok(SendAt { time, zone })
}

#[derive(clap::Args, Debug, Clone)]
pub struct SummarySettings {
    /// Where the daily summary goes (comma-separated addresses). Unset: no summary.
    #[arg(
        id = "summary_email",
        long = "summary-email",
        env = "BILLHOOK_SUMMARY_EMAIL",
        value_delimiter = ','
    )]
    pub email: Vec<String>,

    /// When the summary of the day before goes out: `HH:MM` and an IANA time zone, whose
    /// calendar day the summary covers.
    #[arg(id = "summary_at", long = "summary-at", env = "BILLHOOK_SUMMARY_AT",
          default_value = "08:00 UTC", value_parser = send_at)]
    pub at: SendAt,
}

impl Default for SummarySettings {
    fn default() -> Self {
        Self {
            email: Vec::new(),
            at: send_at("08:00 UTC").expect("a valid default"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_and_zone_parse_and_bad_ones_are_refused() {
        let at = send_at("07:30 Europe/Paris").expect("valid");
        assert_eq!(format!("{at}"), "07:30 Europe/Paris");
        assert_eq!(send_at("08:00").expect("UTC by default").zone, Tz::UTC);
        assert!(send_at("25:00 UTC").is_err());
        assert!(send_at("08:00 Mars/Olympus").is_err());
        assert!(send_at("08:00 UTC extra").is_err());
    }
}
