//! A soundboard upload: any bytes as a WAV or Ogg/Opus file (decoded, resampled, encoded), and
//! any clip name.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stagebox_stage_server::clips::{FRAME_SAMPLES, MAX_CLIP_SECONDS, prepare};

fuzz_target!(|data: &[u8]| {
    let (name, bytes) = data.split_at(data.len().min(8));
    if let Ok(clip) = prepare(&String::from_utf8_lossy(name), bytes) {
        assert!(clip.frames.len() <= MAX_CLIP_SECONDS * 48_000 / FRAME_SAMPLES + 1);
    }
});
