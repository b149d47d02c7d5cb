//! A button on an input pin. The driver only reads the contact: debouncing and gestures are
//! the core's (`stagebox_core::button`), which gets every sampled change with its time.

use embedded_hal::digital::InputPin;

pub struct ButtonInput<P> {
    pin: P,
    active_low: bool,
    last: Option<bool>,
}

impl<P: InputPin> ButtonInput<P> {
    /// `active_low`: the contact pulls the line low when pressed (to ground, with a
    /// pull-up), as on the ReSpeaker HATs and stagebox's wiring.
    pub fn new(pin: P, active_low: bool) -> ButtonInput<P> {
        ButtonInput {
            pin,
            active_low,
            last: None,
        }
    }

    /// Whether the contact is closed now.
    pub fn is_pressed(&mut self) -> Result<bool, P::Error> {
        if self.active_low {
            self.pin.is_low()
        } else {
            self.pin.is_high()
        }
    }

    /// Samples the pin: `Some(pressed)` when the level differs from the last sample (the
    /// first sample always reports), `None` when it did not change.
    pub fn sample(&mut self) -> Result<Option<bool>, P::Error> {
        let pressed = self.is_pressed()?;
        if self.last == Some(pressed) {
            return Ok(None);
        }
        self.last = Some(pressed);
        Ok(Some(pressed))
    }
}

/// A button whose pin type is chosen at run time.
pub trait SampleButton: Send {
    /// See [`ButtonInput::sample`]; the error as text.
    fn sample(&mut self) -> Result<Option<bool>, String>;
}

impl<P: InputPin + Send> SampleButton for ButtonInput<P> {
    fn sample(&mut self) -> Result<Option<bool>, String> {
        ButtonInput::sample(self).map_err(|e| format!("{e:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};
    use stagebox_core::ButtonId;
    use stagebox_core::ButtonTiming;
    use stagebox_core::button::{Button, GestureKind};
    use std::time::{Duration, Instant};

    #[test]
    fn a_bouncing_press_through_the_driver_is_one_press() {
        // Active low: a press reads low. Released, then 6 ms of contact chatter, then held
        // for 60 ms, then released with a 2 ms chatter.
        let levels = [
            State::High,
            State::Low,
            State::High,
            State::Low,
            State::High,
            State::Low,
            State::Low,
        ]
        .into_iter()
        .chain(std::iter::repeat_n(State::Low, 30))
        .chain([State::High, State::Low, State::High])
        .chain(std::iter::repeat_n(State::High, 20))
        .collect::<Vec<_>>();
        let expectations: Vec<Transaction> = levels.iter().map(|s| Transaction::get(*s)).collect();
        let mut pin = Mock::new(&expectations);
        let mut button = ButtonInput::new(pin.clone(), true);
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut core = Button::new(ButtonId::Ptt, ButtonTiming::default());
        let mut changes = 0;
        for i in 0..levels.len() {
            // Sampled every 2 ms.
            let now = t0 + Duration::from_millis(2 * i as u64);
            if let Some(pressed) = button.sample().unwrap() {
                changes += 1;
                core.handle_level(now, pressed);
            } else {
                core.handle_timeout(now);
            }
        }
        let gestures: Vec<GestureKind> = std::iter::from_fn(|| core.poll_gesture())
            .map(|g| g.kind)
            .collect();
        assert_eq!(gestures, vec![GestureKind::Down, GestureKind::Up]);
        assert!(changes > 2, "the chatter reached the core: {changes}");
        pin.done();
    }

    #[test]
    fn active_high_wiring_reads_high_as_pressed() {
        let mut pin = Mock::new(&[Transaction::get(State::High), Transaction::get(State::High)]);
        let mut b = ButtonInput::new(pin.clone(), false);
        assert_eq!(b.sample().unwrap(), Some(true));
        assert_eq!(b.sample().unwrap(), None);
        pin.done();
    }
}
