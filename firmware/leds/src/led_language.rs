//! The LED language: how each [`LedState`] looks on each kind of LED — a single LED (on/off or
//! PWM), an RGB LED, and an APA102 ring or strip.
//!
//! The rule that makes it readable across a room, and colour-blind safe: every state has its
//! own **brightness pattern** (the envelope), and the single LED shows exactly that pattern.
//! The RGB LED adds a hue to the same pattern; the ring adds a hue and a spatial shape. So no
//! two states differ by hue alone. Hues are from the Okabe–Ito palette, chosen to stay apart
//! for the common colour-vision deficiencies. `docs/leds.md` holds the same table (a test
//! checks they agree).
//!
//! Everything here is a pure function of the state, the time since the state began and the
//! transmit level: drivers call it on each refresh and write the result to their hardware.

use crate::led::LedState;

/// An RGB colour, 8 bits per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rgb {
    pub r: u8,
    pub g: u8,
    pub b: u8,
}

impl Rgb {
    pub const OFF: Rgb = Rgb::new(0, 0, 0);

    pub const fn new(r: u8, g: u8, b: u8) -> Rgb {
        Rgb { r, g, b }
    }

    /// This colour at `brightness` (0–255).
    pub fn scaled(self, brightness: u8) -> Rgb {
        let s = |c: u8| ((u16::from(c) * u16::from(brightness) + 127) / 255) as u8;
        Rgb::new(s(self.r), s(self.g), s(self.b))
    }
}

/// Okabe–Ito colours.
pub mod palette {
    use super::Rgb;
    pub const BLUE: Rgb = Rgb::new(0x00, 0x72, 0xB2);
    pub const SKY_BLUE: Rgb = Rgb::new(0x56, 0xB4, 0xE9);
    pub const ORANGE: Rgb = Rgb::new(0xE6, 0x9F, 0x00);
    pub const YELLOW: Rgb = Rgb::new(0xF0, 0xE4, 0x42);
    pub const GREEN: Rgb = Rgb::new(0x00, 0x9E, 0x73);
    pub const VERMILLION: Rgb = Rgb::new(0xD5, 0x5E, 0x00);
    pub const PURPLE: Rgb = Rgb::new(0xCC, 0x79, 0xA7);
    pub const WHITE: Rgb = Rgb::new(0xFF, 0xFF, 0xFF);
}

/// A brightness pattern over time (0–255).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// Constant.
    Solid(u8),
    /// `count` full-brightness flashes of `on_ms`, `gap_ms` apart, every `period_ms`; `base`
    /// the rest of the time.
    Flashes {
        count: u8,
        on_ms: u16,
        gap_ms: u16,
        period_ms: u16,
        base: u8,
    },
    /// Smooth rise and fall between `low` and full over `period_ms`.
    Breathe { period_ms: u16, low: u8 },
    /// Rises from dark to full over `period_ms`, then starts again.
    Ramp { period_ms: u16 },
    /// `base` plus the transmit level on top.
    Level { base: u8 },
}

/// How a ring or strip of addressable LEDs draws the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingShape {
    /// Every pixel the same.
    Uniform,
    /// A bright head with a fading tail goes round once per `period_ms`.
    Spin { period_ms: u16 },
    /// Pixels light one after another as the envelope rises (progress).
    Fill,
    /// A level meter: pixels lit in proportion to the level, the rest at the base glow.
    Meter,
    /// Even and odd pixels take turns with each flash.
    Alternate,
    /// Only every other pixel takes part.
    EveryOther,
}

/// The look of one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    pub envelope: Envelope,
    pub colour: Rgb,
    pub ring: RingShape,
    /// What a person should read from it.
    pub meaning: &'static str,
    /// The pattern in words, for the docs.
    pub pattern: &'static str,
    pub colour_name: &'static str,
}

const fn flashes(count: u8, on_ms: u16, gap_ms: u16, period_ms: u16, base: u8) -> Envelope {
    Envelope::Flashes {
        count,
        on_ms,
        gap_ms,
        period_ms,
        base,
    }
}

