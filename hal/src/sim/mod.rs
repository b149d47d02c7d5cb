//! The sim backend: the station's hardware on a laptop or in a test. Audio comes from and goes
//! to WAV files, paced in real time in 10 ms periods like a sound card (or unpaced in tests);
//! buttons are pins a keyboard or control socket sets; LEDs draw in the terminal and record a
//! timeline.

mod audio;
mod button;
mod leds;
mod pacer;

pub use audio::{MicControl, SimCapture, SimError, SimPlayback, read_wav_mono};
pub use button::{SimButton, SimButtonHandle};
pub use leds::{LedTimeline, SimLeds};
pub use pacer::Pacer;
