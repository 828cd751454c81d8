//! Login throttling: at most 5 attempts a minute from one client address (a burst of 5, then
//! one every 12 s), and 60 a minute in all, so guessing tokens is slow from one machine and
//! from many. Counted with governor, as the receiver's rejection limits are.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct LoginThrottle {
    per_client: DefaultKeyedRateLimiter<IpAddr>,
    all: DefaultDirectRateLimiter,
}

/// Addresses remembered before old ones are forgotten.
const MAX_CLIENTS: usize = 10_000;

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(5, 60)
    }
}

impl LoginThrottle {
    /// `per_client` attempts a minute from one address, `all` in all.
    pub fn new(per_client: u32, all: u32) -> Self {
        let quota =
            |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN));
        Self {
            per_client: RateLimiter::keyed(quota(per_client)),
            all: RateLimiter::direct(quota(all)),
        }
    }

    /// Counts one attempt from `client`; `Err` with how long to wait when it is one too many.
    pub fn check(&self, client: Option<IpAddr>) -> Result<(), Duration> {
        if self.per_client.len() > MAX_CLIENTS {
            self.per_client.retain_recent();
        }
        let now = DefaultClock::default().now();
        if let Some(ip) = client {
            self.per_client
                .check_key(&ip)
                .map_err(|not_until| not_until.wait_time_from(now))?;
        }
        self.all
            .check()
            .map_err(|not_until| not_until.wait_time_from(now))
    }
}

#[cfg(test)]
mod tests {
    use super::LoginThrottle;

    #[test]
    fn a_client_is_held_after_its_burst_and_others_are_not() {
        let throttle = LoginThrottle::new(5, 60);
        let a = Some("10.0.0.1".parse().expect("ip"));
        let b = Some("10.0.0.2".parse().expect("ip"));
        for _ in 0..5 {
            assert!(throttle.check(a).is_ok());
        }
        let wait = throttle.check(a).expect_err("the sixth is refused");
        assert!(wait.as_secs() <= 12, "{wait:?}");
        assert!(throttle.check(b).is_ok());
    }

    #[test]
    fn many_clients_together_are_held_too() {
        let throttle = LoginThrottle::new(5, 3);
        for n in 1..=3 {
            assert!(
                throttle
                    .check(Some(format!("10.0.1.{n}").parse().expect("ip")))
                    .is_ok()
            );
        }
        assert!(
            throttle
                .check(Some("10.0.1.9".parse().expect("ip")))
                .is_err()
        );
    }
}
