//! Rate limits per client IP and per signed-in user (GCRA, from the `governor` crate), and
//! (in [`connections`]) the cap on live WebSocket connections per address.
//!
//! A refusal says how long to wait: the 429's Retry-After. Keys are forgotten once their
//! bucket is full again (`retain_recent`, run periodically), so a crowd of one-time
//! visitors does not grow memory for ever.

pub mod connections;
pub mod forwarded;

pub use connections::{ClientSlot, Connections, address_group};

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

pub struct Limits {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_user: Option<DefaultKeyedRateLimiter<i64>>,
    clock: DefaultClock,
}

/// `per_second` requests a second with a burst of twice that; `None` for 0 (no limit).
fn limiter<K: std::hash::Hash + Eq + Clone>(per_second: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
    Some(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

impl Limits {
    pub fn new(per_ip: u32, per_user: u32) -> Limits {
        Limits {
            per_ip: limiter(per_ip),
            per_user: limiter(per_user),
            clock: DefaultClock::default(),
        }
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.check(self.per_ip.as_ref(), &ip)
    }

    pub fn check_user(&self, user: i64) -> Result<(), ApiError> {
        self.check(self.per_user.as_ref(), &user)
    }

    fn check<K: std::hash::Hash + Eq + Clone>(
        &self,
        limiter: Option<&DefaultKeyedRateLimiter<K>>,
        key: &K,
    ) -> Result<(), ApiError> {
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            // Whole seconds, rounded up: Retry-After has no finer unit.
            ApiError::rate_limited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        })
    }

    /// Forgets keys whose bucket has refilled.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.per_ip {
            limiter.retain_recent();
        }
        if let Some(limiter) = &self.per_user {
            limiter.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_burst_passes_then_the_limit_answers_with_a_wait() {
        let limits = Limits::new(5, 0);
        let ip: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..10 {
            limits.check_ip(ip).unwrap();
        }
        let refused = limits.check_ip(ip).unwrap_err();
        assert_eq!(refused.code, "RATE_LIMITED");
        assert_eq!(refused.retry_after, Some(1));
        // Another IP has its own bucket; users are not limited at 0.
        limits.check_ip([10, 0, 0, 2].into()).unwrap();
        for _ in 0..1000 {
            limits.check_user(1).unwrap();
        }
    }
}
