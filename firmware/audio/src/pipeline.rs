//! The two halves of the station's audio path, period by period (10 ms):
//!
//! - [`CapturePath`]: the beamformed microphone → audio processing (high-pass, echo
//!   cancellation against what the station plays, noise suppression, gain control, voice
//!   detection: [`stagebox_apm`]) → VAD → silence gate → Opus → [`MediaFrame`] with RTP
//!   sequence, timestamp and marker.
//! - [`PlayoutPath`]: [`MediaFrame`]s from any number of speakers → per-speaker jitter buffer
//!   and decoder (FEC, PLC) → a pitch period shortened or lengthened when the stream plays
//!   late or early ([`crate::stretch`]) → mixer with ducking under the priority speaker → limiter.
//!
//! Both are built once at start-up and never allocate afterwards.

use stagebox_apm::{Apm, ApmConfig, ApmError, FRAME as APM_FRAME};
use thiserror::Error;

use crate::codec::{CodecError, EncoderConfig, OpusDecoder, OpusEncoder};
use crate::frame::{FrameDuration, MAX_FRAME_SAMPLES, MAX_OPUS_PACKET, MediaFrame, PERIOD_SAMPLES};
use crate::gate::{GateConfig, GateDecision, SilenceGate, SpurtChange};
use crate::jitter::{JitterBuffer, JitterConfig, JitterStats, Pace, Playout};
use crate::mixer::{DUCK_GAIN, MAX_MIXED, Mixer, RELEASE_PER_PERIOD};
use crate::stretch::{MAX_PERIOD, Stretcher};
use crate::vad::{Vad, VadConfig};

/// Most speakers mixed at once.
pub const MAX_STREAMS: usize = 8;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum AudioError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("period of {0} samples, expected {PERIOD_SAMPLES} per channel")]
    PeriodSize(usize),
    #[error(transparent)]
    Processing(#[from] ApmError),
}

#[derive(Debug, Clone, Copy)]
pub struct CaptureConfig {
    pub encoder: EncoderConfig,
    pub vad: VadConfig,
    pub gate: GateConfig,
    /// Echo cancellation, noise suppression, gain control, high-pass and voice detection;
    /// `None`: the microphone goes to the encoder as it is (tests, measurements).
    pub processing: Option<ApmConfig>,
}

/// What the processing chain reports, for the station's status.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CaptureStats {
    /// Estimated delay from the loudspeaker back into the microphones, ms.
    pub echo_delay_ms: Option<i32>,
    /// How much the echo canceller removed, dB.
    pub echo_return_loss_enhancement_db: Option<f64>,
    /// How much quieter the echo is than what was played, dB.
    pub echo_return_loss_db: Option<f64>,
    /// Frames the processing module failed on (sent unprocessed).
    pub processing_errors: u64,
}

impl CaptureConfig {
    pub fn new(frame: FrameDuration) -> CaptureConfig {
        CaptureConfig {
            encoder: EncoderConfig {
                frame,
                ..EncoderConfig::default()
            },
            vad: VadConfig::default(),
            gate: GateConfig::for_frame_ms(frame.ms()),
            processing: None,
        }
    }
}

/// The processing module and its work buffer: the capture chain between the beamformer and
/// the encoder (public for the measurements that run it on recorded rooms).
pub struct Processing {
    apm: Apm,
    work: [f32; APM_FRAME],
    /// Voice in any period of the frame being captured.
    voice_in_frame: bool,
    periods: u32,
    stats: CaptureStats,
}

impl Processing {
    pub fn new(config: ApmConfig) -> Result<Processing, AudioError> {
        Ok(Processing {
            apm: Apm::new(config)?,
            work: [0.0; APM_FRAME],
            voice_in_frame: false,
            periods: 0,
            stats: CaptureStats::default(),
        })
    }

    /// What the processing chain reports (updated every 50 periods).
    pub fn stats(&self) -> CaptureStats {
        self.stats
    }

    fn load(&mut self, pcm: &[i16]) {
        for (w, &s) in self.work.iter_mut().zip(pcm) {
            *w = f32::from(s) / 32768.0;
        }
    }

    /// What the loudspeaker plays now, one period.
    pub fn render(&mut self, played: &[i16]) {
        self.load(played);
        if self.apm.process_render(&mut self.work).is_err() {
            self.stats.processing_errors += 1;
        }
    }

