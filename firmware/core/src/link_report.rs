//! The station's link statistics for the moderator's console (`link_stats`): what the
//! playout path measures (handed in by the plumbing), the signaling round trip, how often the
//! session came back, and the LED state, every [`LINK_STATS_EVERY`] while the session is up.

use std::time::{Duration, Instant};

use stagebox_proto::signal::LinkStats;

/// How often a station on a stage reports its link.
pub const LINK_STATS_EVERY: Duration = Duration::from_secs(2);

/// What the playout path measures (running totals and the delays now).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayoutFigures {
    /// Spread of the audio's arrival times, µs.
    pub arrival_spread_us: u64,
    /// How far behind the fastest packet the last frame played, µs.
    pub current_delay_us: u64,
    pub played: u64,
    pub concealed: u64,
}

/// When the next report is due.
#[derive(Debug, Default)]
pub struct LinkReport {
    sent_at: Option<Instant>,
}

impl LinkReport {
    /// The report to send at `now`, if one is due.
    pub fn due(
        &mut self,
        now: Instant,
        playout: PlayoutFigures,
        round_trip: Option<Duration>,
        reconnects: u64,
        led: &str,
    ) -> Option<LinkStats> {
        if self.sent_at.is_some_and(|t| now < t + LINK_STATS_EVERY) {
            return None;
        }
        self.sent_at = Some(now);
        let ms = |us: u64| u32::try_from(us / 1000).unwrap_or(u32::MAX);
        Some(LinkStats {
            // Rounded up: a loopback round trip of 0.2 ms is not 0 ms.
            rtt_ms: round_trip
                .map(|d| u32::try_from(d.as_micros().div_ceil(1000)).unwrap_or(u32::MAX)),
            jitter_ms: Some(ms(playout.arrival_spread_us)),
            jitter_buffer_ms: Some(ms(playout.current_delay_us)),
            played_frames: Some(playout.played),
            concealed_frames: Some(playout.concealed),
            reconnects: Some(u32::try_from(reconnects).unwrap_or(u32::MAX)),
            led: Some(led.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)]
    fn start() -> Instant {
        Instant::now()
    }

    #[test]
    fn a_report_goes_out_every_two_seconds_with_the_figures_in_milliseconds() {
        let mut r = LinkReport::default();
        let t = start();
        let figures = PlayoutFigures {
            arrival_spread_us: 3_400,
            current_delay_us: 61_900,
            played: 500,
            concealed: 2,
        };
        let first = r
            .due(t, figures, Some(Duration::from_micros(12_500)), 1, "live")
            .unwrap();
        assert_eq!(
            first,
            LinkStats {
                rtt_ms: Some(13),
                jitter_ms: Some(3),
                jitter_buffer_ms: Some(61),
                played_frames: Some(500),
                concealed_frames: Some(2),
                reconnects: Some(1),
                led: Some("live".into()),
            }
        );
        assert!(
            r.due(t + Duration::from_millis(1999), figures, None, 1, "live")
                .is_none()
        );
        let next = r
            .due(t + LINK_STATS_EVERY, figures, None, 1, "live")
            .unwrap();
        assert_eq!(
            next.rtt_ms, None,
            "no heartbeat answered yet: no round trip"
        );
    }
}
