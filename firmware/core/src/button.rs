//! Buttons: debouncing raw levels into presses, and presses into gestures (down, up,
//! double-press, long-press). Sans-IO: levels come in with their time, gestures come out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The station's buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ButtonId {
    /// Push-to-talk.
    Ptt,
    /// Hand raise.
    Hand,
}

impl ButtonId {
    pub const ALL: [ButtonId; 2] = [ButtonId::Ptt, ButtonId::Hand];
}

/// One `T` per button, indexed by [`ButtonId`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerButton<T> {
    pub ptt: T,
    pub hand: T,
}

impl<T> PerButton<T> {
    pub fn new(mut make: impl FnMut(ButtonId) -> T) -> PerButton<T> {
        PerButton {
            ptt: make(ButtonId::Ptt),
            hand: make(ButtonId::Hand),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (ButtonId, &T)> {
        [(ButtonId::Ptt, &self.ptt), (ButtonId::Hand, &self.hand)].into_iter()
    }
}

impl<T> std::ops::Index<ButtonId> for PerButton<T> {
    type Output = T;
    fn index(&self, id: ButtonId) -> &T {
        match id {
            ButtonId::Ptt => &self.ptt,
            ButtonId::Hand => &self.hand,
        }
    }
}

impl<T> std::ops::IndexMut<ButtonId> for PerButton<T> {
    fn index_mut(&mut self, id: ButtonId) -> &mut T {
        match id {
            ButtonId::Ptt => &mut self.ptt,
            ButtonId::Hand => &mut self.hand,
        }
    }
}

/// What a person did with a button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GestureKind {
    /// Pressed (debounced).
    Down,
    /// Released (debounced).
    Up,
    /// A second press within the double-press window (reported after its `Down`).
    DoublePress,
    /// Held past the long-press time (reported once per hold).
    LongPress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gesture {
    pub button: ButtonId,
    pub kind: GestureKind,
    pub at: Instant,
}

/// Timing of button handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ButtonTiming {
    /// A level must hold this long to count.
    pub debounce: Duration,
    /// Two presses closer than this are a double-press.
    pub double_press: Duration,
    /// A hold longer than this is a long-press.
    pub long_press: Duration,
}

impl Default for ButtonTiming {
    fn default() -> Self {
        ButtonTiming {
            debounce: Duration::from_millis(20),
            double_press: Duration::from_millis(400),
            long_press: Duration::from_millis(1500),
        }
    }
}

/// One button's debouncer and gesture detector.
#[derive(Debug, Clone)]
pub struct Button {
    id: ButtonId,
    timing: ButtonTiming,
    raw: bool,
    raw_since: Option<Instant>,
    pressed: bool,
    pressed_at: Option<Instant>,
    long_reported: bool,
    last_down: Option<Instant>,
    gestures: VecDeque<Gesture>,
}

impl Button {
    pub fn new(id: ButtonId, timing: ButtonTiming) -> Button {
        Button {
            id,
            timing,
            raw: false,
            raw_since: None,
            pressed: false,
            pressed_at: None,
            long_reported: false,
            last_down: None,
            gestures: VecDeque::new(),
        }
    }

    pub fn id(&self) -> ButtonId {
        self.id
    }

    /// Since when the button has been (debounced) pressed.
    pub fn pressed_since(&self) -> Option<Instant> {
        self.pressed_at.filter(|_| self.pressed)
    }

    /// Whether the button is (debounced) pressed.
    pub fn is_pressed(&self) -> bool {
        self.pressed
    }

