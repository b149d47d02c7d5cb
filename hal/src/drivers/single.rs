//! One LED: on a plain GPIO (on/off) or on a PWM channel (brightness, so breathing and dim
//! glows show as designed). The on/off LED shows the pattern cut at half brightness: blinks
//! and flashes stay as they are, steady glows below half are off (see docs/leds.md).

use embedded_hal::digital::OutputPin;
use embedded_hal::pwm::SetDutyCycle;
use stagebox_leds::LedState;
use stagebox_leds::led_language;

use super::{Render, gamma_duty};

pub struct OnOffLed<P> {
    pin: P,
    active_low: bool,
    lit: Option<bool>,
}

impl<P: OutputPin> OnOffLed<P> {
    pub fn new(pin: P, active_low: bool) -> OnOffLed<P> {
        OnOffLed {
            pin,
            active_low,
            lit: None,
        }
    }
}

impl<P: OutputPin> Render for OnOffLed<P>
where
    P::Error: core::fmt::Display,
{
    type Error = P::Error;

    fn draw(&mut self, state: LedState, t_ms: u64, level: u8) -> Result<(), P::Error> {
        let lit = led_language::single(state, t_ms, level) >= 128;
        if self.lit == Some(lit) {
            return Ok(());
        }
        self.lit = Some(lit);
        if lit != self.active_low {
            self.pin.set_high()
        } else {
            self.pin.set_low()
        }
    }
}

pub struct PwmLed<P> {
    pwm: P,
    duty: Option<u16>,
}

impl<P: SetDutyCycle> PwmLed<P> {
    pub fn new(pwm: P) -> PwmLed<P> {
        PwmLed { pwm, duty: None }
    }
}

impl<P: SetDutyCycle> Render for PwmLed<P>
where
    P::Error: core::fmt::Display,
{
    type Error = P::Error;

    fn draw(&mut self, state: LedState, t_ms: u64, level: u8) -> Result<(), P::Error> {
        let duty = gamma_duty(
            led_language::single(state, t_ms, level),
            self.pwm.max_duty_cycle(),
        );
        if self.duty == Some(duty) {
            return Ok(());
        }
        self.duty = Some(duty);
        self.pwm.set_duty_cycle(duty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::Led;
    use crate::indicator::Indicator;
    use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as PinT};
    use embedded_hal_mock::eh1::pwm::{Mock as PwmMock, Transaction as PwmT};
    use std::time::{Duration, Instant};

    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn on_off_led_blinks_for_connecting_and_writes_only_changes() {
        // Active-low LED: lit = low. Connecting blinks 500 ms on, 500 ms off.
        let mut pin = PinMock::new(&[
            PinT::set(State::Low),
            PinT::set(State::High),
            PinT::set(State::Low),
        ]);
        let mut led = Led::new(OnOffLed::new(pin.clone(), true));
        let t = t0();
        led.show(t, LedState::Connecting).unwrap();
        for ms in (20..1100).step_by(20) {
            led.refresh(t + Duration::from_millis(ms)).unwrap();
        }
        pin.done();
    }

    #[test]
    fn pwm_led_breathes_with_gamma_and_holds_steady_states() {
        let t = t0();
        // Hand raised breathes from 20/255 up to full over a second: duty rises.
        let mut expected = vec![PwmT::max_duty_cycle(1000), PwmT::set_duty_cycle(6)];
        let mut duties = vec![];
        for ms in [250u64, 500, 750, 1000] {
            let b = led_language::single(LedState::HandRaised, ms, 0);
            let d = gamma_duty(b, 1000);
            duties.push(d);
            expected.push(PwmT::max_duty_cycle(1000));
            expected.push(PwmT::set_duty_cycle(d));
        }
        assert!(duties.windows(2).all(|w| w[0] < w[1]), "{duties:?}");
        assert_eq!(*duties.last().unwrap(), 1000);
        // Speaker idle is steady: drawn once, never redrawn.
        expected.push(PwmT::max_duty_cycle(1000));
        expected.push(PwmT::set_duty_cycle(gamma_duty(140, 1000)));
        let mut pwm = PwmMock::new(&expected);
        let mut led = Led::new(PwmLed::new(pwm.clone()));
        led.show(t, LedState::HandRaised).unwrap();
        for ms in [250u64, 500, 750, 1000] {
            led.refresh(t + Duration::from_millis(ms)).unwrap();
        }
        led.show(t + Duration::from_secs(2), LedState::SpeakerIdle)
            .unwrap();
        led.refresh(t + Duration::from_secs(3)).unwrap();
        pwm.done();
    }
}
