//! APA102 (and SK9822) LED strings and rings on an SPI bus, as on the ReSpeaker HATs.
//!
//! A frame on the wire: a start frame of four `0x00` bytes; then per LED, in wiring order,
//! `0b111g_gggg` (5-bit global brightness), blue, green, red; then an end frame of
//! `4 + ⌈n/16⌉` `0x00` bytes — four for SK9822 clones' latch, and one clock edge per two
//! LEDs for the data to reach the end of the string. The frame is built in a buffer sized
//! once at start-up.

use embedded_hal::spi::SpiBus;
use stagebox_leds::LedState;
use stagebox_leds::led_language::{self, Rgb};

use super::Render;

pub struct Apa102<S> {
    spi: S,
    brightness: u8,
    pixels: Vec<Rgb>,
    frame: Vec<u8>,
    shown: Option<Vec<Rgb>>,
}

/// The most LEDs one driver takes (a 4-Mic Array has 12, long strips more).
pub const MAX_LEDS: usize = 256;

impl<S: SpiBus> Apa102<S> {
    /// `count` LEDs (at most [`MAX_LEDS`]); `brightness` the 5-bit global brightness (0–31,
    /// higher is clamped) — keep it low next to a microphone array's power budget.
    pub fn new(spi: S, count: usize, brightness: u8) -> Apa102<S> {
        let count = count.min(MAX_LEDS);
        Apa102 {
            spi,
            brightness: brightness.min(31),
            pixels: vec![Rgb::OFF; count],
            frame: Vec::with_capacity(frame_len(count)),
            shown: None,
        }
    }

    /// Writes `pixels` to the string, as they are.
    pub fn write(&mut self, pixels: &[Rgb]) -> Result<(), S::Error> {
        encode(pixels, self.brightness, &mut self.frame);
        self.spi.write(&self.frame)?;
        self.spi.flush()
    }

    pub fn into_inner(self) -> S {
        self.spi
    }
}

/// The length of the frame for `count` LEDs.
pub fn frame_len(count: usize) -> usize {
    4 + 4 * count + 4 + count.div_ceil(16)
}

/// Encodes one frame into `out` (cleared first).
pub fn encode(pixels: &[Rgb], brightness: u8, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0; 4]);
    for p in pixels {
        out.extend_from_slice(&[0xE0 | (brightness & 0x1F), p.b, p.g, p.r]);
    }
    out.extend(std::iter::repeat_n(0u8, 4 + pixels.len().div_ceil(16)));
}

impl<S: SpiBus> Render for Apa102<S>
where
    S::Error: core::fmt::Display,
{
    type Error = S::Error;

    fn draw(&mut self, state: LedState, t_ms: u64, level: u8) -> Result<(), S::Error> {
        let mut pixels = std::mem::take(&mut self.pixels);
        led_language::ring(state, t_ms, level, &mut pixels);
        let result = if self.shown.as_deref() == Some(&pixels[..]) {
            Ok(())
        } else {
            let r = self.write(&pixels);
            match &mut self.shown {
                Some(shown) => shown.copy_from_slice(&pixels),
                None => self.shown = Some(pixels.clone()),
            }
            r
        };
        self.pixels = pixels;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::Led;
    use crate::indicator::Indicator;
    use embedded_hal_mock::eh1::spi::{Mock, Transaction as T};
    use std::time::{Duration, Instant};

    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn three_leds_audience_exact_bytes() {
        // ReSpeaker 2-Mics HAT: 3 LEDs, global brightness 10. Audience: blue 0x0072B2 at
        // 40/255 = (0, 18, 28) on every LED.
        let expected = vec![
            0x00, 0x00, 0x00, 0x00, // start
            0xEA, 28, 18, 0, // LED 0: brightness, B, G, R
            0xEA, 28, 18, 0, //
            0xEA, 28, 18, 0, //
            0x00, 0x00, 0x00, 0x00, 0x00, // end: 4 + ceil(3/16)
        ];
        assert_eq!(expected.len(), frame_len(3));
        let mut spi = Mock::new(&[T::write_vec(expected), T::flush()]);
        let mut led = Led::new(Apa102::new(spi.clone(), 3, 10));
        let t = t0();
        led.show(t, LedState::Audience).unwrap();
        // Steady: refreshing writes nothing more.
        led.refresh(t + Duration::from_millis(100)).unwrap();
        spi.done();
    }

    #[test]
    fn twelve_led_ring_spins_while_connecting() {
        let t = t0();
        let frame_with_head = |head: usize| {
            let sky = Rgb::new(0x56, 0xB4, 0xE9);
            let mut px = [Rgb::OFF; 12];
            px[head] = sky;
            px[(head + 11) % 12] = sky.scaled(90);
            px[(head + 10) % 12] = sky.scaled(25);
            let mut out = Vec::new();
            encode(&px, 31, &mut out);
            out
        };
        // One turn a second: the head moves one LED every 83.3 ms.
        let mut spi = Mock::new(&[
            T::write_vec(frame_with_head(0)),
            T::flush(),
            T::write_vec(frame_with_head(1)),
            T::flush(),
            T::write_vec(frame_with_head(6)),
            T::flush(),
        ]);
        let mut led = Led::new(Apa102::new(spi.clone(), 12, 200));
        led.show(t, LedState::Connecting).unwrap();
        led.refresh(t + Duration::from_millis(40)).unwrap(); // same head: nothing sent
        led.refresh(t + Duration::from_millis(90)).unwrap();
        led.refresh(t + Duration::from_millis(500)).unwrap();
        spi.done();
    }

    #[test]
    fn level_meter_follows_the_voice() {
        let t = t0();
        let red = Rgb::new(0xD5, 0x5E, 0x00);
        let frame = |lit: usize| {
            let mut px = [red.scaled(56); 12];
            for p in px.iter_mut().take(lit) {
                *p = red;
            }
            let mut out = Vec::new();
            encode(&px, 8, &mut out);
            out
        };
        let mut spi = Mock::new(&[
            T::write_vec(frame(1)),
            T::flush(),
            T::write_vec(frame(9)),
            T::flush(),
        ]);
        let mut led = Led::new(Apa102::new(spi.clone(), 12, 8));
        led.show(t, LedState::Live).unwrap();
        led.level(75).unwrap();
        led.refresh(t + Duration::from_millis(20)).unwrap();
        spi.done();
    }

    #[test]
    fn long_strings_get_enough_end_clocks() {
        let mut out = Vec::new();
        encode(&[Rgb::OFF; 40], 31, &mut out);
        assert_eq!(out.len(), 4 + 160 + 4 + 3);
        assert!(out[4..164].chunks(4).all(|c| c == [0xFF, 0, 0, 0]));
    }
}
