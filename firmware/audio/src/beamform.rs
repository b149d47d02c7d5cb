//! Delay-and-sum beamforming: the microphone array's channels made into one, steered to the
//! station's front (+y in the board's geometry: x right, y forward, z up, millimetres).
//!
//! A talker in front is far away compared to the array, so their voice reaches each
//! microphone `(p · front) / c` earlier than it reaches the array's origin. Delaying each
//! channel by what it is early lines the talker up across the array: their voice adds in
//! phase, sound from elsewhere (the room, the loudspeaker beside the array) adds partly out of
//! phase and is attenuated. With one microphone, no geometry, or an array across the front
//! (the 2-mic HAT, whose microphones lie along x) every delay is 0 and this is a plain
//! downmix. Whole-sample delays: at 48 kHz the error is at most 10 µs, a twentieth of a period
//! at 5 kHz.
//!
//! Fixed buffers, no allocation after construction.

use crate::frame::PERIOD_SAMPLES;

/// Most microphones steered.
pub const MAX_MICS: usize = 8;
/// Longest delay, samples: 64 at 48 kHz is 1.3 ms, 46 cm of sound — larger than any HAT.
pub const MAX_DELAY: usize = 64;

const SPEED_OF_SOUND_MM_PER_S: f32 = 343_000.0;

#[derive(Debug, Clone)]
pub struct Beamformer {
    channels: usize,
    /// (capture channel, delay in samples) per microphone.
    mics: heapless::Vec<(usize, usize), MAX_MICS>,
    /// The last `MAX_DELAY` samples of each microphone, for the delayed reads.
    history: [[i16; MAX_DELAY]; MAX_MICS],
}

impl Beamformer {
    /// `channels`: interleaved channels in a captured period; `mics`: which carry
    /// microphones; `geometry_mm`: their positions (empty or of another length: no steering).
    /// Channels past `channels` and microphones past [`MAX_MICS`] are ignored.
    pub fn new(channels: usize, mics: &[u16], geometry_mm: &[[f32; 3]]) -> Beamformer {
        let channels = channels.max(1);
        let steer = geometry_mm.len() == mics.len();
        // How early each microphone hears a talker in front, in samples.
        let early: Vec<f32> = mics
            .iter()
            .enumerate()
            .map(|(i, _)| match geometry_mm.get(i) {
                Some(p) if steer => p[1] / SPEED_OF_SOUND_MM_PER_S * 48_000.0,
                _ => 0.0,
            })
            .collect();
        let latest = early.iter().copied().fold(f32::INFINITY, f32::min);
        let mut list = heapless::Vec::new();
        for (&channel, &e) in mics.iter().zip(&early) {
            let channel = usize::from(channel);
            if channel >= channels {
                continue;
            }
            let delay = ((e - latest).round().max(0.0) as usize).min(MAX_DELAY - 1);
            if list.push((channel, delay)).is_err() {
                break;
            }
        }
        if list.is_empty() {
            let _ = list.push((0, 0));
        }
        Beamformer {
            channels,
            mics: list,
            history: [[0; MAX_DELAY]; MAX_MICS],
        }
    }

    /// Each microphone's delay, samples.
    pub fn delays(&self) -> impl Iterator<Item = usize> + '_ {
        self.mics.iter().map(|&(_, d)| d)
    }

    /// One interleaved period in, one mono period out.
    pub fn process(&mut self, interleaved: &[i16], mono: &mut [i16; PERIOD_SAMPLES]) {
        let count = self.mics.len() as i32;
        let frames = interleaved.len() / self.channels;
        for (n, out) in mono.iter_mut().enumerate() {
            let mut sum = 0i32;
            for (m, &(channel, delay)) in self.mics.iter().enumerate() {
                let sample = if n >= delay {
                    interleaved
                        .get((n - delay) * self.channels + channel)
                        .copied()
                        .unwrap_or(0)
                } else {
                    self.history[m][MAX_DELAY - (delay - n)]
                };
                sum += i32::from(sample);
            }
            *out = (sum / count) as i16;
        }
        // Keep the period's last samples for the next one's delayed reads.
        for (m, &(channel, _)) in self.mics.iter().enumerate() {
            let h = &mut self.history[m];
            h.copy_within(frames.min(MAX_DELAY).., 0);
            let keep = frames.min(MAX_DELAY);
            for k in 0..keep {
                let n = frames - keep + k;
                h[MAX_DELAY - keep + k] = interleaved
                    .get(n * self.channels + channel)
                    .copied()
                    .unwrap_or(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plane wave from direction `dir` (unit vector) over a 4-mic square array, captured
    /// for several periods; returns the output energy after the first period.
    fn steered_energy(dir: [f32; 3]) -> f64 {
        let geometry = [
            [-32.0, 32.0, 0.0],
            [32.0, 32.0, 0.0],
            [32.0, -32.0, 0.0],
            [-32.0, -32.0, 0.0],
        ];
        let mut bf = Beamformer::new(4, &[0, 1, 2, 3], &geometry);
        let mut energy = 0.0;
        let mut mono = [0i16; PERIOD_SAMPLES];
        for period in 0..10 {
            let interleaved: Vec<i16> = (0..PERIOD_SAMPLES * 4)
                .map(|i| {
                    let (n, mic) = (period * PERIOD_SAMPLES + i / 4, i % 4);
                    let p = geometry[mic];
                    // A microphone further along `dir` hears the wave earlier.
                    let lead = (p[0] * dir[0] + p[1] * dir[1]) / SPEED_OF_SOUND_MM_PER_S;
                    let t = n as f32 + lead * 48_000.0;
                    (8000.0 * (2.0 * std::f32::consts::PI * 3000.0 * t / 48_000.0).sin()) as i16
                })
                .collect();
            bf.process(&interleaved, &mut mono);
            if period > 0 {
                energy += mono.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
            }
        }
        energy
    }

    #[test]
    fn a_talker_in_front_adds_up_and_sound_from_the_side_does_not() {
        let front = steered_energy([0.0, 1.0, 0.0]);
        let side = steered_energy([1.0, 0.0, 0.0]);
        let gain_db = 10.0 * (front / side).log10();
        assert!(gain_db > 3.0, "front only {gain_db:.1} dB above the side");
    }

    #[test]
    fn across_the_front_or_without_geometry_it_is_a_downmix() {
        let mut two = Beamformer::new(2, &[0, 1], &[[-29.0, 0.0, 0.0], [29.0, 0.0, 0.0]]);
        assert_eq!(two.delays().collect::<Vec<_>>(), vec![0, 0]);
        let mut mono = [0i16; PERIOD_SAMPLES];
        let input: Vec<i16> = (0..PERIOD_SAMPLES).flat_map(|_| [100i16, 300]).collect();
        two.process(&input, &mut mono);
        assert!(mono.iter().all(|&s| s == 200));
        // A microphone channel past the capture channels, and no geometry: channel 0 alone.
        let mut one = Beamformer::new(1, &[0, 3], &[]);
        one.process(&[7i16; PERIOD_SAMPLES], &mut mono);
        assert!(mono.iter().all(|&s| s == 7));
    }
}
