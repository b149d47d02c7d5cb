//! Frame sizes and the fixed-size packet that crosses between the audio thread and the
//! network task.

use heapless::Vec as HVec;

/// Sample rate of the whole audio path.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in 10 ms at [`SAMPLE_RATE`]: the period of the sound card and the sim clock.
pub const PERIOD_SAMPLES: usize = 480;
/// Largest frame the path handles (20 ms).
pub const MAX_FRAME_SAMPLES: usize = 960;
/// Largest Opus packet (RFC 6716 §3.4: 1275 bytes per frame).
pub const MAX_OPUS_PACKET: usize = 1275;

/// Duration of one encoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameDuration {
    Ms10,
    Ms20,
}

impl FrameDuration {
    pub fn from_ms(ms: u32) -> Option<FrameDuration> {
        match ms {
            10 => Some(FrameDuration::Ms10),
            20 => Some(FrameDuration::Ms20),
            _ => None,
        }
    }

    pub fn samples(self) -> usize {
        match self {
            FrameDuration::Ms10 => 480,
            FrameDuration::Ms20 => 960,
        }
    }

    pub fn ms(self) -> u32 {
        match self {
            FrameDuration::Ms10 => 10,
            FrameDuration::Ms20 => 20,
        }
    }

    /// How many 10 ms periods one frame spans.
    pub fn periods(self) -> usize {
        self.samples() / PERIOD_SAMPLES
    }
}

/// One encoded audio frame with its RTP fields, in fixed storage: moving it through a queue
/// never touches the heap. Received frames carry the sequence number they arrived with;
/// captured frames leave it 0, for the media link numbers what it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFrame {
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
    /// The payload is redundant audio (RFC 2198, `stagebox_proto::red`): earlier frames and
    /// then this one. Only received frames are; the jitter buffer takes them apart.
    pub redundant: bool,
    pub payload: HVec<u8, MAX_OPUS_PACKET>,
}

impl MediaFrame {
    pub const fn empty() -> MediaFrame {
        MediaFrame {
            ssrc: 0,
            sequence: 0,
            timestamp: 0,
            marker: false,
            redundant: false,
            payload: HVec::new(),
        }
    }

    /// A frame with `payload` copied in; `None` if it does not fit.
    pub fn new(
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Option<MediaFrame> {
        let payload = HVec::from_slice(payload).ok()?;
        Some(MediaFrame {
            ssrc,
            sequence,
            timestamp,
            marker,
            redundant: false,
            payload,
        })
    }

    /// The same frame, marked as carrying redundant audio.
    pub fn with_redundancy(mut self, redundant: bool) -> MediaFrame {
        self.redundant = redundant;
        self
    }
}
