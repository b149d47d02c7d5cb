//! Wrapping sequence-number arithmetic for 16-bit RTP sequence numbers.

/// Signed distance from `a` to `b` on the 16-bit circle: positive when `b` is newer.
pub fn seq_delta(a: u16, b: u16) -> i16 {
    b.wrapping_sub(a) as i16
}

/// Extends 16-bit sequence numbers to a monotone 64-bit counter, as RFC 3550 A.1 does with
/// its cycle count. The first value seen starts at `1 << 16` so that reordered packets from
/// just before it still map to positive numbers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqExtender {
    last: Option<u64>,
}

impl SeqExtender {
    pub fn new() -> Self {
        SeqExtender { last: None }
    }

    /// The extended value of `seq`, relative to the highest one seen so far. Values more than
    /// half the circle behind are taken as old, not as a wrap forward.
    pub fn extend(&mut self, seq: u16) -> u64 {
        let Some(last) = self.last else {
            let first = (1u64 << 16) + u64::from(seq);
            self.last = Some(first);
            return first;
        };
        let delta = i64::from(seq_delta(last as u16, seq));
        let ext = last.saturating_add_signed(delta);
        if ext > last {
            self.last = Some(ext);
        }
        ext
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn delta_across_wrap() {
        assert_eq!(seq_delta(65535, 0), 1);
        assert_eq!(seq_delta(0, 65535), -1);
        assert_eq!(seq_delta(10, 20), 10);
        assert_eq!(seq_delta(65530, 4), 10);
    }

    #[test]
    fn extender_counts_cycles_and_tolerates_reordering() {
        let mut x = SeqExtender::new();
        let base = x.extend(65534);
        assert_eq!(x.extend(65535), base + 1);
        assert_eq!(x.extend(1), base + 3); // wrapped, 0 lost or late
        assert_eq!(x.extend(0), base + 2); // late arrival maps behind
        assert_eq!(x.extend(2), base + 4);
        // A second full cycle.
        let mut last = base + 4;
        for i in 3..=70000u32 {
            last = x.extend(i as u16);
        }
        assert_eq!(last, base + 2 + 70000);
    }
}
