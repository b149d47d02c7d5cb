//! LED output as the station sees it: show a state (and a level while live). Drivers for
//! GPIO, PWM/RGB and APA102 rings render each state in their own way; the sim backend draws
//! in the terminal and records a timeline.

use stagebox_core::LedState;

pub trait Indicator {
    type Error: core::fmt::Debug + core::fmt::Display;
    /// Shows `state` from now on.
    fn show(&mut self, state: LedState) -> Result<(), Self::Error>;
    /// The transmit level while live, 0 (silent) to 100 (full scale).
    fn level(&mut self, percent: u8) -> Result<(), Self::Error>;
}
