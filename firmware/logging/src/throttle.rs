//! A log line's rate limit, sans-IO: at most one line per window, and the next one says how
//! many were left out. For events a peer can cause at will (failed handshakes, slow readers),
//! so an attacker cannot flood the journal.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Throttle {
    window: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub fn new(window: Duration) -> Throttle {
        Throttle {
            window,
            last: None,
            suppressed: 0,
        }
    }

    /// One line per second.
    pub fn per_second() -> Throttle {
        Throttle::new(Duration::from_secs(1))
    }

    /// Whether a line may be written at `now`: `Some(n)` with the number of lines left out
    /// since the last one, or `None` (this one is left out and counted).
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.window => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// The tail of a line that follows `suppressed` left-out ones: `" (and 12 more)"`.
    pub fn and_more(suppressed: u64) -> String {
        if suppressed == 0 {
            String::new()
        } else {
            format!(" (and {suppressed} more)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_window_and_the_next_counts_the_rest() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut t = Throttle::per_second();
        assert_eq!(t.allow(t0), Some(0));
        let mut written = 0;
        for ms in 1..1000 {
            if t.allow(t0 + Duration::from_millis(ms)).is_some() {
                written += 1;
            }
        }
        assert_eq!(written, 0);
        assert_eq!(t.allow(t0 + Duration::from_millis(1000)), Some(999));
        assert_eq!(Throttle::and_more(999), " (and 999 more)");
        assert_eq!(Throttle::and_more(0), "");
    }
}
