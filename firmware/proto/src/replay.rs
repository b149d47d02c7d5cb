//! Sliding replay window over the 32-bit media nonce counter (RFC 6479 style, 64 wide).

/// Width of the window: counters more than this far behind the highest are rejected.
pub const REPLAY_WINDOW: u32 = 64;

/// Remembers which recent counters were accepted. Check with [`ReplayWindow::is_fresh`]
/// before the (costly) decryption and commit with [`ReplayWindow::accept`] only after the
/// packet authenticated, so forged packets cannot move the window.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayWindow {
    highest: Option<u32>,
    /// Bit `i` set: counter `highest - i` was accepted.
    seen: u64,
}

impl ReplayWindow {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `counter` has not been accepted before and is inside the window.
    pub fn is_fresh(&self, counter: u32) -> bool {
        match self.highest {
            None => true,
            Some(h) if counter > h => true,
            Some(h) => {
                let behind = h - counter;
                behind < REPLAY_WINDOW && self.seen & (1u64 << behind) == 0
            }
        }
    }

    /// Records `counter` as accepted. Call only after [`is_fresh`](Self::is_fresh) returned
    /// true and the packet authenticated.
    pub fn accept(&mut self, counter: u32) {
        match self.highest {
            None => {
                self.highest = Some(counter);
                self.seen = 1;
            }
            Some(h) if counter > h => {
                let ahead = counter - h;
                self.seen = if ahead >= REPLAY_WINDOW {
                    0
                } else {
                    self.seen << ahead
                };
                self.seen |= 1;
                self.highest = Some(counter);
            }
            Some(h) => {
                let behind = h - counter;
                if behind < REPLAY_WINDOW {
                    self.seen |= 1u64 << behind;
                }
            }
        }
    }

    /// Highest counter accepted so far.
    pub fn highest(&self) -> Option<u32> {
        self.highest
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn take(w: &mut ReplayWindow, c: u32) -> bool {
        let fresh = w.is_fresh(c);
        if fresh {
            w.accept(c);
        }
        fresh
    }

    #[test]
    fn rejects_duplicates_and_too_old() {
        let mut w = ReplayWindow::new();
        assert!(take(&mut w, 5));
        assert!(!take(&mut w, 5));
        assert!(take(&mut w, 3)); // reordered, inside window
        assert!(!take(&mut w, 3));
        assert!(take(&mut w, 100));
        assert!(!take(&mut w, 36)); // exactly 64 behind: outside
        assert!(take(&mut w, 37)); // 63 behind: inside and unseen
        assert!(!take(&mut w, 100));
    }

    #[test]
    fn large_jump_clears_history() {
        let mut w = ReplayWindow::new();
        for c in 0..64 {
            assert!(take(&mut w, c));
        }
        assert!(take(&mut w, 1_000_000));
        assert!(take(&mut w, 999_999));
        assert!(!take(&mut w, 63));
        assert!(take(&mut w, u32::MAX));
        assert!(!take(&mut w, u32::MAX));
    }
}
