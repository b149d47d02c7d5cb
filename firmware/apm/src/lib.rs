//! # stagebox-apm — the WebRTC audio processing module, one 10 ms frame at a time
//!
//! A station's loudspeaker stands a hand's width from its microphones. This crate removes it
//! from them — and noise, rumble and level differences with it — using the WebRTC audio
//! processing module as Debian ships it (`libwebrtc-audio-processing`, the echo canceller
//! PulseAudio uses): acoustic echo cancellation in delay-agnostic, extended-filter mode (it
//! finds the delay between what was played and what the microphones heard by itself), noise
//! suppression, adaptive digital gain control with a limiter, a high-pass filter and voice
//! activity detection.
//!
//! Why this crate holds `unsafe`: the `webrtc-audio-processing` crate's safe wrapper
//! collects a `Vec` of channel pointers on every call, and the station's audio thread may not
//! allocate after start-up. This crate calls the same C++ shim (from
//! `webrtc-audio-processing-sys`) with the pointer array on the stack; every `unsafe` block
//! says why it holds. Mono only: the beamformer makes one channel of the microphone array
//! first.
//!
//! The audio thread owns an [`Apm`]: [`Apm::process_render`] with each period it plays,
//! [`Apm::process_capture`] with each period the microphones captured.
#![allow(unsafe_code)]

use std::ptr::NonNull;

use thiserror::Error;
use webrtc_audio_processing_sys as ffi;

/// Samples in one frame: 10 ms at 48 kHz, mono.
pub const FRAME: usize = 480;

#[derive(Debug, Clone, Copy, Error, PartialEq, Eq)]
pub enum ApmError {
    #[error("the audio processing module could not be created (error {0})")]
    Create(i32),
    #[error("the audio processing module failed on a frame (error {0})")]
    Process(i32),
}

/// How hard noise is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseSuppression {
    Off,
    Low,
    Moderate,
    High,
    VeryHigh,
}

/// What the module does to the microphone signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApmConfig {
    pub echo_cancellation: bool,
    pub noise_suppression: NoiseSuppression,
    /// Adaptive digital gain towards `agc_target_dbfs` below full scale, with a limiter;
    /// `None`: no gain control.
    pub agc_target_dbfs: Option<u8>,
    pub high_pass: bool,
    pub voice_detection: bool,
}

impl Default for ApmConfig {
    fn default() -> Self {
        ApmConfig {
            echo_cancellation: true,
            noise_suppression: NoiseSuppression::Moderate,
            agc_target_dbfs: Some(3),
            high_pass: true,
            // The module's own detector (a GMM of the 2011 WebRTC) takes the canceller's
            // residual echo for voice; the station's level detector on the processed signal
            // does not, so that one decides by default.
            voice_detection: false,
        }
    }
}

impl ApmConfig {
    /// Everything off: the module passes the signal through.
    pub fn bypass() -> ApmConfig {
        ApmConfig {
            echo_cancellation: false,
            noise_suppression: NoiseSuppression::Off,
            agc_target_dbfs: None,
            high_pass: false,
            voice_detection: false,
        }
    }

    fn to_ffi(self) -> ffi::Config {
        let (ns_enable, ns_level) = match self.noise_suppression {
            NoiseSuppression::Off => (false, ffi::NoiseSuppression_SuppressionLevel::LOW),
            NoiseSuppression::Low => (true, ffi::NoiseSuppression_SuppressionLevel::LOW),
            NoiseSuppression::Moderate => (true, ffi::NoiseSuppression_SuppressionLevel::MODERATE),
            NoiseSuppression::High => (true, ffi::NoiseSuppression_SuppressionLevel::HIGH),
            NoiseSuppression::VeryHigh => (true, ffi::NoiseSuppression_SuppressionLevel::VERY_HIGH),
        };
        ffi::Config {
            echo_cancellation: ffi::EchoCancellation {
                enable: self.echo_cancellation,
                suppression_level: ffi::EchoCancellation_SuppressionLevel::MODERATE,
                enable_extended_filter: true,
                enable_delay_agnostic: true,
                stream_delay_ms: ffi::OptionalInt {
                    has_value: false,
                    value: 0,
                },
            },
            gain_control: ffi::GainControl {
                enable: self.agc_target_dbfs.is_some(),
                mode: ffi::GainControl_Mode::ADAPTIVE_DIGITAL,
                target_level_dbfs: i32::from(self.agc_target_dbfs.unwrap_or(3).min(31)),
                compression_gain_db: 9,
                enable_limiter: true,
            },
            noise_suppression: ffi::NoiseSuppression {
                enable: ns_enable,
                suppression_level: ns_level,
            },
            voice_detection: ffi::VoiceDetection {
                enable: self.voice_detection,
                detection_likelihood: ffi::VoiceDetection_DetectionLikelihood::MODERATE,
            },
            enable_transient_suppressor: false,
            enable_high_pass_filter: self.high_pass,
        }
    }
}