/// The table: one look per state.
pub const fn look(state: LedState) -> Look {
    use palette::*;
    match state {
        LedState::Booting => Look {
            envelope: Envelope::Ramp { period_ms: 1000 },
            colour: WHITE,
            ring: RingShape::Fill,
            meaning: "starting up",
            pattern: "fast ramp up (1 s), again and again",
            colour_name: "white",
        },
        LedState::Connecting | LedState::Reconnecting => Look {
            envelope: flashes(1, 500, 0, 1000, 0),
            colour: SKY_BLUE,
            ring: RingShape::Spin { period_ms: 1000 },
            meaning: "looking for the stage (first time, or after losing it)",
            pattern: "even blink, 1 per second",
            colour_name: "sky blue",
        },
        LedState::Offline => Look {
            envelope: flashes(1, 100, 0, 3000, 0),
            colour: SKY_BLUE,
            ring: RingShape::Uniform,
            meaning: "no stage for over a minute; still trying",
            pattern: "dark, one short flash every 3 s",
            colour_name: "sky blue",
        },
        LedState::Audience => Look {
            envelope: Envelope::Solid(40),
            colour: BLUE,
            ring: RingShape::Uniform,
            meaning: "listening in the audience",
            pattern: "steady dim glow",
            colour_name: "blue",
        },
        LedState::HandRaised => Look {
            envelope: Envelope::Breathe {
                period_ms: 2000,
                low: 20,
            },
            colour: ORANGE,
            ring: RingShape::Uniform,
            meaning: "hand raised, waiting for a moderator",
            pattern: "slow breathing (2 s)",
            colour_name: "orange",
        },
        LedState::Invited => Look {
            envelope: flashes(1, 125, 0, 250, 0),
            colour: YELLOW,
            ring: RingShape::Alternate,
            meaning: "invited to speak: PTT accepts, hand declines",
            pattern: "fast blink, 4 per second",
            colour_name: "yellow",
        },
        LedState::SpeakerIdle => Look {
            envelope: Envelope::Solid(140),
            colour: GREEN,
            ring: RingShape::Uniform,
            meaning: "on stage, not transmitting: hold PTT to talk",
            pattern: "steady, half bright",
            colour_name: "bluish green",
        },
        LedState::Live => Look {
            envelope: Envelope::Level { base: 170 },
            colour: VERMILLION,
            ring: RingShape::Meter,
            meaning: "live: the microphone is on air",
            pattern: "full brightness, flickering with the voice",
            colour_name: "vermillion",
        },
        LedState::Muted => Look {
            envelope: flashes(2, 120, 120, 1500, 40),
            colour: PURPLE,
            ring: RingShape::Uniform,
            meaning: "on stage but muted by a moderator: PTT does nothing",
            pattern: "dim glow with a double flash every 1.5 s",
            colour_name: "reddish purple",
        },
        LedState::Error => Look {
            envelope: flashes(3, 150, 150, 2000, 0),
            colour: VERMILLION,
            ring: RingShape::Uniform,
            meaning: "the server refuses this station (credentials, stage) or is not the configured one (certificate), the sound device is gone, or the configuration has a mistake (`stagebox-report.txt` says which): needs a person",
            pattern: "triple flash every 2 s",
            colour_name: "vermillion",
        },
        LedState::ButtonStuck => Look {
            envelope: flashes(5, 60, 60, 1500, 0),
            colour: VERMILLION,
            ring: RingShape::EveryOther,
            meaning: "a button is held too long (stuck?): not transmitting until it is released",
            pattern: "burst of 5 quick flashes every 1.5 s",
            colour_name: "vermillion",
        },
        LedState::Updating => Look {
            envelope: Envelope::Ramp { period_ms: 3000 },
            colour: WHITE,
            ring: RingShape::Fill,
            meaning: "installing an update: do not unplug",
            pattern: "slow ramp up (3 s), again and again",
            colour_name: "white",
        },
    }
}

