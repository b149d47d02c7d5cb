//! Real-time pacing for sim devices: period `n` is due at `start + n × period`, so the sim
//! clock runs at the rate of a sound card's and does not drift with processing time.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub struct Pacer {
    period: Duration,
    start: Option<Instant>,
    start_unix_ns: u128,
    periods: u64,
    enabled: bool,
}

impl Pacer {
    /// `enabled = false` runs as fast as the caller asks (tests).
    pub fn new(period: Duration, enabled: bool) -> Pacer {
        Pacer {
            period,
            start: None,
            start_unix_ns: 0,
            periods: 0,
            enabled,
        }
    }

    /// Waits until the next period is due.
    pub fn wait(&mut self) {
        let start = *self.start.get_or_insert_with(|| {
            self.start_unix_ns = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            Instant::now()
        });
        self.periods += 1;
        if !self.enabled {
            return;
        }
        let due = start + self.period * u32::try_from(self.periods).unwrap_or(u32::MAX);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }

    /// Wall-clock time (ns since the Unix epoch) at which period 0 began; 0 before it did.
    pub fn start_unix_ns(&self) -> u128 {
        self.start_unix_ns
    }
}
