//! Reconnect delays: exponential backoff with full jitter, from a seeded generator.

use std::time::Duration;

/// Shape of the backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Ceiling of the second attempt's delay; doubles per attempt.
    pub base: Duration,
    /// Largest delay.
    pub cap: Duration,
    /// A session that stayed up this long resets the attempt count.
    pub stable_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(8),
            stable_after: Duration::from_secs(5),
        }
    }
}

/// Yields the delay before each reconnection attempt. Deterministic for a seed.
#[derive(Debug, Clone)]
pub struct Backoff {
    cfg: BackoffConfig,
    rng: fastrand::Rng,
    attempt: u32,
}

impl Backoff {
    pub fn new(cfg: BackoffConfig, seed: u64) -> Backoff {
        Backoff {
            cfg,
            rng: fastrand::Rng::with_seed(seed),
            attempt: 0,
        }
    }

    /// The largest delay attempt `attempt` (0-based) may wait.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        if attempt == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
        self.cfg.base.saturating_mul(factor).min(self.cfg.cap)
    }

    /// The delay before the next attempt: zero for the first after a reset, then uniformly
    /// random in `[0, min(cap, base × 2^(n-1))]`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        self.jitter(Duration::ZERO, ceiling)
    }

    /// A delay for faults retrying will not fix soon: uniformly in `[cap/2, cap]`.
    pub fn slowest(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        self.jitter(self.cfg.cap / 2, self.cfg.cap)
    }

    fn jitter(&mut self, low: Duration, high: Duration) -> Duration {
        let low_us = u64::try_from(low.as_micros()).unwrap_or(u64::MAX);
        let high_us = u64::try_from(high.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.rng.u64(low_us..=high_us.max(low_us)))
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    pub fn config(&self) -> &BackoffConfig {
        &self.cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_bounded_and_deterministic() {
        let cfg = BackoffConfig::default();
        let mut a = Backoff::new(cfg, 42);
        let mut b = Backoff::new(cfg, 42);
        let mut c = Backoff::new(cfg, 43);
        let da: Vec<_> = (0..40).map(|_| a.next_delay()).collect();
        let db: Vec<_> = (0..40).map(|_| b.next_delay()).collect();
        let dc: Vec<_> = (0..40).map(|_| c.next_delay()).collect();
        assert_eq!(da, db, "same seed, same schedule");
        assert_ne!(da, dc, "another seed, another schedule");
        assert_eq!(da[0], Duration::ZERO);
        for (n, d) in da.iter().enumerate() {
            let ceiling = a.ceiling(n as u32);
            assert!(*d <= ceiling, "attempt {n}: {d:?} > {ceiling:?}");
            assert!(*d <= cfg.cap);
        }
        assert_eq!(a.ceiling(1), Duration::from_millis(200));
        assert_eq!(a.ceiling(3), Duration::from_millis(800));
        assert_eq!(a.ceiling(30), cfg.cap);
        assert_eq!(a.ceiling(u32::MAX), cfg.cap);
        // Full jitter spreads: late attempts are not all near the cap.
        let late = &da[10..];
        assert!(late.iter().any(|d| *d < cfg.cap / 2));
        assert!(late.iter().any(|d| *d > cfg.cap / 2));
    }

    #[test]
    fn reset_starts_over_and_slowest_stays_high() {
        let cfg = BackoffConfig::default();
        let mut b = Backoff::new(cfg, 1);
        for _ in 0..5 {
            b.next_delay();
        }
        b.reset();
        assert_eq!(b.next_delay(), Duration::ZERO);
        for _ in 0..100 {
            let d = b.slowest();
            assert!(d >= cfg.cap / 2 && d <= cfg.cap);
        }
    }
}