    /// Processes one captured period into `out`.
    pub fn capture(&mut self, mono: &[i16], out: &mut [i16]) {
        self.load(mono);
        if self.apm.process_capture(&mut self.work).is_err() {
            self.stats.processing_errors += 1;
            out.copy_from_slice(mono);
            return;
        }
        for (o, &w) in out.iter_mut().zip(&self.work) {
            *o = (w * 32768.0).clamp(-32768.0, 32767.0) as i16;
        }
        let s = self.apm.stats();
        self.voice_in_frame |= s.has_voice.unwrap_or(false);
        self.periods = self.periods.wrapping_add(1);
        if self.periods % 50 == 0 {
            self.stats.echo_delay_ms = s.echo_delay_ms;
            self.stats.echo_return_loss_enhancement_db = s.echo_return_loss_enhancement_db;
            self.stats.echo_return_loss_db = s.echo_return_loss_db;
        }
    }
}

/// What one completed frame produced.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureOutput {
    /// A packet to send, if the gate let one through.
    pub frame: Option<MediaFrame>,
    /// Start or end of a talk spurt.
    pub spurt: Option<SpurtChange>,
    /// Level of the frame in dBFS, for the LED meter and diagnostics.
    pub level_db: f32,
}

pub struct CapturePath {
    frame: FrameDuration,
    processing: Option<Processing>,
    pcm: [i16; MAX_FRAME_SAMPLES],
    filled: usize,
    silence: [i16; MAX_FRAME_SAMPLES],
    packet: [u8; MAX_OPUS_PACKET],
    vad: Vad,
    gate: SilenceGate,
    encoder: OpusEncoder,
    timestamp: u32,
}

impl CapturePath {
    /// `initial_timestamp` should be random (RFC 3550 §5.1). Sequence numbers are the media
    /// link's: it numbers everything it sends.
    pub fn new(cfg: CaptureConfig, initial_timestamp: u32) -> Result<CapturePath, AudioError> {
        let processing = cfg.processing.map(Processing::new).transpose()?;
        Ok(CapturePath {
            frame: cfg.encoder.frame,
            processing,
            pcm: [0; MAX_FRAME_SAMPLES],
            filled: 0,
            silence: [0; MAX_FRAME_SAMPLES],
            packet: [0; MAX_OPUS_PACKET],
            vad: Vad::new(cfg.vad, cfg.encoder.frame.ms()),
            gate: SilenceGate::new(cfg.gate),
            encoder: OpusEncoder::new(cfg.encoder)?,
            timestamp: initial_timestamp,
        })
    }

    pub fn in_spurt(&self) -> bool {
        self.gate.in_spurt()
    }

    /// The RTP timestamp of the frame being captured now: the audio clock.
    pub fn rtp_clock(&self) -> u32 {
        self.timestamp.wrapping_add(self.filled as u32)
    }

    /// What the loudspeaker plays now, one period: the echo canceller's reference.
    pub fn push_reference(&mut self, played: &[i16; PERIOD_SAMPLES]) {
        if let Some(p) = self.processing.as_mut() {
            p.render(played);
        }
    }

    /// What the processing chain reports.
    pub fn stats(&self) -> CaptureStats {
        self.processing
            .as_ref()
            .map_or_else(CaptureStats::default, Processing::stats)
    }

    /// Expected loss on the way to the listeners, in percent: how much in-band FEC to send.
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), AudioError> {
        Ok(self.encoder.set_expected_loss(percent)?)
    }

    /// Feeds one 10 ms mono period. `allowed`: the station may transmit now. `ssrc`: the
    /// session's SSRC. Returns an output each time a frame completes.
    pub fn push_period(
        &mut self,
        mono: &[i16],
        allowed: bool,
        ssrc: u32,
    ) -> Result<Option<CaptureOutput>, AudioError> {
        if mono.len() != PERIOD_SAMPLES {
            return Err(AudioError::PeriodSize(mono.len()));
        }
        let n = self.frame.samples();
        let period = &mut self.pcm[self.filled..self.filled + PERIOD_SAMPLES];
        match self.processing.as_mut() {
            Some(p) => p.capture(mono, period),
            None => period.copy_from_slice(mono),
        }
        self.filled += PERIOD_SAMPLES;
        if self.filled < n {
            return Ok(None);
        }
        self.filled = 0;
        // The level detector always runs (the LED meter); the processing module's voice
        // detector decides where there is one.
        let energy_voice = self.vad.is_voice(&self.pcm[..n]);
        let voice = match self.processing.as_mut() {
            Some(p) if p.apm.config().voice_detection => std::mem::take(&mut p.voice_in_frame),
            _ => energy_voice,
        };
        let (decision, spurt) = self.gate.decide(voice, allowed);
        let timestamp = self.timestamp;
        self.timestamp = self.timestamp.wrapping_add(n as u32);
        let (source, marker) = match decision {
            GateDecision::Skip => {
                return Ok(Some(CaptureOutput {
                    frame: None,
                    spurt,
                    level_db: self.vad.last_level_db(),
                }));
            }
            GateDecision::Send { marker } => (&self.pcm[..n], marker),
            GateDecision::SendSilence => (&self.silence[..n], false),
        };
        let len = self.encoder.encode(source, &mut self.packet)?;
        let frame = MediaFrame::new(ssrc, 0, timestamp, marker, &self.packet[..len]);
        Ok(Some(CaptureOutput {
            frame,
            spurt,
            level_db: self.vad.last_level_db(),
        }))
    }
}

