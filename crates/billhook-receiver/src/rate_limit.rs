//! Throttling of requests that fail verification, per client address. Verification is cheap
//! and touches no database, but a flood of forged requests still costs CPU and log volume;
//! after the burst a client gets 429 until its rate falls. Verified requests never reach this.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct RejectLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl RejectLimiter {
    pub fn new(per_minute: NonZeroU32, burst: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
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
}
