//! WAV-backed capture and playback.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hound::{SampleFormat, WavSpec, WavWriter};
use thiserror::Error;

use super::pacer::Pacer;
use crate::audio::{
    AudioCapture, AudioError, AudioErrorKind, AudioPlayback, ErrorType, StreamFormat,
};

#[derive(Debug, Error)]
pub enum SimError {
    #[error("{path}: {message}")]
    Wav { path: String, message: String },
    #[error("buffer of {got} samples, expected {expected}")]
    BufferSize { got: usize, expected: usize },
    #[error("the sim sound card is unplugged")]
    Unplugged,
}

impl AudioError for SimError {
    fn kind(&self) -> AudioErrorKind {
        match self {
            SimError::Wav { .. } => AudioErrorKind::Io,
            SimError::BufferSize { .. } => AudioErrorKind::Format,
            SimError::Unplugged => AudioErrorKind::Disconnected,
        }
    }
}

fn wav_err(path: &Path, e: impl std::fmt::Display) -> SimError {
    SimError::Wav {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Reads a 16-bit PCM WAV at 48 kHz and averages its channels to mono.
pub fn read_wav_mono(path: &Path) -> Result<Vec<i16>, SimError> {
    let mut reader = hound::WavReader::open(path).map_err(|e| wav_err(path, e))?;
    let spec = reader.spec();
    if spec.sample_rate != 48_000
        || spec.bits_per_sample != 16
        || spec.sample_format != SampleFormat::Int
    {
        return Err(wav_err(
            path,
            format!(
                "need 16-bit PCM at 48000 Hz, got {}-bit at {} Hz (convert with: sox IN -r 48000 -b 16 OUT)",
                spec.bits_per_sample, spec.sample_rate
            ),
        ));
    }
    let channels = usize::from(spec.channels.max(1));
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(|e| wav_err(path, e))?;
    Ok(samples
        .chunks_exact(channels)
        .map(|c| (c.iter().map(|&s| i32::from(s)).sum::<i32>() / channels as i32) as i16)
        .collect())
}

/// Lets another thread (a control socket, a test) start the sim mouth speaking, or pull the
/// sim sound card out and plug it back in.
#[derive(Debug, Clone, Default)]
pub struct MicControl {
    play: Arc<AtomicBool>,
    playing: Arc<AtomicBool>,
    played_samples: Arc<AtomicU64>,
    unplugged: Arc<AtomicBool>,
}

impl MicControl {
    /// Pulls the sound card out (`true`): reads fail as a vanished device's do, and it cannot
    /// be opened until it is plugged back in (`false`).
    pub fn set_unplugged(&self, unplugged: bool) {
        self.unplugged.store(unplugged, Ordering::SeqCst);
    }

    pub fn is_unplugged(&self) -> bool {
        self.unplugged.load(Ordering::SeqCst)
    }

    /// Starts the source from its beginning at the next period.
    pub fn play(&self) {
        self.play.store(true, Ordering::SeqCst);
    }

    /// Whether the source is being played now (or was asked to be).
    pub fn is_playing(&self) -> bool {
        self.playing.load(Ordering::SeqCst) || self.play.load(Ordering::SeqCst)
    }
}

/// A microphone that hears silence until told to play its source, records what it
/// captures, and delivers a period every 10 ms.
pub struct SimCapture {
    format: StreamFormat,
    source: Vec<i16>,
    position: usize,
    control: MicControl,
    pacer: Pacer,
    recorder: Option<WavWriter<BufWriter<File>>>,
    record_path: String,
}

impl SimCapture {
    pub fn new(format: StreamFormat, source: Vec<i16>, paced: bool) -> SimCapture {
        SimCapture {
            format,
            source,
            position: 0,
            control: MicControl::default(),
            pacer: Pacer::new(Duration::from_millis(10), paced),
            recorder: None,
            record_path: String::new(),
        }
    }

    /// Shares `control` (a control socket's, kept across reopening the device).
    pub fn with_control(mut self, control: MicControl) -> SimCapture {
        self.control = control;
        self
    }

    /// Plays the source once from the first period.
    pub fn autoplay(self) -> SimCapture {
        self.control.play();
        self
    }

    /// Also writes everything captured to a mono WAV at `path`.
    pub fn record_to(mut self, path: &Path) -> Result<SimCapture, SimError> {
        let spec = WavSpec {
            channels: self.format.channels,
            sample_rate: self.format.rate,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        };
        self.recorder = Some(WavWriter::create(path, spec).map_err(|e| wav_err(path, e))?);
        self.record_path = path.display().to_string();
        Ok(self)
    }

    pub fn control(&self) -> MicControl {
        self.control.clone()
    }

    pub fn start_unix_ns(&self) -> u128 {
        self.pacer.start_unix_ns()
    }

    /// Finishes the recording (also done on drop).
    pub fn finish(&mut self) -> Result<(), SimError> {
        if let Some(w) = self.recorder.take() {
            w.finalize()
                .map_err(|e| wav_err(Path::new(&self.record_path), e))?;
        }
        Ok(())
    }
}

impl ErrorType for SimCapture {
    type Error = SimError;
}

impl AudioCapture for SimCapture {
    fn format(&self) -> StreamFormat {
        self.format
    }

    fn read(&mut self, buf: &mut [i16]) -> Result<(), SimError> {
        let expected = self.format.period_samples();
        if buf.len() != expected {
            return Err(SimError::BufferSize {
                got: buf.len(),
                expected,
            });
        }
        self.pacer.wait();
        if self.control.is_unplugged() {
            return Err(SimError::Unplugged);
        }
        if self.control.play.swap(false, Ordering::SeqCst) {
            self.position = 0;
            self.control.playing.store(true, Ordering::SeqCst);
        }
        let playing = self.control.playing.load(Ordering::SeqCst);
        let channels = usize::from(self.format.channels.max(1));
        for frame in buf.chunks_exact_mut(channels) {
            let s = if playing {
                self.source.get(self.position).copied()
            } else {
                None
            };
            if s.is_some() {
                self.position += 1;
            }
            frame.fill(s.unwrap_or(0));
        }
        if playing && self.position >= self.source.len() {
            self.control.playing.store(false, Ordering::SeqCst);
        }
        if playing {
            self.control
                .played_samples
                .fetch_add(self.format.period as u64, Ordering::Relaxed);
        }
        if let Some(w) = self.recorder.as_mut() {
            for &s in buf.iter() {
                w.write_sample(s)
                    .map_err(|e| wav_err(Path::new(&self.record_path), e))?;
            }
        }
        Ok(())
    }
}

/// A loudspeaker that writes a WAV. It never blocks: the capture side paces the audio thread,
/// as with a real card whose playback buffer has room.
pub struct SimPlayback {
    format: StreamFormat,
    writer: Option<WavWriter<BufWriter<File>>>,
    path: String,
    written: u64,
}

impl SimPlayback {
    pub fn create(format: StreamFormat, path: &Path) -> Result<SimPlayback, SimError> {
        let spec = WavSpec {
            channels: format.channels,
            sample_rate: format.rate,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        };
        Ok(SimPlayback {
            format,
            writer: Some(WavWriter::create(path, spec).map_err(|e| wav_err(path, e))?),
            path: path.display().to_string(),
            written: 0,
        })
    }

    /// A speaker that plays into nothing.
    pub fn discard(format: StreamFormat) -> SimPlayback {
        SimPlayback {
            format,
            writer: None,
            path: String::new(),
            written: 0,
        }
    }

    /// Frames written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn finish(&mut self) -> Result<(), SimError> {
        if let Some(w) = self.writer.take() {
            w.finalize()
                .map_err(|e| wav_err(Path::new(&self.path), e))?;
        }
        Ok(())
    }
}

impl ErrorType for SimPlayback {
    type Error = SimError;
}

impl AudioPlayback for SimPlayback {
    fn format(&self) -> StreamFormat {
        self.format
    }

    fn write(&mut self, buf: &[i16]) -> Result<(), SimError> {
        let expected = self.format.period_samples();
        if buf.len() != expected {
            return Err(SimError::BufferSize {
                got: buf.len(),
                expected,
            });
        }
        if let Some(w) = self.writer.as_mut() {
            for &s in buf {
                w.write_sample(s)
                    .map_err(|e| wav_err(Path::new(&self.path), e))?;
            }
        }
        self.written += self.format.period as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("stagebox-hal-{}-{name}", std::process::id()))
    }

    #[test]
    fn capture_is_silent_until_played_then_records_what_it_heard() {
        let rec = tmp("rec.wav");
        let source: Vec<i16> = (1..=700).collect();
        let mut cap = SimCapture::new(StreamFormat::mono(), source, false)
            .record_to(&rec)
            .unwrap();
        let ctl = cap.control();
        let mut buf = [0i16; 480];
        cap.read(&mut buf).unwrap();
        assert!(buf.iter().all(|&s| s == 0));
        ctl.play();
        cap.read(&mut buf).unwrap();
        assert_eq!(buf[0], 1);
        assert_eq!(buf[479], 480);
        cap.read(&mut buf).unwrap();
        assert_eq!(buf[219], 700);
        assert_eq!(buf[220], 0, "source ended: silence");
        assert!(!ctl.is_playing());
        assert!(cap.read(&mut [0i16; 3]).is_err());
        cap.finish().unwrap();
        let back = read_wav_mono(&rec).unwrap();
        assert_eq!(back.len(), 3 * 480);
        assert_eq!(back[480], 1);
        std::fs::remove_file(rec).unwrap();
    }

    #[test]
    fn playback_writes_a_wav_and_bad_files_are_clear_errors() {
        let out = tmp("out.wav");
        let mut p = SimPlayback::create(StreamFormat::mono(), &out).unwrap();
        p.write(&[7i16; 480]).unwrap();
        p.finish().unwrap();
        assert_eq!(read_wav_mono(&out).unwrap(), vec![7i16; 480]);
        std::fs::write(&out, b"not a wav").unwrap();
        let err = read_wav_mono(&out).unwrap_err().to_string();
        assert!(err.contains("out.wav"), "{err}");
        std::fs::remove_file(out).unwrap();
    }
}