/// Counters of the playout side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayoutStats {
    pub jitter: JitterStats,
    /// Frames from an SSRC that found no free stream slot.
    pub dropped_no_slot: u64,
    pub decode_errors: u64,
}

struct Stream {
    ssrc: Option<u32>,
    jitter: JitterBuffer,
    decoder: OpusDecoder,
    /// Decoded samples not yet played (a period less one, a frame, a period repeated).
    fifo: [i16; FIFO_SAMPLES],
    /// Shortens and lengthens decoded frames when the stream plays late or early.
    stretcher: Stretcher,
    fifo_len: usize,
    /// Samples per frame of this stream (from the last decoded packet).
    frame_samples: usize,
    idle_periods: u32,
    /// This period's audio, when the stream has some.
    period: [i16; PERIOD_SAMPLES],
    has_period: bool,
    /// Smoothed mean square of the stream's audio: who is loudest when too many talk.
    level: f32,
    /// The gain the stream was last mixed at, and the listener's own gain for this speaker.
    gain_now: f32,
    gain: f32,
}

const FIFO_SAMPLES: usize = PERIOD_SAMPLES + MAX_FRAME_SAMPLES + MAX_PERIOD;

/// A decoded frame below this RMS (about −60 dBFS) is quiet: it may be left out to shorten
/// the delay, and a gap right after it is the end of a talk spurt, not a loss.
const QUIET_RMS: f32 = 32.0;

fn is_quiet(pcm: &[i16]) -> bool {
    if pcm.is_empty() {
        return true;
    }
    let energy: f32 = pcm.iter().map(|&s| f32::from(s) * f32::from(s)).sum();
    energy / (pcm.len() as f32) < QUIET_RMS * QUIET_RMS
}

impl Stream {
    /// Makes sure one period is in the fifo (decoding, recovering or concealing as the jitter
    /// buffer says), unless the stream is idle. Returns whether a period is available.
    fn fill(&mut self, now_us: u64, errors: &mut u64) -> bool {
        while self.fifo_len < PERIOD_SAMPLES {
            let start = self.fifo_len;
            let out = &mut self.fifo[start..start + MAX_FRAME_SAMPLES];
            let (result, pace) = match self.jitter.pop(now_us) {
                Playout::Idle => return false,
                Playout::Packet { payload, pace } => (self.decoder.decode(payload, out), pace),
                Playout::Fec(p) => (
                    self.decoder.decode_fec(p, &mut out[..self.frame_samples]),
                    Pace::OnTime,
                ),
                Playout::Conceal => (
                    self.decoder.conceal(&mut out[..self.frame_samples]),
                    Pace::OnTime,
                ),
            };
            match result {
                Ok(n) if n > 0 => {
                    let n = n.min(MAX_FRAME_SAMPLES);
                    let quiet = is_quiet(&self.fifo[start..start + n]);
                    self.jitter.set_last_quiet(quiet);
                    self.frame_samples = n.clamp(PERIOD_SAMPLES, MAX_FRAME_SAMPLES);
                    self.jitter.set_frame_samples(self.frame_samples as u32);
                    let end = start + n;
                    self.fifo_len = match pace {
                        Pace::QuietMayGo
                        | Pace::Late {
                            may_leave_out: true,
                        } if quiet => {
                            // Behind after waiting: leave the quiet frame out.
                            self.jitter.frame_left_out();
                            continue;
                        }
                        Pace::Late { .. } => {
                            let removed = self.stretcher.shorten(&mut self.fifo, end);
                            if removed > 0 {
                                self.jitter.frame_shortened();
                            }
                            end - removed
                        }
                        Pace::Early => {
                            let added = self.stretcher.lengthen(&mut self.fifo, end);
                            if added > 0 {
                                self.jitter.frame_lengthened();
                            }
                            end + added
                        }
                        Pace::OnTime | Pace::QuietMayGo => end,
                    };
                }
                _ => {
                    *errors += 1;
                    let n = self.frame_samples;
                    self.fifo[start..start + n].fill(0);
                    self.fifo_len += n;
                    self.jitter.set_last_quiet(true);
                }
            }
        }
        true
    }

