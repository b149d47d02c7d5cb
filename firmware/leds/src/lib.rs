//! # stagebox-leds — the LED language, as data
//!
//! What a station's LEDs can say ([`LedState`]) and how each state looks on a single LED, an
//! RGB LED and a ring ([`led_language`]), as pure functions of the state, the time and the
//! voice level. The station core decides the state; the hal's drivers render it. Both depend
//! on this crate and not on each other, so the layers stack downward. No clock, no device.

pub mod led;
pub mod led_language;

pub use led::LedState;
