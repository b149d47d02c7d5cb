//! Arrival-delay statistics for the adaptive jitter buffer (the idea of WebRTC NetEQ's delay
//! manager, simplified): for every packet, `arrival − media time` is its one-way delay plus an
//! unknown constant (the two clocks' offset). The smallest such value over the recent history
//! is the delay of the fastest packet; how much later than that the slow ones come is the
//! jitter the buffer has to absorb. The target is a high quantile of that spread.
//!
//! A fixed ring of recent values, no allocation. The spread follows a spike at once (the
//! slow packet enters the ring) and forgets it only when the spike has left the ring
//! ([`HISTORY`] packets later: seconds of audio), so the target grows fast and shrinks slowly.

/// Packets remembered: 2.5 s of 10 ms frames, 5 s of 20 ms frames.
pub const HISTORY: usize = 250;

/// A delay this far from the fastest one is not jitter but a new time base (a restarted
/// sender, a timestamp jump): the history starts over.
const EPOCH_JUMP_US: i64 = 2_000_000;

#[derive(Debug, Clone)]
pub struct DelayEstimator {
    delays: [i64; HISTORY],
    len: usize,
    head: usize,
    /// Quantile of the spread, in thousandths.
    quantile_permille: u16,
    /// (fastest delay, spread at the quantile), recomputed when asked after a change.
    cached: Option<(i64, i64)>,
    scratch: [i64; HISTORY],
}

impl DelayEstimator {
    pub fn new(quantile_permille: u16) -> DelayEstimator {
        DelayEstimator {
            delays: [0; HISTORY],
            len: 0,
            head: 0,
            quantile_permille: quantile_permille.min(1000),
            cached: None,
            scratch: [0; HISTORY],
        }
    }

    pub fn reset(&mut self) {
        self.len = 0;
        self.head = 0;
        self.cached = None;
    }

    /// Records one packet's `arrival − media time`, in µs.
    pub fn push(&mut self, delay_us: i64) {
        if let Some((fastest, _)) = self.summary()
            && (delay_us < fastest.saturating_sub(EPOCH_JUMP_US)
                || delay_us > fastest.saturating_add(EPOCH_JUMP_US))
        {
            self.reset();
        }
        self.delays[self.head] = delay_us;
        self.head = (self.head + 1) % HISTORY;
        self.len = (self.len + 1).min(HISTORY);
        self.cached = None;
    }

    /// Packets remembered so far (at most [`HISTORY`]).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The fastest packet's delay and the spread above it at the quantile, in µs; `None`
    /// before the first packet.
    pub fn summary(&mut self) -> Option<(i64, i64)> {
        if self.len == 0 {
            return None;
        }
        if let Some(c) = self.cached {
            return Some(c);
        }
        let recent = &self.delays[..self.len];
        let fastest = recent.iter().copied().min().unwrap_or(0);
        let scratch = &mut self.scratch[..self.len];
        scratch.copy_from_slice(recent);
        let rank = (self.len * usize::from(self.quantile_permille)).div_ceil(1000);
        let index = rank.clamp(1, self.len) - 1;
        let (_, at, _) = scratch.select_nth_unstable(index);
        let summary = (fastest, at.saturating_sub(fastest));
        self.cached = Some(summary);
        Some(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_a_high_quantile_above_the_fastest() {
        let mut d = DelayEstimator::new(950);
        assert_eq!(d.summary(), None);
        // 100 packets: 95 arrive 1–2 ms after the fastest, 5 arrive 30 ms late.
        for i in 0..100 {
            d.push(
                50_000
                    + if i % 20 == 7 {
                        30_000
                    } else {
                        1_000 + (i % 2) * 1_000
                    },
            );
        }
        let (fastest, spread) = d.summary().unwrap();
        assert_eq!(fastest, 51_000);
        assert_eq!(
            spread, 1_000,
            "the 95th percentile ignores the 5 % outliers"
        );
        d.push(50_000 + 30_000);
        let (_, spread) = d.summary().unwrap();
        assert_eq!(spread, 29_000, "one more spike and the quantile reaches it");
    }

    #[test]
    fn spikes_are_forgotten_only_after_the_history() {
        let mut d = DelayEstimator::new(950);
        for _ in 0..20 {
            d.push(80_000);
        }
        d.push(0);
        for _ in 0..HISTORY - 21 {
            d.push(0);
        }
        assert_eq!(d.summary().unwrap(), (0, 80_000), "still remembered");
        for _ in 0..20 {
            d.push(0);
        }
        assert_eq!(d.summary().unwrap(), (0, 0), "gone after HISTORY packets");
    }

    #[test]
    fn a_new_time_base_starts_over() {
        let mut d = DelayEstimator::new(950);
        for _ in 0..10 {
            d.push(10_000);
        }
        d.push(10_000 + 3 * EPOCH_JUMP_US);
        assert_eq!(d.summary().unwrap(), (10_000 + 3 * EPOCH_JUMP_US, 0));
        d.push(i64::MIN);
        d.push(i64::MAX);
        assert!(d.summary().is_some(), "absurd values do not overflow");
    }
}
