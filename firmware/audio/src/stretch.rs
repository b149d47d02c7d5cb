//! Playing a stream a little faster or slower without a gap: one pitch period of decoded
//! speech taken out or repeated, cross-faded (the idea of NetEQ's "accelerate" and
//! "preemptive expand", a WSOLA step).
//!
//! A sender's clock is never the station's: a browser's microphone, another station's sound
//! card or a fake capture device delivers its 20 ms frames a little faster or slower than the
//! station plays them (a fraction of a per cent; Chromium's fake microphone about 1 %). A
//! stream that never pauses — a browser sends without DTX — then either piles up delay or
//! runs dry, frame after frame. The jitter buffer says when a frame plays behind or ahead of
//! its ideal time ([`crate::jitter::Pace`]); the playout path then shortens or lengthens the
//! decoded audio by one period of its pitch, where the audio is periodic enough that doing so
//! is not heard (the two periods cross-faded correlate at 0.9 or more, NetEQ's threshold), or
//! quiet enough that nothing is there to hear.
//!
//! Fixed-size scratch, no allocation; the search runs on a 4:1 decimated copy and is refined
//! at the full rate around the best lag.

/// Shortest period searched: 2.5 ms (a 400 Hz voice).
pub const MIN_PERIOD: usize = 120;
/// Longest period searched: 15 ms (a 67 Hz voice), when 30 ms of audio are at hand.
pub const MAX_PERIOD: usize = 720;
/// Samples of audio looked at: two of the longest periods.
pub const ANALYSIS: usize = 2 * MAX_PERIOD;

const DECIMATION: usize = 4;
/// The least window a correlation is measured over (5 ms): shorter ones find likeness in
/// anything slow.
const MIN_WINDOW: usize = 240;
/// Correlation of the two periods above which one may be taken out or repeated unheard.
const PERIODIC: f32 = 0.9;
/// Below this mean square (about −46 dBFS) the audio is too quiet for a seam to be heard.
const QUIET_MEAN_SQUARE: f32 = 160.0 * 160.0;

/// The pitch search's scratch (the decimated signal).
#[derive(Debug, Clone)]
pub struct Stretcher {
    decimated: [f32; ANALYSIS / DECIMATION],
}

impl Default for Stretcher {
    fn default() -> Self {
        Stretcher::new()
    }
}

impl Stretcher {
    pub const fn new() -> Stretcher {
        Stretcher {
            decimated: [0.0; ANALYSIS / DECIMATION],
        }
    }

    /// Takes one pitch period out of `buf[..len]` (audio not yet played; `buf[0]` follows
    /// what was): the first two periods become one, cross-faded. Returns the samples taken
    /// out, 0 when the audio is neither periodic nor quiet enough (left as it was).
    pub fn shorten(&mut self, buf: &mut [i16], len: usize) -> usize {
        let len = len.min(buf.len());
        let Some(period) = self.period(&buf[..len]) else {
            return 0;
        };
        for i in 0..period {
            let w = (i + 1) as f32 / period as f32;
            buf[i] = mix(buf[i], buf[i + period], w);
        }
        buf.copy_within(2 * period..len, period);
        period
    }

    /// Repeats one pitch period of `buf[..len]`, which must have room behind it: the first
    /// period, then the second fading into the first again, then the rest. Returns the
    /// samples added, 0 when the audio is neither periodic nor quiet enough or there is no
    /// room (left as it was).
    pub fn lengthen(&mut self, buf: &mut [i16], len: usize) -> usize {
        let len = len.min(buf.len());
        let room = buf.len() - len;
        let Some(period) = self.period(&buf[..len]).filter(|&p| p <= room) else {
            return 0;
        };
        buf.copy_within(period..len, 2 * period);
        for i in 0..period {
            let w = (i + 1) as f32 / period as f32;
            buf[period + i] = mix(buf[2 * period + i], buf[i], w);
        }
        period
    }