/// The envelope's brightness `t_ms` after the state began, with the transmit `level`
/// (0–100).
pub fn envelope_at(envelope: Envelope, t_ms: u64, level: u8) -> u8 {
    match envelope {
        Envelope::Solid(b) => b,
        Envelope::Flashes {
            count,
            on_ms,
            gap_ms,
            period_ms,
            base,
        } => {
            let phase = t_ms % u64::from(period_ms.max(1));
            let slot = u64::from(on_ms) + u64::from(gap_ms);
            let index = phase / slot.max(1);
            let in_slot = phase % slot.max(1);
            if index < u64::from(count) && in_slot < u64::from(on_ms) {
                255
            } else {
                base
            }
        }
        Envelope::Breathe { period_ms, low } => {
            let period = u64::from(period_ms.max(2));
            let phase = t_ms % period;
            let half = period / 2;
            let up = if phase < half { phase } else { period - phase };
            let span = u64::from(255 - low);
            low + u8::try_from(span * up / half).unwrap_or(255 - low)
        }
        Envelope::Ramp { period_ms } => {
            let period = u64::from(period_ms.max(1));
            u8::try_from(255 * (t_ms % period) / period).unwrap_or(255)
        }
        Envelope::Level { base } => {
            let level = u16::from(level.min(100));
            base + u8::try_from(u16::from(255 - base) * level / 100).unwrap_or(255 - base)
        }
    }
}

/// A single LED's brightness (0–255): the envelope alone.
pub fn single(state: LedState, t_ms: u64, level: u8) -> u8 {
    envelope_at(look(state).envelope, t_ms, level)
}

/// An RGB LED's colour: the state's hue at the envelope's brightness.
pub fn rgb(state: LedState, t_ms: u64, level: u8) -> Rgb {
    let l = look(state);
    l.colour.scaled(envelope_at(l.envelope, t_ms, level))
}

/// Fills `pixels` (a ring or strip, in wiring order) for the state.
pub fn ring(state: LedState, t_ms: u64, level: u8, pixels: &mut [Rgb]) {
    let l = look(state);
    let n = pixels.len();
    if n == 0 {
        return;
    }
    let b = envelope_at(l.envelope, t_ms, level);
    match l.ring {
        RingShape::Uniform => pixels.fill(l.colour.scaled(b)),
        RingShape::Spin { period_ms } => {
            let period = u64::from(period_ms.max(1));
            let head = usize::try_from((t_ms % period) * n as u64 / period).unwrap_or(0);
            for (i, p) in pixels.iter_mut().enumerate() {
                let behind = (head + n - i) % n;
                *p = match behind {
                    0 => l.colour,
                    1 if n > 3 => l.colour.scaled(90),
                    2 if n > 6 => l.colour.scaled(25),
                    _ => Rgb::OFF,
                };
            }
        }
        RingShape::Fill => {
            let lit = (usize::from(b) * n).div_ceil(255);
            for (i, p) in pixels.iter_mut().enumerate() {
                *p = if i < lit { l.colour } else { Rgb::OFF };
            }
        }
        RingShape::Meter => {
            let base = match l.envelope {
                Envelope::Level { base } => base / 3,
                _ => 60,
            };
            let lit = (usize::from(level.min(100)) * n).div_ceil(100).max(1);
            for (i, p) in pixels.iter_mut().enumerate() {
                *p = l.colour.scaled(if i < lit { 255 } else { base });
            }
        }
        RingShape::Alternate => {
            let flash = match l.envelope {
                Envelope::Flashes { period_ms, .. } => t_ms / u64::from(period_ms.max(1)),
                _ => 0,
            };
            let turn = usize::from(flash % 2 == 1);
            for (i, p) in pixels.iter_mut().enumerate() {
                *p = if i % 2 == turn {
                    l.colour.scaled(b)
                } else {
                    Rgb::OFF
                };
            }
        }
        RingShape::EveryOther => {
            for (i, p) in pixels.iter_mut().enumerate() {
                *p = if i % 2 == 0 {
                    l.colour.scaled(b)
                } else {
                    Rgb::OFF
                };
            }
        }
    }
}

