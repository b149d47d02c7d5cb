//! Arrival-delay statistics for the adaptive jitter buffer (the idea of WebRTC NetEQ's delay
//! manager, simplified): for every packet, `arrival − media time` is its one-way delay plus an
//! unknown constant (the two clocks' offset). The smallest such value over the recent history
//! is the delay of the fastest packet; how much later than that the slow ones come is the
//! jitter the buffer has to absorb. The target is a high quantile of that spread.
//!
//! A fixed ring of recent values, no allocation. The spread follows a spike at once (the
//! slow packet enters the ring) and forgets it only when the spike has left the ring
//! ([`HISTORY`] packets later: seconds of audio), so the target grows fast and shrinks slowly.
//!
//! **Clock drift.** A sender whose clock runs faster or slower than the station's makes every
//! packet's delay a little smaller or larger than the one before (Chromium's fake microphone:
//! about 1 %, 50 ms over the history). Taken as it is, that slope would pass for jitter — a
//! fast sender's target would grow by the drift over the history, and a slow sender's newest
//! packets, the latest of all, would come after their ideal time. So the drift is measured
//! (a line through the fastest packet of each fifth of the history: the fast path, which late
//! spikes do not move) and every remembered delay is carried forward to
//! the newest arrival along it before the fastest and the spread are taken.

/// Packets remembered: 2.5 s of 10 ms frames, 5 s of 20 ms frames.
pub const HISTORY: usize = 250;

/// A delay this far from the fastest one is not jitter but a new time base (a restarted
/// sender, a timestamp jump): the history starts over.
const EPOCH_JUMP_US: i64 = 2_000_000;

/// A drift is measured over the history (once half full), from the fastest packet of each of
/// this many parts of it.
const DRIFT_PARTS: usize = 5;
/// How far from the drift's line the fastest packet of a part may lie, µs: further, and the
/// delays are jitter that no line describes.
const DRIFT_FIT_US: i64 = 2_000;
/// A drift smaller than this, in millionths, is taken as none: a sound card's crystal is off by
/// less and the bias it puts in the target over the history is a fraction of a millisecond
/// (the pace of playout follows it anyway), while a drift believed where there is none puts
/// the ideal time before the packets' (an underrun in the demo at 500 with a cruder measure).
const LEAST_DRIFT_PPM: i64 = 1_000;
/// The largest drift believed, in millionths: a clock cannot be further off than this.
const MAX_DRIFT_PPM: i64 = 20_000;

#[derive(Debug, Clone)]
pub struct DelayEstimator {
    delays: [i64; HISTORY],
    /// When each packet arrived, µs.
    arrivals: [i64; HISTORY],
    len: usize,
    head: usize,
    /// Quantile of the spread, in thousandths.
    quantile_permille: u16,
    /// (fastest delay, spread at the quantile), recomputed when asked after a change.
    cached: Option<(i64, i64)>,
    /// The drift last measured, in millionths (positive: the sender's clock is slower).
    drift_ppm: i64,
    scratch: [i64; HISTORY],
}

impl DelayEstimator {
    pub fn new(quantile_permille: u16) -> DelayEstimator {
        DelayEstimator {
            delays: [0; HISTORY],
            arrivals: [0; HISTORY],
            len: 0,
            head: 0,
            quantile_permille: quantile_permille.min(1000),
            cached: None,
            drift_ppm: 0,
            scratch: [0; HISTORY],
        }
    }

    pub fn reset(&mut self) {
        self.len = 0;
        self.head = 0;
        self.cached = None;
    }

    /// Records one packet that arrived at `arrival_us` with `delay_us` = arrival − media
    /// time, in µs.
    pub fn push(&mut self, arrival_us: i64, delay_us: i64) {
        if let Some((fastest, _)) = self.summary()
            && (delay_us < fastest.saturating_sub(EPOCH_JUMP_US)
                || delay_us > fastest.saturating_add(EPOCH_JUMP_US))
        {
            self.reset();
        }
        self.delays[self.head] = delay_us;
        self.arrivals[self.head] = arrival_us;
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
        self.drift_ppm = self.measure_drift();
        let newest = self.arrivals[(self.head + HISTORY - 1) % HISTORY];
        let scratch = &mut self.scratch[..self.len];
        for (i, out) in scratch.iter_mut().enumerate() {
            // Carried forward to the newest arrival along the drift.
            let ahead = newest.saturating_sub(self.arrivals[i]);
            *out = self.delays[i].saturating_add(ahead.saturating_mul(self.drift_ppm) / 1_000_000);
        }
        let fastest = scratch.iter().copied().min().unwrap_or(0);
        let rank = (self.len * usize::from(self.quantile_permille)).div_ceil(1000);
        let index = rank.clamp(1, self.len) - 1;
        let (_, at, _) = scratch.select_nth_unstable(index);
        let summary = (fastest, at.saturating_sub(fastest));
        self.cached = Some(summary);
        Some(summary)
    }

    /// The sender's clock against the receiver's as last measured, in millionths: positive
    /// when the sender's runs slower (each packet a little later than the one before).
    pub fn drift_ppm(&self) -> i64 {
        self.drift_ppm
    }