/// What the module reports about the last capture frame.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ApmStats {
    pub has_voice: Option<bool>,
    pub has_echo: Option<bool>,
    /// Echo return loss (how much quieter the echo is than what was played), dB.
    pub echo_return_loss_db: Option<f64>,
    /// Echo return loss enhancement (how much the canceller removed), dB.
    pub echo_return_loss_enhancement_db: Option<f64>,
    /// Estimated delay from playback to capture, ms.
    pub echo_delay_ms: Option<i32>,
}

fn opt_bool(o: ffi::OptionalBool) -> Option<bool> {
    o.has_value.then_some(o.value)
}

fn opt_f64(o: ffi::OptionalDouble) -> Option<f64> {
    // The module reports -100 for "not measured yet".
    (o.has_value && o.value > -100.0).then_some(o.value)
}

fn opt_int(o: ffi::OptionalInt) -> Option<i32> {
    (o.has_value && o.value >= 0).then_some(o.value)
}

/// One audio processing module, mono in and out at 48 kHz.
pub struct Apm {
    inner: NonNull<ffi::AudioProcessing>,
    config: ApmConfig,
}

// SAFETY: the module is a plain C++ object with no thread affinity; `Apm` owns it alone and
// every method takes `&mut self` or `&self` for reads the C++ side does without mutation of
// shared state, so moving it to the audio thread is sound.
unsafe impl Send for Apm {}

impl Apm {
    pub fn new(config: ApmConfig) -> Result<Apm, ApmError> {
        let init = ffi::InitializationConfig {
            num_capture_channels: 1,
            num_render_channels: 1,
            enable_experimental_agc: false,
            enable_intelligibility_enhancer: false,
        };
        let mut code = 0;
        // SAFETY: `init` and `code` are valid for the call; the shim returns null on failure.
        let raw = unsafe { ffi::audio_processing_create(&init, &mut code) };
        let inner = NonNull::new(raw).ok_or(ApmError::Create(code))?;
        let mut apm = Apm { inner, config };
        apm.set_config(config);
        Ok(apm)
    }

    pub fn config(&self) -> ApmConfig {
        self.config
    }

    /// Changes what the module does, from the next frame on.
    pub fn set_config(&mut self, config: ApmConfig) {
        self.config = config;
        let c = config.to_ffi();
        // SAFETY: `inner` is a live module (created in `new`, freed only in `drop`) and `c`
        // outlives the call, which copies it.
        unsafe { ffi::set_config(self.inner.as_ptr(), &c) };
    }

    fn run(
        &mut self,
        frame: &mut [f32; FRAME],
        f: unsafe extern "C" fn(*mut ffi::AudioProcessing, *mut *mut f32) -> i32,
    ) -> Result<(), ApmError> {
        let mut channels = [frame.as_mut_ptr()];
        // SAFETY: `inner` is live; `channels` holds one pointer to `FRAME` (= the shim's
        // NUM_SAMPLES_PER_FRAME) floats, matching the one channel the module was created
        // with; the module reads and writes that frame in place and keeps no pointer to it.
        let code = unsafe { f(self.inner.as_ptr(), channels.as_mut_ptr()) };
        // SAFETY: a pure function of the code.
        if unsafe { ffi::is_success(code) } {
            Ok(())
        } else {
            Err(ApmError::Process(code))
        }
    }

    /// What the loudspeaker plays now (the echo canceller's reference), samples in −1…1.
    pub fn process_render(&mut self, frame: &mut [f32; FRAME]) -> Result<(), ApmError> {
        self.run(frame, ffi::process_render_frame)
    }

    /// What the microphones captured now; processed in place, samples in −1…1.
    pub fn process_capture(&mut self, frame: &mut [f32; FRAME]) -> Result<(), ApmError> {
        self.run(frame, ffi::process_capture_frame)
    }

