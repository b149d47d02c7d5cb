//! # stagebox-audio — frames in, frames out
//!
//! The station's audio processing, with no device and no socket: the station daemon's audio
//! thread reads a period from the capture device, hands it to [`pipeline::CapturePath`], and
//! writes what [`pipeline::PlayoutPath`] mixes to the playback device. Encoded frames cross to
//! and from the network task as [`frame::MediaFrame`]s in fixed-capacity queues.
//!
//! Nothing here allocates after construction (the daemon's counting-allocator test holds the
//! audio thread to it) and nothing here waits.
//!
//! - [`beamform`]: delay-and-sum of the microphone array, steered to the station's front.
//! - `CapturePath` runs the WebRTC audio processing module ([`stagebox_apm`]: high-pass,
//!   echo cancellation against what the station plays, noise suppression, gain control).
//! - [`vad`]: voice activity from frame energy over an adaptive noise floor (on the
//!   processed signal).
//! - [`gate`]: silence suppression: hangover, closing silence frames, marker bits.
//! - [`codec`]: Opus via audiopus (in-band FEC, PLC).
//! - [`jitter`]: per-speaker adaptive jitter buffer: target delay from measured arrival
//!   jitter ([`delay`]), reordering, loss versus the sender's silence, FEC and concealment.
//! - [`stretch`]: a pitch period of decoded speech taken out or repeated, so a stream whose
//!   sender's clock runs fast or slow plays at the station's pace without a gap.
//! - [`mixer`]: mixing with gain ramps (ducking, fades) and a peak limiter; `PlayoutPath`
//!   picks the loudest speakers.
//! - [`pipeline`]: the capture and playout paths built from the above.

pub mod beamform;
pub mod codec;
pub mod delay;
pub mod frame;
pub mod gate;
pub mod jitter;
pub mod mixer;
pub mod pipeline;
pub mod stretch;
pub mod vad;

pub use frame::{FrameDuration, MediaFrame, PERIOD_SAMPLES, SAMPLE_RATE};
pub use pipeline::{AudioError, CaptureConfig, CaptureOutput, CapturePath, PlayoutPath};
pub use stagebox_apm::{ApmConfig, NoiseSuppression};
