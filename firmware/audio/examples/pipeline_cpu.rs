//! The station's whole per-period audio work, as fast as it goes, for `cargo xtask bench
//! cpu`: 2-mic capture → beamforming → echo cancellation, noise suppression, gain control →
//! VAD → Opus encode; and 3 incoming speakers → jitter buffers → Opus decode → mix, duck,
//! limit, the mix fed back as the echo canceller's reference.
//!
//! ```text
//! pipeline_cpu SPEECH.wav SECONDS [setup-only]
//! ```
//! `setup-only` does everything but the timed loop: what an instruction count of the whole
//! program minus one of this is the loop's.
//! The speakers' packets are encoded before the clock starts (a listener receives them
//! encoded). Prints one JSON line: audio seconds, this thread's CPU seconds (from
//! /proc/thread-self/schedstat) and frames encoded and decoded.
// A measurement harness around the library, not part of it: it reads files and a clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use stagebox_audio::beamform::Beamformer;
use stagebox_audio::frame::{FrameDuration, MediaFrame, PERIOD_SAMPLES};
use stagebox_audio::jitter::JitterConfig;
use stagebox_audio::pipeline::{CaptureConfig, CapturePath, PlayoutPath};

fn read_wav(path: &str) -> Vec<i16> {
    let mut r = hound::WavReader::open(path).expect("a 16-bit mono WAV at 48 kHz");
    r.samples::<i16>().map(|s| s.unwrap()).collect()
}

/// CPU time of this thread, ns.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let speech = read_wav(&args[1]);
    let seconds: usize = args[2].parse().unwrap();
    let setup_only = args.get(3).is_some_and(|a| a == "setup-only");
    let periods = seconds * 100;
    let at = |n: usize| speech[n % speech.len()];

    // Three speakers' streams, encoded beforehand (20 ms frames, 32 kbit/s).
    let mut streams: Vec<Vec<MediaFrame>> = Vec::new();
    for speaker in 0..3u32 {
        let mut enc = CapturePath::new(CaptureConfig::new(FrameDuration::Ms20), 0).unwrap();
        let mut frames = Vec::new();
        let mut seq = 0u16;
        for p in 0..periods {
            let offset = speaker as usize * 7_919 + p * PERIOD_SAMPLES;
            let pcm: Vec<i16> = (0..PERIOD_SAMPLES).map(|i| at(offset + i)).collect();
            // Everyone talks all the time: the most decoding a listener does.
            if let Some(out) = enc.push_period(&pcm, true, 100 + speaker).unwrap()
                && let Some(mut f) = out.frame
            {
                f.sequence = seq;
                seq = seq.wrapping_add(1);
                frames.push(f);
            }
        }
        streams.push(frames);
    }
    // The microphone pair: the talker reaches both mics, slightly apart.
    let mic: Vec<i16> = (0..periods * PERIOD_SAMPLES)
        .flat_map(|n| [at(n), at(n + 3)])
        .collect();

    let mut cfg = CaptureConfig::new(FrameDuration::Ms20);
    cfg.processing = Some(stagebox_audio::ApmConfig::default());
    let mut capture = CapturePath::new(cfg, 0).unwrap();
    let mut beamformer = Beamformer::new(2, &[0, 1], &[[-29.0, 0.0, 0.0], [29.0, 0.0, 0.0]]);
    let mut playout = PlayoutPath::new(JitterConfig::default()).unwrap();
    let mut mono = [0i16; PERIOD_SAMPLES];
    let mut mixed = [0i16; PERIOD_SAMPLES];
    let (mut encoded, mut next) = (0u64, [0usize; 3]);

    let start = thread_cpu_ns();
    for p in 0..if setup_only { 0 } else { periods } {
        let now_us = p as u64 * 10_000;
        let interleaved = &mic[p * 2 * PERIOD_SAMPLES..(p + 1) * 2 * PERIOD_SAMPLES];
        beamformer.process(interleaved, &mut mono);
        if let Some(out) = capture.push_period(&mono, true, 7).unwrap()
            && out.frame.is_some()
        {
            encoded += 1;
        }
        // A frame of each speaker arrives every other period.
        if p % 2 == 0 {
            for (s, frames) in streams.iter().enumerate() {
                if let Some(f) = frames.get(next[s]) {
                    playout.push(f.clone(), now_us);
                    next[s] += 1;
                }
            }
        }
        playout.next_period(now_us, &mut mixed);
        capture.push_reference(&mixed);
    }
    let cpu_ns = thread_cpu_ns() - start;
    let stats = playout.stats().jitter;
    println!(
        "{{\"audio_seconds\":{seconds},\"cpu_seconds\":{:.6},\"frames_encoded\":{encoded},\"frames_decoded\":{},\"periods\":{periods}}}",
        cpu_ns as f64 / 1e9,
        stats.played + stats.recovered_fec + stats.concealed
    );
}
