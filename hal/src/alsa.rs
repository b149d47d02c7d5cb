//! ALSA capture and playback (alsa-lib through the `alsa` crate): S16 interleaved at 48 kHz,
//! 10 ms periods, under- and overruns recovered in place.
//!
//! The `IO` handle is taken once at open and kept beside the PCM it borrows (one owned
//! value, through `self_cell`): taking it per period would query the hardware parameters and
//! allocate on the audio path. Dropping a capture or playback closes its device, so a device
//! reopened after a fault (a USB card pulled out and back) leaves nothing behind.

use alsa::pcm::{Access, Format, HwParams, IO, PCM};
use alsa::{Direction, ValueOr};
use thiserror::Error;

use crate::audio::{
    AudioCapture, AudioError, AudioErrorKind, AudioPlayback, ErrorType, StreamFormat,
};

#[derive(Debug, Error)]
pub enum AlsaError {
    #[error("ALSA device {device:?}: {what}: {source}")]
    Open {
        device: String,
        what: &'static str,
        source: alsa::Error,
    },
    #[error("ALSA device {device:?} gave {got} Hz / {channels} channels, wanted {wanted} Hz")]
    Format {
        device: String,
        got: u32,
        wanted: u32,
        channels: u32,
    },
    #[error("ALSA {0}")]
    Io(alsa::Error),
    #[error("buffer of {got} samples, expected {expected}")]
    BufferSize { got: usize, expected: usize },
}

impl AudioError for AlsaError {
    fn kind(&self) -> AudioErrorKind {
        match self {
            AlsaError::Open { source, .. } if source.errno() == libc_enodev() => {
                AudioErrorKind::Disconnected
            }
            AlsaError::Open { .. } | AlsaError::Format { .. } | AlsaError::BufferSize { .. } => {
                AudioErrorKind::Format
            }
            AlsaError::Io(e) if e.errno() == libc_enodev() => AudioErrorKind::Disconnected,
            AlsaError::Io(_) => AudioErrorKind::Other,
        }
    }
}

const fn libc_enodev() -> i32 {
    19
}

fn open(device: &str, dir: Direction, format: StreamFormat) -> Result<PCM, AlsaError> {
    let err = |what: &'static str| {
        let device = device.to_string();
        move |source| AlsaError::Open {
            device,
            what,
            source,
        }
    };
    let pcm = PCM::new(device, dir, false).map_err(err("open"))?;
    {
        let hw = HwParams::any(&pcm).map_err(err("hardware parameters"))?;
        hw.set_channels(u32::from(format.channels))
            .map_err(err("channel count"))?;
        hw.set_rate(format.rate, ValueOr::Nearest)
            .map_err(err("sample rate"))?;
        hw.set_format(Format::s16())
            .map_err(err("sample format S16"))?;
        hw.set_access(Access::RWInterleaved)
            .map_err(err("interleaved access"))?;
        let period = alsa::pcm::Frames::try_from(format.period).unwrap_or(480);
        hw.set_period_size_near(period, ValueOr::Nearest)
            .map_err(err("period size"))?;
        hw.set_buffer_size_near(period * 4)
            .map_err(err("buffer size"))?;
        pcm.hw_params(&hw).map_err(err("apply parameters"))?;
        let rate = hw.get_rate().map_err(err("read back rate"))?;
        if rate != format.rate {
            return Err(AlsaError::Format {
                device: device.into(),
                got: rate,
                wanted: format.rate,
                channels: u32::from(format.channels),
            });
        }
    }
    pcm.prepare().map_err(err("prepare"))?;
    Ok(pcm)
}

type IoI16<'a> = IO<'a, i16>;

self_cell::self_cell!(
    /// A PCM and the IO handle that borrows it.
    struct PcmIo {
        owner: PCM,
        #[covariant]
        dependent: IoI16,
    }
);

/// An open PCM with its IO handle, shared by both directions.
struct AlsaStream {
    pcm_io: PcmIo,
    format: StreamFormat,
}

impl AlsaStream {
    fn open(device: &str, dir: Direction, format: StreamFormat) -> Result<AlsaStream, AlsaError> {
        let pcm = open(device, dir, format)?;
        let pcm_io = PcmIo::try_new(pcm, |pcm| pcm.io_i16()).map_err(AlsaError::Io)?;
        Ok(AlsaStream { pcm_io, format })
    }

    fn pcm(&self) -> &PCM {
        self.pcm_io.borrow_owner()
    }

    /// Moves one period through `step(io, samples_done)`, which returns frames moved;
    /// under- and overruns are recovered and the transfer goes on.
    fn transfer(
        &self,
        len: usize,
        mut step: impl FnMut(&IO<'_, i16>, usize) -> alsa::Result<usize>,
    ) -> Result<(), AlsaError> {
        let expected = self.format.period_samples();
        if len != expected {
            return Err(AlsaError::BufferSize { got: len, expected });
        }
        let channels = usize::from(self.format.channels.max(1));
        let mut done = 0;
        while done < len {
            match step(self.pcm_io.borrow_dependent(), done) {
                Ok(frames) => done += frames * channels,
                Err(e) => self.pcm().try_recover(e, true).map_err(AlsaError::Io)?,
            }
        }
        Ok(())
    }
}

pub struct AlsaCapture(AlsaStream);

impl AlsaCapture {
    pub fn open(device: &str, format: StreamFormat) -> Result<AlsaCapture, AlsaError> {
        let stream = AlsaStream::open(device, Direction::Capture, format)?;
        stream.pcm().start().map_err(AlsaError::Io)?;
        Ok(AlsaCapture(stream))
    }
}

impl ErrorType for AlsaCapture {
    type Error = AlsaError;
}

impl AudioCapture for AlsaCapture {
    fn format(&self) -> StreamFormat {
        self.0.format
    }

    fn read(&mut self, buf: &mut [i16]) -> Result<(), AlsaError> {
        self.0
            .transfer(buf.len(), |io, done| io.readi(&mut buf[done..]))
    }
}

pub struct AlsaPlayback(AlsaStream);

impl AlsaPlayback {
    pub fn open(device: &str, format: StreamFormat) -> Result<AlsaPlayback, AlsaError> {
        Ok(AlsaPlayback(AlsaStream::open(
            device,
            Direction::Playback,
            format,
        )?))
    }
}

/// Plays out what is queued before the device is closed.
impl Drop for AlsaPlayback {
    fn drop(&mut self) {
        let _ = self.0.pcm().drain();
    }
}

impl ErrorType for AlsaPlayback {
    type Error = AlsaError;
}

impl AudioPlayback for AlsaPlayback {
    fn format(&self) -> StreamFormat {
        self.0.format
    }

    fn write(&mut self, buf: &[i16]) -> Result<(), AlsaError> {
        self.0
            .transfer(buf.len(), |io, done| io.writei(&buf[done..]))
    }
}
