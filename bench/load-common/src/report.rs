//! Numbers as the load tools report them.

use std::time::Duration;

/// `x` rounded to `places` decimal places.
pub fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// `count` over `wall`, per second (a zero wall time counts as 1 ns).
pub fn per_second(count: usize, wall: Duration) -> f64 {
    count as f64 / wall.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_keeps_the_asked_places() {
        assert_eq!(round(1.23456, 3), 1.235);
        assert_eq!(round(2.25, 1), 2.3);
        assert_eq!(round(7.0, 0), 7.0);
    }

    #[test]
    fn a_rate_is_per_second() {
        assert_eq!(per_second(300, Duration::from_millis(1500)), 200.0);
        assert!(per_second(1, Duration::ZERO).is_finite());
    }
}
