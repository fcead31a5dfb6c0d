//! Exponential back-off with full jitter, for retrying calls that failed
//! for a reason worth retrying (`RpcError::is_retryable`).
//!
//! The jitter comes from a small seeded generator owned by the back-off, so
//! a test that fixes the seed sees the same delays every run.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// The delays between attempts: attempt `n` waits a uniformly random time
/// in `[base·2ⁿ/2, base·2ⁿ]`, capped at `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    rng: SmallRng,
}

impl Backoff {
    /// A back-off starting at `base` and never waiting longer than `max`.
    pub fn new(base: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            base,
            max: max.max(base),
            attempt: 0,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// A back-off seeded from the OS, for production callers.
    pub fn random(base: Duration, max: Duration) -> Backoff {
        Backoff::new(base, max, rand::random())
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        let ceiling = self.base.saturating_mul(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let floor = ceiling / 2;
        let spread = u64::try_from((ceiling - floor).as_micros()).unwrap_or(u64::MAX);
        floor + Duration::from_micros(self.rng.gen_range(0..=spread))
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_jitter_and_stop_at_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 7);
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        for (attempt, delay) in delays.iter().enumerate() {
            let ceiling = (Duration::from_millis(100) * (1 << attempt)).min(Duration::from_secs(2));
            assert!(*delay >= ceiling / 2 && *delay <= ceiling, "{attempt}: {delay:?}");
        }
        assert!(delays[7] >= Duration::from_secs(1));
        // The same seed gives the same delays.
        let mut again = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 7);
        assert_eq!((0..8).map(|_| again.next_delay()).collect::<Vec<_>>(), delays);
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
