//! Audio device traits, in the embedded-hal style: a small trait per direction, an
//! `ErrorType` with a `kind()` so callers can react without knowing the backend.

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioErrorKind {
    /// The device under- or overran; it was recovered and the stream goes on.
    Xrun,
    /// The device is gone (unplugged, closed): reopen it.
    Disconnected,
    /// The device cannot do the wanted format, rate or channel count.
    Format,
    /// The input (a sim file) is exhausted or the output cannot be written.
    Io,
    Other,
}

pub trait AudioError: core::fmt::Debug + core::fmt::Display {
    fn kind(&self) -> AudioErrorKind;
}

pub trait ErrorType {
    type Error: AudioError;
}

/// Format of a stream: 16-bit signed interleaved samples at 48 kHz in 10 ms periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFormat {
    pub channels: u16,
    pub rate: u32,
    /// Frames (samples per channel) per period.
    pub period: usize,
}

impl StreamFormat {
    pub const fn mono() -> StreamFormat {
        StreamFormat {
            channels: 1,
            rate: 48_000,
            period: 480,
        }
    }

    /// Samples in one period, all channels.
    pub fn period_samples(&self) -> usize {
        self.period * usize::from(self.channels)
    }
}

/// A microphone. `read` blocks until one period is available, as a sound card does: the
/// audio thread is paced by it.
pub trait AudioCapture: ErrorType {
    fn format(&self) -> StreamFormat;
    /// Fills `buf` (exactly one period, interleaved) with captured samples.
    fn read(&mut self, buf: &mut [i16]) -> Result<(), Self::Error>;
}

/// A loudspeaker.
pub trait AudioPlayback: ErrorType {
    fn format(&self) -> StreamFormat;
    /// Queues one period (interleaved) for playback.
    fn write(&mut self, buf: &[i16]) -> Result<(), Self::Error>;
}
