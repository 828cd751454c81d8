//! A point in the past given on the command line: a duration back from now (`3d`, `12h`) or
//! an RFC 3339 time (`2026-11-30T00:00:00Z`).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// A point in the past as given: a time, or a duration back from when it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    At(DateTime<Utc>),
    Ago(Duration),
}

pub fn parse(value: &str) -> Result<Since, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Ok(Since::At(time.with_timezone(&Utc)));
    }
    humantime::parse_duration(value).map(Since::Ago).map_err(|_| {
        format!(
            "`{value}` is neither a duration (3d, 12h) nor an RFC 3339 time (2026-11-30T00:00:00Z)"
        )
    })
}

/// The time `value` means now.
pub fn past_time(value: &str) -> Result<DateTime<Utc>, String> {
    let back = match parse(value)? {
        Since::At(time) => return Ok(time),
        Since::Ago(back) => back,
    };
    let too_long = || format!("`{value}` is too long ago");
    let back = chrono::Duration::from_std(back).map_err(|_| too_long())?;
    Utc::now().checked_sub_signed(back).ok_or_else(too_long)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use super::past_time;

    #[test]
    fn durations_count_back_from_now_and_times_are_taken_as_given() {
        let three_days = past_time("3d").expect("a duration");
        assert!(
            (Utc::now() - Duration::days(3) - three_days)
                .num_seconds()
                .abs()
                < 5
        );
        let at = past_time("2026-11-30T10:00:00+01:00").expect("a time");
        assert_eq!(at.to_rfc3339(), "2026-11-30T09:00:00+00:00");
        let error = past_time("yesterday").expect_err("neither");
        assert!(error.contains("RFC 3339"), "{error}");
    }
}
