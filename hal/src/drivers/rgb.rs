//! An RGB LED on three PWM channels: the LED language's hue at its brightness.

use embedded_hal::pwm::SetDutyCycle;
use stagebox_leds::LedState;
use stagebox_leds::led_language::{self, Rgb};

use super::{Render, gamma_duty};

pub struct RgbLed<R, G, B> {
    red: R,
    green: G,
    blue: B,
    shown: Option<Rgb>,
}

impl<R, G, B, E> RgbLed<R, G, B>
where
    R: SetDutyCycle<Error = E>,
    G: SetDutyCycle<Error = E>,
    B: SetDutyCycle<Error = E>,
{
    pub fn new(red: R, green: G, blue: B) -> RgbLed<R, G, B> {
        RgbLed {
            red,
            green,
            blue,
            shown: None,
        }
    }
}

impl<R, G, B, E> Render for RgbLed<R, G, B>
where
    R: SetDutyCycle<Error = E>,
    G: SetDutyCycle<Error = E>,
    B: SetDutyCycle<Error = E>,
    E: embedded_hal::pwm::Error + core::fmt::Display,
{
    type Error = E;

    fn draw(&mut self, state: LedState, t_ms: u64, level: u8) -> Result<(), E> {
        let c = led_language::rgb(state, t_ms, level);
        if self.shown == Some(c) {
            return Ok(());
        }
        self.shown = Some(c);
        let d = gamma_duty(c.r, self.red.max_duty_cycle());
        self.red.set_duty_cycle(d)?;
        let d = gamma_duty(c.g, self.green.max_duty_cycle());
        self.green.set_duty_cycle(d)?;
        let d = gamma_duty(c.b, self.blue.max_duty_cycle());
        self.blue.set_duty_cycle(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::Led;
    use crate::indicator::Indicator;
    use embedded_hal_mock::eh1::pwm::{Mock, Transaction as T};
    use std::time::Instant;

    #[test]
    fn audience_is_dim_blue_on_three_channels() {
        // Blue 0x0072B2 at 40/255 brightness: (0, 18, 28) → squared into 0..=255 duty.
        let c = Rgb::new(0x00, 0x72, 0xB2).scaled(40);
        assert_eq!(c, Rgb::new(0, 18, 28));
        let mut r = Mock::new(&[T::max_duty_cycle(255), T::set_duty_cycle(0)]);
        let mut g = Mock::new(&[T::max_duty_cycle(255), T::set_duty_cycle(1)]);
        let mut b = Mock::new(&[T::max_duty_cycle(255), T::set_duty_cycle(3)]);
        let mut led = Led::new(RgbLed::new(r.clone(), g.clone(), b.clone()));
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        led.show(now, LedState::Audience).unwrap();
        // Steady: a refresh writes nothing.
        led.refresh(now + std::time::Duration::from_millis(500))
            .unwrap();
        r.done();
        g.done();
        b.done();
    }
}