    /// The pitch period at the start of `x` that may be taken out or repeated unheard.
    fn period(&mut self, x: &[i16]) -> Option<usize> {
        let n = x.len().min(ANALYSIS);
        let x = &x[..n];
        let longest = (n / 2).min(MAX_PERIOD);
        if longest < MIN_PERIOD {
            return None;
        }
        let d = &mut self.decimated[..n / DECIMATION];
        for (k, v) in d.iter_mut().enumerate() {
            let s = &x[k * DECIMATION..(k + 1) * DECIMATION];
            *v = s.iter().map(|&v| f32::from(v)).sum::<f32>() / DECIMATION as f32;
        }
        let d = &self.decimated[..n / DECIMATION];
        let best = (MIN_PERIOD / DECIMATION..=longest / DECIMATION)
            .filter_map(|lag| {
                let window = lag.max(MIN_WINDOW / DECIMATION);
                correlation(d, lag, window).map(|c| (lag, c))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        let around = best.0 * DECIMATION;
        let (period, corr) = (around.saturating_sub(DECIMATION - 1)..=around + DECIMATION - 1)
            .filter(|&lag| (MIN_PERIOD..=longest).contains(&lag))
            .filter_map(|lag| {
                let window = lag.max(MIN_WINDOW);
                correlation_i16(x, lag, window).map(|c| (lag, c))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        let energy: f32 = x[..2 * period]
            .iter()
            .map(|&v| f32::from(v) * f32::from(v))
            .sum();
        let quiet = energy / ((2 * period) as f32) < QUIET_MEAN_SQUARE;
        (corr >= PERIODIC || quiet).then_some(period)
    }
}

fn mix(from: i16, to: i16, w: f32) -> i16 {
    let v = f32::from(from) * (1.0 - w) + f32::from(to) * w;
    v.round().clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
}

/// Normalized correlation of `x[..window]` with `x[lag..lag + window]` (`None` when it does
/// not fit or either is silent).
fn correlation(x: &[f32], lag: usize, window: usize) -> Option<f32> {
    let (a, b) = (x.get(..window)?, x.get(lag..lag + window)?);
    let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
    for (&p, &q) in a.iter().zip(b) {
        ab += p * q;
        aa += p * p;
        bb += q * q;
    }
    (aa > 0.0 && bb > 0.0).then(|| ab / (aa * bb).sqrt())
}

fn correlation_i16(x: &[i16], lag: usize, window: usize) -> Option<f32> {
    let (a, b) = (x.get(..window)?, x.get(lag..lag + window)?);
    let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
    for (&p, &q) in a.iter().zip(b) {
        let (p, q) = (f32::from(p), f32::from(q));
        ab += p * q;
        aa += p * p;
        bb += q * q;
    }
    (aa > 0.0 && bb > 0.0).then(|| ab / (aa * bb).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vowel-like tone: 150 Hz with two harmonics (a period of 320 samples).
    fn vowel(n: usize, phase: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = (i + phase) as f32 / 48_000.0;
                let w = 2.0 * core::f32::consts::PI * 150.0 * t;
                (4000.0 * w.sin() + 2000.0 * (2.0 * w).sin() + 1000.0 * (3.0 * w).sin()) as i16
            })
            .collect()
    }

    /// Seeded noise at about −16 dBFS.
    fn noise(n: usize, seed: u64) -> Vec<i16> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) % 10_000) as i16 - 5_000
            })
            .collect()
    }

    /// The largest jump between neighbouring samples.
    fn largest_step(x: &[i16]) -> i32 {
        x.windows(2)
            .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn a_periodic_frame_loses_one_whole_period_and_stays_smooth() {
        let mut buf = vowel(960, 0);
        let smooth = largest_step(&buf);
        let removed = Stretcher::new().shorten(&mut buf, 960);
        assert_eq!(
            removed % 320,
            0,
            "a multiple of the 320-sample period: {removed}"
        );
        assert!(removed > 0);
        let out = &buf[..960 - removed];
        assert!(
            largest_step(out) <= smooth + 2,
            "a seam: {}",
            largest_step(out)
        );
        // What is left continues the tone where the frame ended.
        assert_eq!(out[out.len() - 1], vowel(960, 0)[959]);
    }

    #[test]
    fn a_periodic_frame_gains_one_period_and_stays_smooth() {
        let mut buf = vowel(960, 37);
        buf.resize(960 + MAX_PERIOD, 0);
        let smooth = largest_step(&buf[..960]);
        let added = Stretcher::new().lengthen(&mut buf, 960);
        assert!(added > 0 && added % 320 == 0, "{added}");
        let out = &buf[..960 + added];
        assert!(
            largest_step(out) <= smooth + 2,
            "a seam: {}",
            largest_step(out)
        );
        assert_eq!(out[out.len() - 1], vowel(960, 37)[959]);
        assert_eq!(out[..added], vowel(960, 37)[..added]);
    }

    #[test]
    fn loud_noise_is_left_alone_and_quiet_noise_is_not() {
        let loud = noise(960, 7);
        let mut buf = loud.clone();
        assert_eq!(Stretcher::new().shorten(&mut buf, 960), 0);
        assert_eq!(buf, loud, "left as it was");
        let mut quiet: Vec<i16> = noise(960, 9).iter().map(|&v| v / 100).collect();
        assert!(Stretcher::new().shorten(&mut quiet, 960) >= MIN_PERIOD);
    }

    #[test]
    fn too_little_audio_or_no_room_changes_nothing() {
        let mut s = Stretcher::new();
        let mut short = vowel(200, 0);
        assert_eq!(s.shorten(&mut short, 200), 0);
        let mut full = vowel(960, 0);
        assert_eq!(s.lengthen(&mut full, 960), 0, "no room behind the audio");
        assert_eq!(full, vowel(960, 0));
        assert_eq!(s.shorten(&mut [], 0), 0);
    }
}
