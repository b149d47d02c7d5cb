//! Opening the board's hardware from its profile and the station's config: the audio
//! backend (sim WAV files or ALSA), the buttons and the LEDs.

use stagebox_board::{AudioBackend, BoardProfile};
use stagebox_hal::sim::{MicControl, SimCapture, SimError, SimPlayback, read_wav_mono};
use stagebox_hal::{
    AudioCapture, AudioError, AudioErrorKind, AudioPlayback, ErrorType, StreamFormat,
};

use crate::config::Config;

/// Any capture backend this build has.
pub enum AnyCapture {
    Sim(Box<SimCapture>),
    #[cfg(feature = "alsa")]
    Alsa(stagebox_hal::alsa::AlsaCapture),
}

/// Any playback backend this build has.
pub enum AnyPlayback {
    Sim(SimPlayback),
    #[cfg(feature = "alsa")]
    Alsa(stagebox_hal::alsa::AlsaPlayback),
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(transparent)]
    Sim(#[from] SimError),
    #[cfg(feature = "alsa")]
    #[error(transparent)]
    Alsa(#[from] stagebox_hal::alsa::AlsaError),
    #[error("{0}")]
    Unsupported(String),
}

impl AudioError for DeviceError {
    fn kind(&self) -> AudioErrorKind {
        match self {
            DeviceError::Sim(e) => e.kind(),
            #[cfg(feature = "alsa")]
            DeviceError::Alsa(e) => e.kind(),
            DeviceError::Unsupported(_) => AudioErrorKind::Format,
        }
    }
}

impl ErrorType for AnyCapture {
    type Error = DeviceError;
}

impl AudioCapture for AnyCapture {
    fn format(&self) -> StreamFormat {
        match self {
            AnyCapture::Sim(c) => c.format(),
            #[cfg(feature = "alsa")]
            AnyCapture::Alsa(c) => c.format(),
        }
    }

    fn read(&mut self, buf: &mut [i16]) -> Result<(), DeviceError> {
        match self {
            AnyCapture::Sim(c) => Ok(c.read(buf)?),
            #[cfg(feature = "alsa")]
            AnyCapture::Alsa(c) => Ok(c.read(buf)?),
        }
    }
}

impl ErrorType for AnyPlayback {
    type Error = DeviceError;
}

impl AudioPlayback for AnyPlayback {
    fn format(&self) -> StreamFormat {
        match self {
            AnyPlayback::Sim(p) => p.format(),
            #[cfg(feature = "alsa")]
            AnyPlayback::Alsa(p) => p.format(),
        }
    }

    fn write(&mut self, buf: &[i16]) -> Result<(), DeviceError> {
        match self {
            AnyPlayback::Sim(p) => Ok(p.write(buf)?),
            #[cfg(feature = "alsa")]
            AnyPlayback::Alsa(p) => Ok(p.write(buf)?),
        }
    }
}

/// Opens the audio devices the board and config name. `mic` is the sim sound card's control
/// (kept across reopening): an unplugged sim card cannot be opened.
pub fn open_audio(
    board: &BoardProfile,
    cfg: &Config,
    mic: &MicControl,
) -> Result<(AnyCapture, AnyPlayback), DeviceError> {
    let use_alsa = board.audio.backend == AudioBackend::Alsa || cfg.sim.alsa_audio;
    let capture_format = StreamFormat {
        channels: board.audio.capture_channels,
        ..StreamFormat::mono()
    };
    if use_alsa {
        #[cfg(feature = "alsa")]
        {
            let cap_dev = cfg
                .audio
                .capture_device
                .as_deref()
                .unwrap_or(&board.audio.capture_device);
            let play_dev = cfg
                .audio
                .playback_device
                .as_deref()
                .unwrap_or(&board.audio.playback_device);
            let capture = stagebox_hal::alsa::AlsaCapture::open(cap_dev, capture_format)?;
            let playback = stagebox_hal::alsa::AlsaPlayback::open(play_dev, StreamFormat::mono())?;
            return Ok((AnyCapture::Alsa(capture), AnyPlayback::Alsa(playback)));
        }
        #[cfg(not(feature = "alsa"))]
        return Err(DeviceError::Unsupported(
            "this build has no ALSA support".into(),
        ));
    }
    if mic.is_unplugged() {
        return Err(DeviceError::Sim(SimError::Unplugged));
    }
    let source = match &cfg.sim.mic_wav {
        Some(path) => read_wav_mono(path)?,
        None => Vec::new(),
    };
    let mut capture = SimCapture::new(capture_format, source, true).with_control(mic.clone());
    if cfg.sim.mic_autoplay {
        capture = capture.autoplay();
    }
    if let Some(path) = &cfg.sim.record_mic {
        capture = capture.record_to(path)?;
    }
    let playback = match &cfg.sim.speaker_wav {
        Some(path) => SimPlayback::create(StreamFormat::mono(), path)?,
        None => SimPlayback::discard(StreamFormat::mono()),
    };
    Ok((
        AnyCapture::Sim(Box::new(capture)),
        AnyPlayback::Sim(playback),
    ))
}
