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
//! - `rpi` (feature `rppal`): Raspberry Pi GPIO, PWM and SPI through rppal.
//! - `cdev` (feature `cdev`): any Linux board's GPIO character device and spidev, through
//!   linux-embedded-hal; [`sysfs_pwm`] for PWM on any board.
//!
//! The [`drivers`] (buttons, single, RGB and APA102 LEDs) are generic over embedded-hal and
//! run on any of them; they render the LED language of `stagebox_leds::led_language`.

pub mod audio;
pub mod drivers;
pub mod gpio;
pub mod indicator;
pub mod sim;
pub mod sysfs_pwm;

#[cfg(feature = "alsa")]
pub mod alsa;
#[cfg(feature = "cdev")]
pub mod cdev;
#[cfg(feature = "rppal")]
pub mod rpi;

pub use audio::{AudioCapture, AudioError, AudioErrorKind, AudioPlayback, ErrorType, StreamFormat};
pub use indicator::Indicator;