    /// About the last capture frame.
    pub fn stats(&self) -> ApmStats {
        // SAFETY: `inner` is live; the shim returns a plain struct by value.
        let s = unsafe { ffi::get_stats(self.inner.as_ptr()) };
        ApmStats {
            has_voice: opt_bool(s.has_voice),
            has_echo: opt_bool(s.has_echo),
            echo_return_loss_db: opt_f64(s.echo_return_loss),
            echo_return_loss_enhancement_db: opt_f64(s.echo_return_loss_enhancement),
            echo_delay_ms: opt_int(s.delay_median_ms),
        }
    }
}

impl Drop for Apm {
    fn drop(&mut self) {
        // SAFETY: `inner` came from `audio_processing_create` and is freed exactly once.
        unsafe { ffi::audio_processing_delete(self.inner.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A voice-like signal: a 200 Hz buzz with harmonics, syllables of 200 ms.
    fn talker(n: usize, seed: f32) -> f32 {
        let t = n as f32 / 48_000.0;
        let on = ((t * 5.0 + seed) as usize) % 3 != 2;
        if !on {
            return 0.0;
        }
        let f0 = 150.0 + 60.0 * seed + 30.0 * (t * 2.0).sin();
        (1..6)
            .map(|h| (2.0 * std::f32::consts::PI * f0 * h as f32 * t).sin() / h as f32)
            .sum::<f32>()
            * 0.2
    }

    fn energy(x: &[f32]) -> f64 {
        x.iter().map(|&s| f64::from(s) * f64::from(s)).sum()
    }

    /// Runs `seconds` of far-end talk through an echo path (35 ms, −6 dB) into the
    /// microphone, with the near end talking from `near_from` seconds on. Returns the
    /// energy in and out of the capture side over the far-end-only part after `settle`
    /// seconds, and the module.
    fn echo_run(config: ApmConfig, seconds: usize) -> (f64, f64, Apm) {
        let mut apm = Apm::new(config).unwrap();
        let delay = 48 * 35;
        let total = seconds * 48_000;
        let far: Vec<f32> = (0..total).map(|n| talker(n, 0.0)).collect();
        let (mut e_in, mut e_out) = (0.0, 0.0);
        for start in (0..total).step_by(FRAME) {
            let mut render: [f32; FRAME] = std::array::from_fn(|i| far[start + i]);
            apm.process_render(&mut render).unwrap();
            let mut mic: [f32; FRAME] = std::array::from_fn(|i| {
                let n = start + i;
                if n >= delay {
                    far[n - delay] * 0.5
                } else {
                    0.0
                }
            });
            let before = energy(&mic);
            apm.process_capture(&mut mic).unwrap();
            if start > 3 * 48_000 {
                e_in += before;
                e_out += energy(&mic);
            }
        }
        (e_in, e_out, apm)
    }

    #[test]
    fn the_echo_of_the_loudspeaker_is_removed() {
        let config = ApmConfig {
            noise_suppression: NoiseSuppression::Off,
            agc_target_dbfs: None,
            ..ApmConfig::default()
        };
        let (e_in, e_out, apm) = echo_run(config, 8);
        let erle = 10.0 * (e_in / e_out.max(1e-12)).log10();
        assert!(erle > 20.0, "echo reduced by only {erle:.1} dB");
        let (e_in, e_out, _) = echo_run(ApmConfig::bypass(), 4);
        assert!(
            (e_in / e_out - 1.0).abs() < 0.05,
            "bypass changed the signal"
        );
        let stats = apm.stats();
        assert!(stats.echo_delay_ms.is_some(), "{stats:?}");
    }

    #[test]
    fn near_end_speech_passes_and_is_voice() {
        let mut apm = Apm::new(ApmConfig {
            voice_detection: true,
            ..ApmConfig::default()
        })
        .unwrap();
        let (mut voiced, mut e_in, mut e_out) = (0, 0.0, 0.0);
        for start in (0..4 * 48_000).step_by(FRAME) {
            let mut silence = [0.0; FRAME];
            apm.process_render(&mut silence).unwrap();
            let mut mic: [f32; FRAME] = std::array::from_fn(|i| talker(start + i, 0.7));
            e_in += energy(&mic);
            apm.process_capture(&mut mic).unwrap();
            e_out += energy(&mic);
            if apm.stats().has_voice == Some(true) {
                voiced += 1;
            }
        }
        assert!(voiced > 100, "voice in {voiced} of 400 frames");
        assert!(e_out > e_in * 0.3, "near end lost: {e_in} in, {e_out} out");
    }
}
