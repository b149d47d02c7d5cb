//! # stagebox-hal — the station's hardware, behind small traits
//!
//! Buttons are embedded-hal 1.0 [`embedded_hal::digital::InputPin`]s; audio devices and LEDs
//! have small traits of their own here ([`audio`], [`indicator`]) in the same style (an
//! `ErrorType` whose errors have a `kind()`). Every trait has a Linux backend and a sim
//! backend:
//!
//! - [`sim`]: WAV files paced like a sound card, buttons set from a control socket, LEDs drawn
//!   in the terminal — the same binary runs on a laptop with `--board sim`.
//! - `alsa` (feature `alsa`): capture and playback through alsa-lib.
//!
//! GPIO (rppal, gpio-cdev) and APA102 backends come with the hardware boards.

pub mod audio;
pub mod indicator;
pub mod sim;

#[cfg(feature = "alsa")]
pub mod alsa;

pub use audio::{AudioCapture, AudioError, AudioErrorKind, AudioPlayback, ErrorType, StreamFormat};
pub use indicator::Indicator;