    /// How fast the fastest packet's delay moves: a line through the fastest packet of each
    /// fifth of the history (once it is half full) (the fast path, which late spikes do not move), taken only when
    /// every one of them lies on it within [`DRIFT_FIT_US`] and its slope is at least
    /// [`LEAST_DRIFT_PPM`]; else none.
    fn measure_drift(&self) -> i64 {
        if self.len < HISTORY / 2 {
            return 0;
        }
        let part = self.len / DRIFT_PARTS;
        // Ring position of the i-th oldest packet.
        let oldest = if self.len < HISTORY { 0 } else { self.head };
        let mut points = [(0f64, 0f64); DRIFT_PARTS];
        for (k, point) in points.iter_mut().enumerate() {
            let fastest = (k * part..(k + 1) * part)
                .map(|i| (oldest + i) % HISTORY)
                .min_by_key(|&j| self.delays[j]);
            let Some(j) = fastest else {
                return 0;
            };
            *point = (self.arrivals[j] as f64, self.delays[j] as f64);
        }
        let n = DRIFT_PARTS as f64;
        let (mt, md) = points
            .iter()
            .fold((0.0, 0.0), |(t, d), p| (t + p.0 / n, d + p.1 / n));
        let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), p| {
            (num + (p.0 - mt) * (p.1 - md), den + (p.0 - mt) * (p.0 - mt))
        });
        if den <= 0.0 {
            return 0;
        }
        let slope = num / den;
        let off_the_line = points
            .iter()
            .any(|p| (p.1 - md - slope * (p.0 - mt)).abs() > DRIFT_FIT_US as f64);
        let ppm = (slope * 1e6).clamp(-(MAX_DRIFT_PPM as f64), MAX_DRIFT_PPM as f64) as i64;
        if off_the_line || ppm.abs() < LEAST_DRIFT_PPM {
            0
        } else {
            ppm
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes a packet 20 ms after the previous one.
    fn push(d: &mut DelayEstimator, delay_us: i64) {
        let last = if d.is_empty() {
            0
        } else {
            d.arrivals[(d.head + HISTORY - 1) % HISTORY]
        };
        d.push(last + 20_000, delay_us);
    }

    #[test]
    fn spread_is_a_high_quantile_above_the_fastest() {
        let mut d = DelayEstimator::new(950);
        assert_eq!(d.summary(), None);
        // 100 packets: 95 arrive 1–2 ms after the fastest, 5 arrive 30 ms late.
        for i in 0..100 {
            push(
                &mut d,
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
        push(&mut d, 50_000 + 30_000);
        let (_, spread) = d.summary().unwrap();
        assert_eq!(spread, 29_000, "one more spike and the quantile reaches it");
    }

    #[test]
    fn spikes_are_forgotten_only_after_the_history() {
        let mut d = DelayEstimator::new(950);
        for _ in 0..20 {
            push(&mut d, 80_000);
        }
        push(&mut d, 0);
        for _ in 0..HISTORY - 21 {
            push(&mut d, 0);
        }
        assert_eq!(d.summary().unwrap(), (0, 80_000), "still remembered");
        for _ in 0..20 {
            push(&mut d, 0);
        }
        assert_eq!(d.summary().unwrap(), (0, 0), "gone after HISTORY packets");
    }

    #[test]
    fn a_new_time_base_starts_over() {
        let mut d = DelayEstimator::new(950);
        for _ in 0..10 {
            push(&mut d, 10_000);
        }
        push(&mut d, 10_000 + 3 * EPOCH_JUMP_US);
        assert_eq!(d.summary().unwrap(), (10_000 + 3 * EPOCH_JUMP_US, 0));
        push(&mut d, i64::MIN);
        push(&mut d, i64::MAX);
        assert!(d.summary().is_some(), "absurd values do not overflow");
    }

    #[test]
    fn a_drifting_clock_is_not_taken_for_jitter() {
        for ppm in [10_000i64, -10_000] {
            let mut d = DelayEstimator::new(950);
            // 5 s of packets whose delay moves 1 % of the time, with 1 ms of jitter.
            for i in 0..HISTORY as i64 {
                let arrival = i * 20_000;
                d.push(arrival, 30_000 + arrival * ppm / 1_000_000 + (i % 3) * 500);
            }
            let (fastest, spread) = d.summary().unwrap();
            assert!(
                (d.drift_ppm() - ppm).abs() < 1_000,
                "{ppm}: measured {}",
                d.drift_ppm()
            );
            assert!(
                spread <= 2_000,
                "{ppm}: the spread is the jitter, not the drift: {spread}"
            );
            // The fastest is where the path is now, not where it was 5 s ago.
            let now = 30_000 + (HISTORY as i64 - 1) * 20_000 * ppm / 1_000_000;
            assert!(
                (fastest - now).abs() <= 1_000,
                "{ppm}: fastest {fastest}, now {now}"
            );
        }
        let mut steady = DelayEstimator::new(950);
        for i in 0..HISTORY as i64 {
            steady.push(i * 20_000, 30_000 + (i % 3) * 500);
        }
        assert_eq!(steady.summary().unwrap(), (30_000, 1_000));
        assert_eq!(steady.drift_ppm(), 0);
    }
}