/// Whether the state's look changes over time (drivers refresh only those).
pub fn is_animated(state: LedState) -> bool {
    !matches!(look(state).envelope, Envelope::Solid(_))
}

/// The table as Markdown, as `docs/leds.md` shows it.
pub fn table_markdown() -> String {
    let mut out = String::from(
        "| state | what it means | single LED (pattern) | RGB LED (colour) | ring |\n\
         |---|---|---|---|---|\n",
    );
    for state in LedState::ALL {
        let l = look(state);
        let ring = match l.ring {
            RingShape::Uniform => "all lights, same pattern",
            RingShape::Spin { .. } => "one light spinning, 1 turn per second",
            RingShape::Fill => "lights fill round as it ramps",
            RingShape::Meter => "level meter over a dim glow",
            RingShape::Alternate => "halves alternate with each blink",
            RingShape::EveryOther => "every other light, same pattern",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            state.name(),
            l.meaning,
            l.pattern,
            l.colour_name,
            ring
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a person sees of a single LED over six seconds, sampled every 10 ms while the
    /// station talks at a speech-like level: the mean brightness, the number of times it
    /// lights up (crossing half brightness upwards), the share of time it is brighter than
    /// half, the share of time it is fading (between a quarter and three quarters), and how
    /// often it jumps (changes by more than a third of full scale from one sample to the
    /// next).
    fn signature(state: LedState) -> (f64, u32, f64, f64, u32) {
        signature_and_burst(state).0
    }

    /// The signature, and the most flashes seen within 800 ms (a burst a person counts).
    fn signature_and_burst(state: LedState) -> ((f64, u32, f64, f64, u32), usize) {
        let mut rise_times = Vec::new();
        let mut sum = 0.0;
        let mut fading = 0;
        let mut jumps = 0;
        let mut last = None;
        let mut rises = 0;
        let mut bright = 0;
        let mut was_bright = false;
        let samples = 600u64;
        for i in 0..samples {
            let t = i * 10;
            let level = [70u8, 40, 85, 55, 20, 90][(i / 7 % 6) as usize];
            let b = single(state, t, level);
            sum += f64::from(b) / 255.0;
            let is_bright = b > 127;
            if is_bright && !was_bright && i > 0 {
                rises += 1;
                rise_times.push(t);
            }
            if is_bright {
                bright += 1;
            }
            if (64..192).contains(&b) {
                fading += 1;
            }
            if last.is_some_and(|l: u8| l.abs_diff(b) > 85) {
                jumps += 1;
            }
            last = Some(b);
            was_bright = is_bright;
        }
        let burst = rise_times
            .iter()
            .map(|t0| {
                rise_times
                    .iter()
                    .filter(|t| (*t0..*t0 + 800).contains(*t))
                    .count()
            })
            .max()
            .unwrap_or(0);
        (
            (
                sum / samples as f64,
                rises,
                f64::from(bright) / samples as f64,
                f64::from(fading) / samples as f64,
                jumps,
            ),
            burst,
        )
    }

    #[test]
    fn every_state_differs_by_pattern_not_only_hue() {
        // Connecting and reconnecting mean the same to a person and look the same.
        let distinct: Vec<LedState> = LedState::ALL
            .into_iter()
            .filter(|s| *s != LedState::Reconnecting)
            .collect();
        for (i, a) in distinct.iter().enumerate() {
            for b in &distinct[i + 1..] {
                let ((ma, ra, da, fa, ja), ba) = signature_and_burst(*a);
                let ((mb, rb, db, fb, jb), bb) = signature_and_burst(*b);
                // Steady against flashing, smooth against abrupt, a different number of
                // flashes per burst or in all, brightness, on-time or fading: each is visible
                // without telling hues apart.
                let apart = (ma - mb).abs() >= 0.15
                    || ba != bb
                    || (ja == 0) != (jb == 0)
                    || (ra == 0) != (rb == 0)
                    || ra.abs_diff(rb) >= 2
                    || (da - db).abs() >= 0.2
                    || (fa - fb).abs() >= 0.2;
                assert!(
                    apart,
                    "{a:?} {:?} and {b:?} {:?} look alike on one LED",
                    signature_and_burst(*a),
                    signature_and_burst(*b)
                );
            }
        }
        assert_eq!(
            look(LedState::Connecting),
            look(LedState::Reconnecting),
            "one look for 'looking for the stage'"
        );
    }

    #[test]
    fn invited_demands_attention_and_audience_does_not() {
        let (_, invited_rises, _, _, _) = signature(LedState::Invited);
        let (_, audience_rises, audience_bright, _, _) = signature(LedState::Audience);
        assert!(invited_rises >= 20, "{invited_rises}");
        assert_eq!((audience_rises, audience_bright), (0, 0.0));
    }

    #[test]
    fn envelopes_follow_their_definition() {
        let muted = look(LedState::Muted).envelope;
        let at = |t| envelope_at(muted, t, 0);
        assert_eq!(
            (at(0), at(119), at(120), at(240), at(359), at(360)),
            (255, 255, 40, 255, 255, 40)
        );
        assert_eq!(at(1500), 255);
        let breathe = Envelope::Breathe {
            period_ms: 2000,
            low: 20,
        };
        assert_eq!(envelope_at(breathe, 0, 0), 20);
        assert_eq!(envelope_at(breathe, 1000, 0), 255);
        assert_eq!(envelope_at(breathe, 1500, 0), envelope_at(breathe, 500, 0));
        let live = Envelope::Level { base: 170 };
        assert_eq!(
            (
                envelope_at(live, 0, 0),
                envelope_at(live, 0, 100),
                envelope_at(live, 0, 250)
            ),
            (170, 255, 255)
        );
    }

    #[test]
    fn rgb_is_the_hue_at_the_single_led_brightness() {
        for state in LedState::ALL {
            for t in (0..4000).step_by(37) {
                let b = single(state, t, 50);
                assert_eq!(rgb(state, t, 50), look(state).colour.scaled(b));
            }
        }
    }

    #[test]
    fn ring_shapes() {
        let mut px = [Rgb::OFF; 12];
        ring(LedState::Live, 0, 50, &mut px);
        let lit = px.iter().filter(|p| **p == palette::VERMILLION).count();
        assert_eq!(lit, 6);
        ring(LedState::Live, 0, 0, &mut px);
        assert_eq!(px.iter().filter(|p| **p == palette::VERMILLION).count(), 1);
        ring(LedState::Connecting, 250, 0, &mut px);
        assert_eq!(px[3], palette::SKY_BLUE);
        assert_eq!(px.iter().filter(|p| **p == Rgb::OFF).count(), 9);
        ring(LedState::Invited, 0, 0, &mut px);
        let first: Vec<bool> = px.iter().map(|p| *p != Rgb::OFF).collect();
        ring(LedState::Invited, 250, 0, &mut px);
        let second: Vec<bool> = px.iter().map(|p| *p != Rgb::OFF).collect();
        assert!(
            first.iter().zip(&second).all(|(a, b)| a != b),
            "{first:?} {second:?}"
        );
        ring(LedState::Updating, 1500, 0, &mut px);
        assert_eq!(px.iter().filter(|p| **p == palette::WHITE).count(), 6);
        let mut empty: [Rgb; 0] = [];
        ring(LedState::Live, 0, 50, &mut empty);
    }

    #[test]
    fn the_table_has_a_row_per_state() {
        let table = table_markdown();
        assert_eq!(table.lines().count(), 2 + LedState::ALL.len());
        for s in LedState::ALL {
            assert!(table.contains(&format!("| {} |", s.name())));
        }
    }
}
