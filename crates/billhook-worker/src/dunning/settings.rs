//! Settings of dunning. docs/configuration.md is the reference page.

use std::str::FromStr;
use std::time::Duration;

use super::STEPS;

/// When each step runs, counted from the first failed payment: four offsets, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule([Duration; 4]);

impl Schedule {
    pub fn offset(&self, step: u32) -> chrono::Duration {
        let offset = self.0.get(step as usize).copied().unwrap_or_default();
        chrono::Duration::from_std(offset).unwrap_or(chrono::Duration::MAX)
    }

    pub fn from_offsets(offsets: [Duration; 4]) -> Self {
        Self(offsets)
    }
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed: Vec<Duration> = s
            .split(',')
            .map(|part| {
                let part = part.trim();
                humantime::parse_duration(part).map_err(|e| format!("`{part}`: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let offsets: [Duration; 4] = parsed.try_into().map_err(|v: Vec<Duration>| {
            format!(
                "the schedule needs exactly {} offsets ({}), not {}",
                STEPS.len(),
                STEPS.join(", "),
                v.len()
            )
        })?;
        if offsets.windows(2).any(|w| w[1] < w[0]) {
            return Err("the schedule's offsets must not decrease".to_owned());
        }
        Ok(Self(offsets))
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct DunningSettings {
    /// When the steps run after the first failed payment of an invoice: payment-failed email,
    /// reminder, final warning, cancellation. Durations like 3d or 30s.
    #[arg(
        long = "dunning-schedule",
        env = "BILLHOOK_DUNNING_SCHEDULE",
        default_value = "0d,3d,7d,10d"
    )]
    pub schedule: Schedule,

    /// Attempts of one DunningStep job (its emails and the cancellation call are retried with
    /// the job backoff): 12 is about two and a half hours of retries.
    #[arg(id = "dunning_max_attempts", long = "dunning-max-attempts", env = "BILLHOOK_DUNNING_MAX_ATTEMPTS", default_value_t = 12,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
}

impl Default for DunningSettings {
    fn default() -> Self {
        let day = Duration::from_secs(86_400);
        Self {
            schedule: Schedule([Duration::ZERO, 3 * day, 7 * day, 10 * day]),
            max_attempts: 12,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_parses_and_bad_ones_are_refused() {
        assert_eq!(
            "0d,3d,7d,10d".parse::<Schedule>(),
            Ok(DunningSettings::default().schedule)
        );
        assert!("0s,1s,2s".parse::<Schedule>().is_err());
        assert!("0s,3s,2s,4s".parse::<Schedule>().is_err());
        assert!("0s,x,2s,4s".parse::<Schedule>().is_err());
    }
}
