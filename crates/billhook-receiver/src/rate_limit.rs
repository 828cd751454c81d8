//! Throttling of requests that fail verification, per client address. Verification is cheap
//! and touches no database, but a flood of forged requests still costs CPU and log volume;
//! after the burst a client gets 429 until its rate falls. Verified requests never reach this.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

/// One allowance per client address. The clock is a parameter so tests can move time by hand;
/// the service uses the default (monotonic) clock.
pub struct RejectLimiter<C: Clock = DefaultClock> {
    limiter: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, C, NoOpMiddleware<C::Instant>>,
}

impl RejectLimiter {
    pub fn new(per_minute: NonZeroU32, burst: NonZeroU32) -> Self {
        Self::with_clock(per_minute, burst, DefaultClock::default())
    }
}

impl<C: Clock> RejectLimiter<C> {
    /// Like `new`, reading time from `clock`.
    pub fn with_clock(per_minute: NonZeroU32, burst: NonZeroU32, clock: C) -> Self {
        Self {
            limiter: RateLimiter::new(
                Quota::per_minute(per_minute).allow_burst(burst),
                DefaultKeyedStateStore::default(),
                clock,
            ),
        }
    }

    /// Records one failed verification from `client`; false once it is over its allowance.
    pub fn allow_rejection(&self, client: IpAddr) -> bool {
        self.limiter.check_key(&client).is_ok()
    }

    /// Forgets clients whose allowance has refilled, so the table does not grow without end.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// How many client addresses the table holds.
    pub fn tracked_clients(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    fn limiter(
        per_minute: u32,
        burst: u32,
    ) -> (RejectLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let limiter = RejectLimiter::with_clock(
            NonZeroU32::new(per_minute).expect("non-zero"),
            NonZeroU32::new(burst).expect("non-zero"),
            clock.clone(),
        );
        (limiter, clock)
    }

    fn client(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn a_client_is_refused_after_its_burst_and_allowed_again_once_it_refills() {
        let (limiter, clock) = limiter(60, 3);
        let answers: Vec<bool> = (0..4).map(|_| limiter.allow_rejection(client(1))).collect();
        assert_eq!(answers, [true, true, true, false]);
        assert!(
            limiter.allow_rejection(client(2)),
            "clients are counted apart"
        );

        clock.advance(Duration::from_secs(1));
        assert!(limiter.allow_rejection(client(1)));
        assert!(!limiter.allow_rejection(client(1)));
    }

    #[test]
    fn idle_clients_are_forgotten_and_busy_ones_kept() {
        let (limiter, clock) = limiter(60, 3);
        for last in 1..=50 {
            assert!(limiter.allow_rejection(client(last)));
        }
        assert_eq!(limiter.tracked_clients(), 50);

        // Nothing has refilled yet: forgetting now would hand out a fresh burst.
        limiter.forget_idle();
        assert_eq!(limiter.tracked_clients(), 50);

        clock.advance(Duration::from_secs(60));
        for _ in 0..3 {
            limiter.allow_rejection(client(1));
        }
        limiter.forget_idle();
        assert_eq!(
            limiter.tracked_clients(),
            1,
            "only the client still over its rate"
        );
        assert!(
            !limiter.allow_rejection(client(1)),
            "and it is still refused"
        );
    }
}
