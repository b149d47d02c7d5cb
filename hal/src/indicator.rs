//! LED output as the station sees it: show a state (and a level while live), and redraw
//! animated states. What each state looks like is the LED language in
//! [`stagebox_leds::led_language`]; the drivers in [`crate::drivers`] render it on GPIO, PWM,
//! RGB and APA102 hardware, and the sim backend draws in the terminal.

use std::time::Instant;

use stagebox_leds::LedState;

pub trait Indicator {
    type Error: core::fmt::Debug + core::fmt::Display;
    /// Shows `state` from `now` on.
    fn show(&mut self, now: Instant, state: LedState) -> Result<(), Self::Error>;
    /// The transmit level while live, 0 (silent) to 100 (full scale).
    fn level(&mut self, percent: u8) -> Result<(), Self::Error>;
    /// Redraws an animated state as it looks at `now`; call it every
    /// [`REFRESH`](crate::drivers::REFRESH) or so.
    fn refresh(&mut self, _now: Instant) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// [`Indicator`] with its error as text, for boxing.
pub trait DynIndicator {
    fn show(&mut self, now: Instant, state: LedState) -> Result<(), String>;
    fn level(&mut self, percent: u8) -> Result<(), String>;
    fn refresh(&mut self, now: Instant) -> Result<(), String>;
}

impl<I: Indicator> DynIndicator for I {
    fn show(&mut self, now: Instant, state: LedState) -> Result<(), String> {
        Indicator::show(self, now, state).map_err(|e| e.to_string())
    }

    fn level(&mut self, percent: u8) -> Result<(), String> {
        Indicator::level(self, percent).map_err(|e| e.to_string())
    }

    fn refresh(&mut self, now: Instant) -> Result<(), String> {
        Indicator::refresh(self, now).map_err(|e| e.to_string())
    }
}

/// Whichever LEDs the board has, chosen at run time.
pub struct AnyIndicator(pub Box<dyn DynIndicator + Send>);

impl Indicator for AnyIndicator {
    type Error = String;

    fn show(&mut self, now: Instant, state: LedState) -> Result<(), String> {
        self.0.show(now, state)
    }

    fn level(&mut self, percent: u8) -> Result<(), String> {
        self.0.level(percent)
    }

    fn refresh(&mut self, now: Instant) -> Result<(), String> {
        self.0.refresh(now)
    }
}