    fn take_period(&mut self) {
        self.period.copy_from_slice(&self.fifo[..PERIOD_SAMPLES]);
        self.fifo.copy_within(PERIOD_SAMPLES..self.fifo_len, 0);
        self.fifo_len -= PERIOD_SAMPLES;
    }
}

pub struct PlayoutPath {
    /// Built once at construction, never resized.
    streams: Box<[Stream]>,
    mixer: Mixer,
    priority: Option<u32>,
    stats: PlayoutStats,
    /// Set on the first period that carried decoded audio, until taken.
    first_audio: Option<bool>,
}

impl PlayoutPath {
    pub fn new(jitter: JitterConfig) -> Result<PlayoutPath, AudioError> {
        let mut streams = Vec::with_capacity(MAX_STREAMS);
        for _ in 0..MAX_STREAMS {
            streams.push(Stream {
                ssrc: None,
                jitter: JitterBuffer::new(jitter),
                decoder: OpusDecoder::new()?,
                fifo: [0; FIFO_SAMPLES],
                stretcher: Stretcher::new(),
                fifo_len: 0,
                frame_samples: MAX_FRAME_SAMPLES,
                idle_periods: 0,
                period: [0; PERIOD_SAMPLES],
                has_period: false,
                level: 0.0,
                gain_now: 0.0,
                gain: 1.0,
            });
        }
        Ok(PlayoutPath {
            streams: streams.into_boxed_slice(),
            mixer: Mixer::new(),
            priority: None,
            stats: PlayoutStats::default(),
            first_audio: Some(false),
        })
    }

    /// Everyone but this SSRC is ducked while it plays.
    pub fn set_priority(&mut self, ssrc: Option<u32>) {
        self.priority = ssrc;
    }

    pub fn stats(&self) -> PlayoutStats {
        let mut s = self.stats;
        s.jitter = JitterStats::default();
        for st in &self.streams {
            s.jitter.add(&st.jitter.stats());
        }
        s
    }

    /// The listener's own gain for one speaker (0 to 4), while that speaker holds a slot.
    pub fn set_speaker_gain(&mut self, ssrc: u32, gain: f32) {
        if let Some(s) = self.streams.iter_mut().find(|s| s.ssrc == Some(ssrc)) {
            s.gain = gain.clamp(0.0, 4.0);
        }
    }

    /// One speaker's figures, while that speaker holds a stream slot.
    pub fn stream_stats(&self, ssrc: u32) -> Option<JitterStats> {
        self.streams
            .iter()
            .find(|s| s.ssrc == Some(ssrc))
            .map(|s| s.jitter.stats())
    }

    /// True once, on the first call after audio was first played.
    pub fn take_first_audio(&mut self) -> bool {
        if self.first_audio == Some(true) {
            self.first_audio = None;
            return true;
        }
        false
    }

