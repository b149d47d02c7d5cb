//! Voice activity detection: frame energy against an adaptive noise floor.
//!
//! The floor is the minimum frame level over the last ~1.5 s (minimum statistics over
//! sub-windows), so steady background noise is learned within that time while speech, which
//! always has quieter gaps between syllables, is not. A frame is voice when it stands `margin_db` above the floor
//! and above an absolute threshold. The hangover that keeps word tails lives in
//! [`crate::gate`]. (The full DSP chain with a learned VAD comes later; this is the seam.)

/// Tuning of the detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// Voice must stand this far above the noise floor.
    pub margin_db: f32,
    /// Nothing quieter than this is voice.
    pub min_level_db: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            margin_db: 9.0,
            min_level_db: -50.0,
        }
    }
}

/// Sub-windows in the minimum search.
const SUBWINDOWS: usize = 8;

#[derive(Debug, Clone)]
pub struct Vad {
    cfg: VadConfig,
    /// Minimum of each finished sub-window, oldest overwritten first.
    minima: [f32; SUBWINDOWS],
    next_minimum: usize,
    /// Running minimum of the current sub-window.
    current_min: f32,
    frames_in_current: u32,
    frames_per_subwindow: u32,
    last_level_db: f32,
}

/// Level of a frame in dBFS (RMS relative to full scale); -100 for digital silence.
pub fn level_dbfs(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return -100.0;
    }
    let sum: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / frame.len() as f64).sqrt() / 32768.0;
    if rms <= 1e-5 {
        -100.0
    } else {
        (20.0 * rms.log10()) as f32
    }
}

impl Vad {
    /// A detector for frames of `frame_ms` milliseconds.
    pub fn new(cfg: VadConfig, frame_ms: u32) -> Vad {
        // 8 sub-windows of ~200 ms: the floor follows a rise in noise within ~1.6 s.
        let frames_per_subwindow = (200 / frame_ms.max(1)).max(1);
        Vad {
            cfg,
            minima: [-90.0; SUBWINDOWS],
            next_minimum: 0,
            current_min: f32::MAX,
            frames_in_current: 0,
            frames_per_subwindow,
            last_level_db: -100.0,
        }
    }

    /// The current noise floor estimate, in dBFS.
    pub fn floor_db(&self) -> f32 {
        self.minima
            .iter()
            .copied()
            .fold(self.current_min, f32::min)
            .max(-90.0)
    }

    /// Whether `frame` holds voice.
    pub fn is_voice(&mut self, frame: &[i16]) -> bool {
        let level = level_dbfs(frame);
        self.last_level_db = level;
        self.current_min = self.current_min.min(level);
        self.frames_in_current += 1;
        if self.frames_in_current >= self.frames_per_subwindow {
            self.minima[self.next_minimum] = self.current_min;
            self.next_minimum = (self.next_minimum + 1) % SUBWINDOWS;
            self.current_min = f32::MAX;
            self.frames_in_current = 0;
        }
        level > self.cfg.min_level_db && level > self.floor_db() + self.cfg.margin_db
    }

    /// Level of the last frame seen, in dBFS.
    pub fn last_level_db(&self) -> f32 {
        self.last_level_db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(amplitude: f32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (amplitude * 32767.0 * (i as f32 * 0.1).sin()) as i16)
            .collect()
    }

    #[test]
    fn levels() {
        assert_eq!(level_dbfs(&[0; 960]), -100.0);
        let full = tone(1.0, 9600);
        assert!(
            (level_dbfs(&full) + 3.0).abs() < 0.2,
            "{}",
            level_dbfs(&full)
        );
    }

    #[test]
    fn speech_over_noise_is_voice_noise_alone_is_not() {
        let mut vad = Vad::new(VadConfig::default(), 20);
        let mut seed = 1u32;
        let mut noise = || -> Vec<i16> {
            (0..960)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    ((seed >> 16) as i16) / 64 // about -48 dBFS
                })
                .collect()
        };
        for _ in 0..100 {
            let n = noise();
            vad.is_voice(&n);
        }
        let n = noise();
        assert!(!vad.is_voice(&n), "steady noise is learned as the floor");
        assert!(vad.is_voice(&tone(0.3, 960)));
        assert!(!vad.is_voice(&[0; 960]));
    }
}
