//! Latency percentiles. Latencies are kept in whole microseconds and reported in
//! milliseconds.

use std::time::Duration;

/// A duration in whole microseconds, saturating at `u64::MAX`.
pub fn micros(d: Duration) -> u64 {
    d.as_micros().try_into().unwrap_or(u64::MAX)
}

/// The `p` percentile (0.0 to 1.0) of `sorted` microseconds, in milliseconds, by nearest rank:
/// the smallest value with at least `p` of all values at or below it. 0.0 for no values.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted[index] as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank_in_milliseconds() {
        let v: Vec<u64> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.9), 90.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
    }

    #[test]
    fn on_a_short_list_a_percentile_rounds_up_to_a_value_that_exists() {
        let v = [1_000, 2_000, 3_000, 4_000, 5_500];
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 0.2), 1.0);
        assert_eq!(percentile(&v, 0.5), 3.0);
        assert_eq!(percentile(&v, 0.9), 5.5);
        assert_eq!(percentile(&v, 0.99), 5.5);
        assert_eq!(percentile(&[250], 0.5), 0.25);
    }

    #[test]
    fn no_values_give_zero() {
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(percentile(&[], 1.0), 0.0);
    }

    #[test]
    fn micros_saturate() {
        assert_eq!(micros(Duration::from_millis(3)), 3_000);
        assert_eq!(micros(Duration::MAX), u64::MAX);
    }
}
