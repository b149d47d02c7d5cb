//! Drivers generic over embedded-hal 1.0 traits: they know the LED language and the button
//! wiring, never the board. The backends (`rpi`, `cdev`, [`crate::sysfs_pwm`], the sim) hand
//! them pins, PWM channels and SPI buses.
//!
//! - [`button::ButtonInput`]: a button on an input pin, active low or high; sampled, and
//!   debounced by the core.
//! - [`single::OnOffLed`], [`single::PwmLed`]: one LED on a GPIO or a PWM channel.
//! - [`rgb::RgbLed`]: an RGB LED on three PWM channels.
//! - [`apa102::Apa102`]: a string or ring of APA102 LEDs on an SPI bus.

use std::time::{Duration, Instant};

use stagebox_leds::LedState;

use crate::indicator::Indicator;

pub mod apa102;
pub mod button;
pub mod rgb;
pub mod single;

/// How often animated LEDs are redrawn.
pub const REFRESH: Duration = Duration::from_millis(20);

/// The state being shown, since when, and the live level: what every LED driver keeps.
#[derive(Debug, Clone, Copy)]
pub struct Showing {
    pub state: LedState,
    pub since: Instant,
    pub level: u8,
}

impl Showing {
    pub fn new(now: Instant) -> Showing {
        Showing {
            state: LedState::Booting,
            since: now,
            level: 0,
        }
    }

    /// Milliseconds into the state's pattern at `now`.
    pub fn t_ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.since).as_millis()).unwrap_or(u64::MAX)
    }
}

/// Something that can draw the LED language on its hardware.
pub trait Render {
    type Error: core::fmt::Debug + core::fmt::Display;
    /// Draws `state` as it looks `t_ms` into its pattern at transmit `level`.
    fn draw(&mut self, state: LedState, t_ms: u64, level: u8) -> Result<(), Self::Error>;
}

/// An [`Indicator`] out of a [`Render`]: keeps the state and its start, and redraws on
/// change, on a level change while live, and on refresh while the state is animated.
pub struct Led<R> {
    render: R,
    showing: Option<Showing>,
}

impl<R: Render> Led<R> {
    pub fn new(render: R) -> Led<R> {
        Led {
            render,
            showing: None,
        }
    }

    pub fn render(&self) -> &R {
        &self.render
    }

    pub fn into_render(self) -> R {
        self.render
    }
}

impl<R: Render> Indicator for Led<R> {
    type Error = R::Error;

    fn show(&mut self, now: Instant, state: LedState) -> Result<(), R::Error> {
        let level = self.showing.map_or(0, |s| s.level);
        let showing = Showing {
            state,
            since: now,
            level,
        };
        self.showing = Some(showing);
        self.render.draw(state, 0, level)
    }

    fn level(&mut self, percent: u8) -> Result<(), R::Error> {
        let Some(showing) = self.showing.as_mut() else {
            return Ok(());
        };
        if showing.level == percent {
            return Ok(());
        }
        showing.level = percent;
        Ok(())
    }

    fn refresh(&mut self, now: Instant) -> Result<(), R::Error> {
        match self.showing {
            Some(s) if stagebox_leds::led_language::is_animated(s.state) => {
                self.render.draw(s.state, s.t_ms(now), s.level)
            }
            _ => Ok(()),
        }
    }
}

/// Perceived brightness (0–255) to PWM duty (0–`max`): a square law, close to the eye's
/// response, so that "dim" looks dim and a breath looks even.
pub fn gamma_duty(brightness: u8, max: u16) -> u16 {
    let b = u32::from(brightness);
    u16::try_from(b * b * u32::from(max) / (255 * 255)).unwrap_or(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_ends_and_middle() {
        assert_eq!(gamma_duty(0, 1000), 0);
        assert_eq!(gamma_duty(255, 1000), 1000);
        assert_eq!(gamma_duty(128, 1000), 251);
        assert_eq!(gamma_duty(255, u16::MAX), u16::MAX);
    }
}
