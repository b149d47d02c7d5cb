//! LEDs drawn as one line per change in the terminal, and recorded as a timeline for reports
//! and tests.

use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use stagebox_leds::LedState;

use crate::indicator::Indicator;

/// `(milliseconds since start, state)` for every change.
pub type LedTimeline = Arc<Mutex<Vec<(u64, LedState)>>>;

pub struct SimLeds {
    name: String,
    start: Instant,
    timeline: LedTimeline,
    draw: bool,
}

impl SimLeds {
    /// `draw`: print changes to stderr (with colour on a terminal).
    pub fn new(name: &str, draw: bool) -> SimLeds {
        SimLeds {
            name: name.into(),
            start: Instant::now(),
            timeline: Arc::default(),
            draw,
        }
    }

    pub fn timeline(&self) -> LedTimeline {
        self.timeline.clone()
    }
}

/// How a state looks on the sim's one-character LED: colour and pattern.
fn glyph(state: LedState) -> (&'static str, &'static str) {
    match state {
        LedState::Booting => ("37", "· booting"),
        LedState::Connecting => ("36", "◌ connecting"),
        LedState::Audience => ("34", "○ audience"),
        LedState::HandRaised => ("33", "✋ hand raised"),
        LedState::Invited => ("35", "◉ invited — press PTT to speak, hand to decline"),
        LedState::SpeakerIdle => ("32", "● speaker"),
        LedState::Live => ("31", "◆ LIVE"),
        LedState::Muted => ("33", "⊘ muted by moderator"),
        LedState::Reconnecting => ("36", "◌ reconnecting"),
        LedState::Offline => ("36", "· offline (still trying)"),
        LedState::ButtonStuck => ("31", "✖ button held too long: not transmitting"),
        LedState::Error => (
            "31",
            "✖ error: server refuses this station, or is not the one configured",
        ),
        LedState::Updating => ("37", "↻ updating"),
    }
}

impl Indicator for SimLeds {
    type Error = Infallible;

    fn show(&mut self, now: Instant, state: LedState) -> Result<(), Infallible> {
        let ms = u64::try_from(now.saturating_duration_since(self.start).as_millis())
            .unwrap_or(u64::MAX);
        if let Ok(mut t) = self.timeline.lock() {
            t.push((ms, state));
        }
        if self.draw {
            let (colour, text) = glyph(state);
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "[{}] LED \x1b[{colour}m{text}\x1b[0m", self.name);
        }
        Ok(())
    }

    fn level(&mut self, _percent: u8) -> Result<(), Infallible> {
        Ok(())
    }
}