    /// A received frame and when it arrived (µs, on the clock [`Self::next_period`] gets).
    /// Frames from a new SSRC take a free slot, or that of a stream not playing now that has
    /// played least, so a flood of strangers cannot push out a speaker between sentences.
    pub fn push(&mut self, frame: MediaFrame, arrival_us: u64) {
        let ssrc = frame.ssrc;
        let idx = match self.streams.iter().position(|s| s.ssrc == Some(ssrc)) {
            Some(i) => i,
            None => {
                let free = self
                    .streams
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.ssrc.is_none() || !s.jitter.is_playing())
                    // A free slot, else the stream that played least (a stranger's one packet
                    // before a speaker between sentences), else the one idle longest.
                    .max_by_key(|(_, s)| {
                        let played = s.jitter.stats().played;
                        (s.ssrc.is_none(), std::cmp::Reverse(played), s.idle_periods)
                    })
                    .map(|(i, _)| i);
                let Some(i) = free else {
                    self.stats.dropped_no_slot += 1;
                    return;
                };
                let s = &mut self.streams[i];
                s.ssrc = Some(ssrc);
                s.jitter.reset();
                if s.decoder.reset().is_err() {
                    self.stats.decode_errors += 1;
                }
                s.fifo_len = 0;
                s.idle_periods = 0;
                s.has_period = false;
                s.level = 0.0;
                s.gain = 1.0;
                i
            }
        };
        self.streams[idx].jitter.push(frame, arrival_us);
    }

    /// Produces the 10 ms of output that start playing at `now_us`: the loudest
    /// [`MAX_MIXED`] speakers, everyone but the priority speaker ducked while they talk (the
    /// duck falls within 10 ms and rises over 250 ms; a speaker left out fades within
    /// 10 ms), each at the listener's gain for them, through the limiter.
    pub fn next_period(&mut self, now_us: u64, out: &mut [i16; PERIOD_SAMPLES]) {
        self.mixer.clear();
        let priority_active = self.priority.is_some_and(|p| {
            self.streams
                .iter()
                .any(|s| s.ssrc == Some(p) && s.jitter.is_playing())
        });
        let mut any = false;
        for s in self.streams.iter_mut() {
            let had_period = s.has_period;
            s.has_period = false;
            if s.ssrc.is_none() || !s.fill(now_us, &mut self.stats.decode_errors) {
                s.idle_periods = s.idle_periods.saturating_add(1);
                s.gain_now = 0.0;
                continue;
            }
            s.idle_periods = 0;
            s.take_period();
            s.has_period = true;
            let energy: f32 = s.period.iter().map(|&x| f32::from(x) * f32::from(x)).sum();
            let mean_square = energy / PERIOD_SAMPLES as f32;
            s.level = if had_period {
                0.7 * s.level + 0.3 * mean_square
            } else {
                mean_square
            };
            if !had_period {
                // A speaker starting: at their gain at once, no fade-in over their first word.
                s.gain_now = f32::NAN;
            }
            any = true;
        }
        for i in 0..self.streams.len() {
            let s = &self.streams[i];
            if !s.has_period {
                continue;
            }
            let louder = self
                .streams
                .iter()
                .filter(|o| o.has_period && o.level > s.level)
                .count();
            let duck = if priority_active && s.ssrc != self.priority {
                DUCK_GAIN
            } else {
                1.0
            };
            let target = if louder < MAX_MIXED {
                s.gain * duck
            } else {
                0.0
            };
            let from = if s.gain_now.is_nan() {
                target
            } else {
                s.gain_now
            };
            let to = if target <= from {
                target
            } else {
                (from + RELEASE_PER_PERIOD).min(target)
            };
            if from > 0.0 || to > 0.0 {
                self.mixer.add_ramped(&s.period, from, to);
            }
            self.streams[i].gain_now = to;
        }
        self.mixer.finish(out);
        if any && self.first_audio == Some(false) {
            self.first_audio = Some(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speech_like(period: usize) -> [i16; PERIOD_SAMPLES] {
        // A 300 Hz tone switched on for 1 s, off for 1 s.
        let on = (period / 100) % 2 == 0;
        core::array::from_fn(|i| {
            if !on {
                return 0;
            }
            let t = (period * PERIOD_SAMPLES + i) as f32 / 48000.0;
            (6000.0 * (2.0 * std::f32::consts::PI * 300.0 * t).sin()) as i16
        })
    }

    #[test]
    fn silence_suppression_sends_nothing_in_silence_and_marks_spurts() {
        for frame in [FrameDuration::Ms10, FrameDuration::Ms20] {
            let mut cap = CapturePath::new(CaptureConfig::new(frame), 1000).unwrap();
            let mut sent = Vec::new();
            for p in 0..400 {
                if let Some(out) = cap.push_period(&speech_like(p), true, 7).unwrap()
                    && let Some(f) = out.frame
                {
                    sent.push((p, f.marker, f.timestamp));
                }
            }
            let markers = sent.iter().filter(|s| s.1).count();
            assert_eq!(markers, 2, "{frame:?}: one marker per talk spurt");
            // Each 1 s spurt: 1 s of frames + 300 ms hangover + 3 silence frames.
            let per_spurt = (1000 + 300) / frame.ms() as usize + 3;
            assert!(
                sent.len().abs_diff(2 * per_spurt) <= 2,
                "{frame:?}: {} packets, expected about {}",
                sent.len(),
                2 * per_spurt
            );
            // Timestamps follow the audio clock: one frame apart within a spurt, a jump of the
            // silence's length between spurts.
            let step = frame.samples() as u32;
            let jumps: Vec<u32> = sent
                .windows(2)
                .map(|w| w[1].2 - w[0].2)
                .filter(|&d| d != step)
                .collect();
            assert_eq!(jumps.len(), 1, "{frame:?}: {jumps:?}");
            assert!(jumps[0] > 10 * step);
        }
    }

    #[test]
    fn capture_to_playout_loopback_reproduces_the_tone() {
        let frame = FrameDuration::Ms20;
        let mut cap = CapturePath::new(CaptureConfig::new(frame), 0).unwrap();
        // No cautious start: the first frame plays as soon as it is here.
        let mut play = PlayoutPath::new(JitterConfig {
            start_target_us: 0,
            ..JitterConfig::default()
        })
        .unwrap();
        let mut out = [0i16; PERIOD_SAMPLES];
        let mut energy = 0f64;
        let mut first = None;
        let mut seq = 0u16;
        for p in 0..100 {
            if let Some(o) = cap.push_period(&speech_like(p), true, 42).unwrap()
                && let Some(f) = o.frame
            {
                play.push(numbered(f, &mut seq), p as u64 * 10_000);
            }
            play.next_period(p as u64 * 10_000, &mut out);
            if play.take_first_audio() {
                first = Some(p);
            }
            energy += out.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
        }
        assert!(
            first.is_some_and(|p| p <= 3),
            "first audio at period {first:?}"
        );
        let rms = (energy / (100.0 * PERIOD_SAMPLES as f64)).sqrt();
        assert!(rms > 2500.0, "rms {rms}");
        assert_eq!(play.stats().jitter.concealed, 0);
    }

    #[test]
    fn not_allowed_sends_nothing() {
        let mut cap = CapturePath::new(CaptureConfig::new(FrameDuration::Ms10), 0).unwrap();
        for p in 0..50 {
            let o = cap.push_period(&speech_like(p), false, 1).unwrap().unwrap();
            assert!(o.frame.is_none());
        }
        assert!(cap.push_period(&[0; 10], true, 1).is_err());
    }

    /// A vowel whose pitch glides between 120 and 220 Hz, never pausing, sample `i`.
    fn endless_vowel(i: usize) -> i16 {
        use std::f64::consts::PI;
        let t = i as f64 / 48_000.0;
        // The phase of 170 Hz + 50 Hz · sin(2π · 0.3 Hz · t).
        let phase = 2.0 * PI * 170.0 * t - 50.0 / 0.3 * (2.0 * PI * 0.3 * t).cos();
        (5000.0 * phase.sin() + 2500.0 * (2.0 * phase).sin() + 1200.0 * (3.0 * phase).sin()) as i16
    }

    /// A speaker that never pauses (a browser sends without DTX) and whose clock runs `ppm`
    /// millionths fast (positive) or slow: its 20 ms frames arrive 5 ms after it made them,
    /// over 30 s of the station's clock. The listener's figures, the frames sent, and the
    /// periods of silence once audio had started.
    fn drifting_speaker(ppm: i64) -> (JitterStats, u64, usize) {
        let mut encoder = OpusEncoder::new(EncoderConfig::default()).unwrap();
        let mut play = PlayoutPath::new(JitterConfig::default()).unwrap();
        let frame_us = 20_000 * (1_000_000 - ppm) / 1_000_000;
        let (mut pcm, mut packet) = ([0i16; 960], [0u8; MAX_OPUS_PACKET]);
        let mut out = [0i16; PERIOD_SAMPLES];
        let (mut sent, mut started, mut silent) = (0usize, false, 0);
        for p in 0..3_000u64 {
            let now = p * 10_000;
            loop {
                let arrival = (sent as i64 + 1) * frame_us + 5_000;
                if arrival > now as i64 {
                    break;
                }
                for (i, v) in pcm.iter_mut().enumerate() {
                    *v = endless_vowel(sent * 960 + i);
                }
                let n = encoder.encode(&pcm, &mut packet).unwrap();
                let ts = (sent * 960) as u32;
                let f = MediaFrame::new(7, sent as u16, ts, sent == 0, &packet[..n]).unwrap();
                play.push(f, arrival as u64);
                sent += 1;
            }
            play.next_period(now, &mut out);
            started |= play.take_first_audio();
            if started && out.iter().all(|&v| v == 0) {
                silent += 1;
            }
        }
        (play.stats().jitter, sent as u64, silent)
    }

    #[test]
    fn a_sender_whose_clock_drifts_plays_every_frame_without_a_gap_or_growing_delay() {
        for ppm in [10_000, 0, -10_000] {
            let (s, sent, silent) = drifting_speaker(ppm);
            let what = format!("{ppm} ppm: {s:?}");
            assert_eq!((s.concealed, s.underruns, s.late), (0, 0, 0), "{what}");
            assert_eq!((s.lost, s.left_out), (0, 0), "{what}");
            assert!(
                s.played + 3 >= sent,
                "every frame played: {sent} sent, {what}"
            );
            assert_eq!(silent, 0, "{what}");
            // 1 % of 30 s is 300 ms: the delay stays within the band above the target instead.
            let band = crate::jitter::LATE_FRAMES as u64 * 20_000 + 5_000;
            assert!(
                s.current_delay_us <= s.target_delay_us + band,
                "the delay grew: {what}"
            );
            if ppm > 0 {
                assert!(s.shortened >= 20 && s.lengthened == 0, "{what}");
            } else if ppm < 0 {
                assert!(s.lengthened >= 20, "{what}");
            } else {
                assert_eq!(s.lengthened, 0, "{what}");
            }
        }
    }

    /// Numbers a captured frame as the media link does when it sends it.
    fn numbered(mut f: MediaFrame, seq: &mut u16) -> MediaFrame {
        f.sequence = *seq;
        *seq = seq.wrapping_add(1);
        f
    }

    /// Output energy of two speakers saying the same thing, with `priority` set.
    fn mixed_energy(priority: Option<u32>) -> f64 {
        let mut play = PlayoutPath::new(JitterConfig::default()).unwrap();
        play.set_priority(priority);
        let mut caps = [1u32, 2].map(|ssrc| {
            let cap = CapturePath::new(CaptureConfig::new(FrameDuration::Ms10), 0).unwrap();
            (ssrc, cap, 0u16)
        });
        let mut out = [0i16; PERIOD_SAMPLES];
        let mut energy = 0f64;
        for p in 0..80 {
            let tone = speech_like(p);
            for (ssrc, cap, seq) in &mut caps {
                if let Some(f) = cap.push_period(&tone, true, *ssrc).unwrap().unwrap().frame {
                    play.push(numbered(f, seq), p as u64 * 10_000);
                }
            }
            play.next_period(p as u64 * 10_000, &mut out);
            if p > 20 {
                energy += out.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
            }
        }
        energy
    }

    #[test]
    fn priority_speaker_ducks_others() {
        let plain = mixed_energy(None);
        let ducked = mixed_energy(Some(2));
        // In phase: amplitude 2 without ducking, 1 + 0.25 with it: energy ratio ~0.39.
        let ratio = ducked / plain;
        assert!((0.3..0.5).contains(&ratio), "energy ratio {ratio}");
    }

    /// Frames sent while the microphone hears only the station's own loudspeaker (another
    /// speaker's voice, 30 ms later at half the level), after the first 3 s.
    fn frames_sent_on_echo_alone(processing: Option<ApmConfig>) -> usize {
        let mut cfg = CaptureConfig::new(FrameDuration::Ms20);
        cfg.processing = processing;
        let mut cap = CapturePath::new(cfg, 0).unwrap();
        let voice: Vec<i16> = (0..1000).flat_map(speech_like).collect();
        let delay = 30 * 48;
        let mut sent = 0;
        for p in 0..800 {
            let at = p * PERIOD_SAMPLES;
            let played: [i16; PERIOD_SAMPLES] = core::array::from_fn(|i| voice[at + i]);
            cap.push_reference(&played);
            let mic: [i16; PERIOD_SAMPLES] =
                core::array::from_fn(|i| (at + i).checked_sub(delay).map_or(0, |n| voice[n] / 2));
            if let Some(o) = cap.push_period(&mic, true, 9).unwrap()
                && o.frame.is_some()
                && p > 300
            {
                sent += 1;
            }
        }
        sent
    }

    #[test]
    fn the_station_does_not_transmit_its_own_loudspeaker() {
        let raw = frames_sent_on_echo_alone(None);
        let processed = frames_sent_on_echo_alone(Some(ApmConfig::default()));
        assert!(raw > 100, "without processing the echo is sent: {raw}");
        assert!(
            processed * 10 < raw,
            "with echo cancellation {processed} frames of echo were sent (raw {raw})"
        );
    }

    /// A hostile stream (a flood of one speaker with absurd timestamps, packets from a
    /// hundred unknown SSRCs, one that never ends) does not cost the real speaker a frame.
    #[test]
    fn hostile_streams_do_not_hurt_the_real_speaker() {
        let mut play = PlayoutPath::new(JitterConfig::default()).unwrap();
        let mut cap = CapturePath::new(CaptureConfig::new(FrameDuration::Ms20), 0).unwrap();
        let mut out = [0i16; PERIOD_SAMPLES];
        let (mut seq, mut sent, mut junk) = (0u16, 0u64, 0u32);
        let payload = [0xFCu8, 0xFF, 0xFE];
        for p in 0..600usize {
            let now = p as u64 * 10_000;
            if let Some(o) = cap.push_period(&speech_like(p), true, 42).unwrap()
                && let Some(f) = o.frame
            {
                play.push(numbered(f, &mut seq), now);
                sent += 1;
            }
            if p > 100 {
                // A flood from SSRC 7: 50 packets a period, absurd numbers.
                for _ in 0..50 {
                    junk = junk.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    let f = MediaFrame::new(7, junk as u16, junk, junk & 1 == 1, &payload).unwrap();
                    play.push(f, now);
                }
                // Strangers: a new SSRC every period.
                let f = MediaFrame::new(1000 + p as u32, 0, 0, true, &payload).unwrap();
                play.push(f, now);
            }
            play.next_period(now, &mut out);
        }
        // Every frame the real speaker sent was played (the last may still be in flight).
        let real = play.stream_stats(42).unwrap();
        assert!(
            real.played + 2 >= sent && real.played <= sent,
            "sent {sent}, played {}: {real:?}",
            real.played
        );
        assert_eq!((real.late, real.lost, real.resyncs), (0, 0, 0), "{real:?}");
    }

    /// RMS of the output over periods 30..80 with speakers `ssrc` saying the same 300 Hz
    /// tone at `amplitudes`; `tune` runs on the path before the start.
    fn mixed_rms(amplitudes: &[f32], tune: impl FnOnce(&mut PlayoutPath)) -> f64 {
        let mut play = PlayoutPath::new(JitterConfig {
            start_target_us: 0,
            ..JitterConfig::default()
        })
        .unwrap();
        let mut caps: Vec<_> = amplitudes
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                let cap = CapturePath::new(CaptureConfig::new(FrameDuration::Ms10), 0).unwrap();
                (i as u32 + 1, a, cap, 0u16)
            })
            .collect();
        let mut out = [0i16; PERIOD_SAMPLES];
        let (mut energy, mut n) = (0f64, 0usize);
        let mut tune = Some(tune);
        for p in 0..80usize {
            for (ssrc, amp, cap, seq) in &mut caps {
                let tone: [i16; PERIOD_SAMPLES] = core::array::from_fn(|i| {
                    let t = (p * PERIOD_SAMPLES + i) as f32 / 48_000.0;
                    (*amp * (2.0 * std::f32::consts::PI * 300.0 * t).sin()) as i16
                });
                if let Some(f) = cap.push_period(&tone, true, *ssrc).unwrap().unwrap().frame {
                    play.push(numbered(f, seq), p as u64 * 10_000);
                }
            }
            if p == 2
                && let Some(t) = tune.take()
            {
                t(&mut play);
            }
            play.next_period(p as u64 * 10_000, &mut out);
            if p >= 30 {
                energy += out.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
                n += PERIOD_SAMPLES;
            }
        }
        (energy / n as f64).sqrt()
    }

    #[test]
    fn when_six_talk_the_four_loudest_are_heard() {
        // In phase, amplitudes add: the top four make 18000, all six would make 21000.
        let rms = mixed_rms(&[1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 6000.0], |_| {});
        let expected = 18_000.0 / 2f64.sqrt();
        assert!(
            (rms - expected).abs() < expected * 0.08,
            "rms {rms:.0}, expected about {expected:.0} (all six: {:.0})",
            21_000.0 / 2f64.sqrt()
        );
    }

    #[test]
    fn the_listener_sets_a_gain_per_speaker() {
        let full = mixed_rms(&[4000.0, 4000.0], |_| {});
        let one_halved = mixed_rms(&[4000.0, 4000.0], |p| p.set_speaker_gain(2, 0.5));
        let ratio = one_halved / full;
        assert!(
            (ratio - 0.75).abs() < 0.05,
            "ratio {ratio:.3}, expected 0.75"
        );
    }
}