    /// The raw contact level changed (or was sampled): `pressed` is the electrical state.
    pub fn handle_level(&mut self, now: Instant, pressed: bool) {
        if pressed != self.raw {
            self.raw = pressed;
            self.raw_since = Some(now);
        }
        self.handle_timeout(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(since) = self.raw_since
            && self.raw != self.pressed
            && now.saturating_duration_since(since) >= self.timing.debounce
        {
            let at = since + self.timing.debounce;
            self.pressed = self.raw;
            self.raw_since = None;
            if self.pressed {
                self.pressed_at = Some(at);
                self.long_reported = false;
                self.push(GestureKind::Down, at);
                if let Some(prev) = self.last_down
                    && at.saturating_duration_since(prev) <= self.timing.double_press
                {
                    self.push(GestureKind::DoublePress, at);
                    self.last_down = None;
                } else {
                    self.last_down = Some(at);
                }
            } else {
                self.pressed_at = None;
                self.push(GestureKind::Up, at);
            }
        }
        if let Some(at) = self.pressed_at
            && self.pressed
            && !self.long_reported
            && now.saturating_duration_since(at) >= self.timing.long_press
        {
            self.long_reported = true;
            self.push(GestureKind::LongPress, at + self.timing.long_press);
        }
    }

    pub fn poll_gesture(&mut self) -> Option<Gesture> {
        self.gestures.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let debounce = self
            .raw_since
            .filter(|_| self.raw != self.pressed)
            .map(|s| s + self.timing.debounce);
        let long = self
            .pressed_at
            .filter(|_| self.pressed && !self.long_reported)
            .map(|p| p + self.timing.long_press);
        match (debounce, long) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn push(&mut self, kind: GestureKind, at: Instant) {
        self.gestures.push_back(Gesture {
            button: self.id,
            kind,
            at,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(b: &mut Button) -> Vec<GestureKind> {
        std::iter::from_fn(|| b.poll_gesture())
            .map(|g| g.kind)
            .collect()
    }

    #[test]
    fn bounce_is_filtered() {
        let t = t0();
        let mut b = Button::new(ButtonId::Ptt, ButtonTiming::default());
        // Contact chatter for 8 ms, then held.
        for i in 0..8 {
            b.handle_level(t + ms(i), i % 2 == 0);
        }
        b.handle_level(t + ms(8), true);
        assert!(drain(&mut b).is_empty());
        assert_eq!(b.poll_timeout(), Some(t + ms(28)));
        b.handle_timeout(t + ms(28));
        assert_eq!(drain(&mut b), vec![GestureKind::Down]);
        assert!(b.is_pressed());
        // A 5 ms glitch open is ignored.
        b.handle_level(t + ms(100), false);
        b.handle_level(t + ms(105), true);
        b.handle_timeout(t + ms(200));
        assert!(drain(&mut b).is_empty());
        b.handle_level(t + ms(300), false);
        b.handle_timeout(t + ms(320));
        assert_eq!(drain(&mut b), vec![GestureKind::Up]);
    }

    #[test]
    fn double_press_and_long_press() {
        let t = t0();
        let mut b = Button::new(ButtonId::Hand, ButtonTiming::default());
        b.handle_level(t, true);
        b.handle_timeout(t + ms(20));
        b.handle_level(t + ms(100), false);
        b.handle_timeout(t + ms(120));
        b.handle_level(t + ms(200), true);
        b.handle_timeout(t + ms(220));
        assert_eq!(
            drain(&mut b),
            vec![
                GestureKind::Down,
                GestureKind::Up,
                GestureKind::Down,
                GestureKind::DoublePress
            ]
        );
        // Keep holding: long press once, at 1.5 s after the debounced press.
        assert_eq!(b.poll_timeout(), Some(t + ms(1720)));
        b.handle_timeout(t + ms(1720));
        b.handle_timeout(t + ms(3000));
        assert_eq!(drain(&mut b), vec![GestureKind::LongPress]);
        assert_eq!(b.poll_timeout(), None);
        // A slow second press is not a double press.
        b.handle_level(t + ms(3100), false);
        b.handle_timeout(t + ms(3120));
        b.handle_level(t + ms(4000), true);
        b.handle_timeout(t + ms(4020));
        assert_eq!(drain(&mut b), vec![GestureKind::Up, GestureKind::Down]);
    }
}
