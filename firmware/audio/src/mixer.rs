//! Mixing speakers into one output with ducking and a limiter. Fixed buffers, no allocation.

use crate::frame::PERIOD_SAMPLES;

/// Gain applied to everyone else while the priority speaker talks (about -12 dB).
pub const DUCK_GAIN: f32 = 0.25;
/// How fast a gain rises again (release), per 10 ms period: from ducked to full in 250 ms.
/// Falling (attack) takes one period.
pub const RELEASE_PER_PERIOD: f32 = 0.03;
/// Speakers mixed at most when more talk at once: the loudest.
pub const MAX_MIXED: usize = 4;

#[derive(Debug, Clone)]
pub struct Mixer {
    acc: [f32; PERIOD_SAMPLES],
    gain: f32,
}

impl Default for Mixer {
    fn default() -> Self {
        Self::new()
    }
}

impl Mixer {
    pub fn new() -> Mixer {
        Mixer {
            acc: [0.0; PERIOD_SAMPLES],
            gain: 1.0,
        }
    }

    pub fn clear(&mut self) {
        self.acc = [0.0; PERIOD_SAMPLES];
    }

    /// Adds one period of a source at `gain`.
    pub fn add(&mut self, pcm: &[i16], gain: f32) {
        self.add_ramped(pcm, gain, gain);
    }

    /// Adds one period of a source whose gain moves from `from` to `to` across the period
    /// (a ramp, so a change of gain never clicks).
    pub fn add_ramped(&mut self, pcm: &[i16], from: f32, to: f32) {
        let n = pcm.len().max(1) as f32;
        for (i, (a, &s)) in self.acc.iter_mut().zip(pcm).enumerate() {
            let g = from + (to - from) * (i as f32 + 1.0) / n;
            *a += f32::from(s) * g;
        }
    }

    /// Writes the mix into `out` through a peak limiter: instant attack, release of about
    /// 6 dB per 100 ms, so overlapping speakers never clip.
    pub fn finish(&mut self, out: &mut [i16]) {
        let peak = self.acc.iter().fold(0f32, |m, &a| m.max(a.abs()));
        let needed = if peak * self.gain > 32767.0 {
            32767.0 / peak
        } else {
            1.0
        };
        let target = needed.min(1.0);
        let start = self.gain;
        let end = if target < self.gain {
            target
        } else {
            (self.gain * 1.07).min(1.0)
        };
        let n = out.len().min(PERIOD_SAMPLES) as f32;
        for (i, (o, &a)) in out.iter_mut().zip(&self.acc).enumerate() {
            let g = start + (end - start) * (i as f32 / n);
            let g = g.min(if peak > 0.0 { 32767.0 / peak } else { 1.0 });
            *o = (a * g).clamp(-32768.0, 32767.0) as i16;
        }
        self.gain = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_ducks_and_never_clips() {
        let mut m = Mixer::new();
        let loud = [30000i16; PERIOD_SAMPLES];
        m.clear();
        m.add(&loud, 1.0);
        m.add(&loud, 1.0);
        let mut out = [0i16; PERIOD_SAMPLES];
        m.finish(&mut out);
        assert!(out.iter().all(|&s| s > 30000), "limited, not wrapped");

        let mut m = Mixer::new();
        m.clear();
        m.add(&[1000; PERIOD_SAMPLES], 1.0);
        m.add(&[1000; PERIOD_SAMPLES], DUCK_GAIN);
        m.finish(&mut out);
        assert_eq!(out[10], 1250);
    }
}
