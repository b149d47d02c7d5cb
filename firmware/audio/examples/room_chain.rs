//! The station's capture chain on a recorded (or simulated) room, for `cargo xtask bench
//! quality`: the microphones' channels → beamformer → processing module (echo cancellation
//! against what the loudspeaker played, noise suppression, gain control, high-pass), period by
//! period in the order the audio thread runs them, to a mono WAV.
//!
//! ```text
//! room_chain MICS.wav REFERENCE.wav OUT.wav GEOMETRY beam|first aec|no NS agc|no
//! ```
//! MICS: N channels; REFERENCE: mono, what the loudspeaker played (the microphones hear it
//! later), or `silence` where nothing plays. GEOMETRY: the board's `mic_geometry_mm` as `x,y,z;x,y,z;…`. `first`: the first
//! microphone alone instead of the beamformer. NS: off, low, moderate, high, very-high, or
//! `bypass` for no processing module at all. Prints the processing module's last figures as
//! one JSON line.
// A measurement harness around the library, not part of it: it reads and writes files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use stagebox_audio::beamform::Beamformer;
use stagebox_audio::frame::PERIOD_SAMPLES;
use stagebox_audio::pipeline::Processing;
use stagebox_audio::{ApmConfig, NoiseSuppression};

fn read_wav(path: &str) -> (usize, Vec<i16>) {
    let mut r = hound::WavReader::open(path).expect("a 16-bit WAV at 48 kHz");
    let channels = usize::from(r.spec().channels);
    (channels, r.samples::<i16>().map(|s| s.unwrap()).collect())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, mics, reference, out, geometry, beam, aec, ns, agc] = &args[..] else {
        panic!(
            "usage: room_chain MICS.wav REFERENCE.wav OUT.wav GEOMETRY beam|first aec|no NS agc|no"
        );
    };
    let (channels, mics) = read_wav(mics);
    let reference = if reference == "silence" {
        vec![0; mics.len() / channels]
    } else {
        read_wav(reference).1
    };
    let geometry: Vec<[f32; 3]> = geometry
        .split(';')
        .map(|p| {
            let v: Vec<f32> = p.split(',').map(|x| x.parse().unwrap()).collect();
            [v[0], v[1], v[2]]
        })
        .collect();
    let used: Vec<u16> = if beam == "beam" {
        (0..channels as u16).collect()
    } else {
        vec![0]
    };
    let mut beamformer = Beamformer::new(channels, &used, &geometry);
    let noise_suppression = match ns.as_str() {
        "off" | "bypass" => NoiseSuppression::Off,
        "low" => NoiseSuppression::Low,
        "moderate" => NoiseSuppression::Moderate,
        "high" => NoiseSuppression::High,
        "very-high" => NoiseSuppression::VeryHigh,
        other => panic!("noise suppression {other:?}"),
    };
    let mut processing = (ns != "bypass").then(|| {
        Processing::new(ApmConfig {
            echo_cancellation: aec == "aec",
            noise_suppression,
            agc_target_dbfs: (agc == "agc").then_some(3),
            high_pass: true,
            voice_detection: false,
        })
        .unwrap()
    });
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(out, spec).unwrap();
    let mut mono = [0i16; PERIOD_SAMPLES];
    let mut processed = [0i16; PERIOD_SAMPLES];
    let periods = (mics.len() / channels).min(reference.len()) / PERIOD_SAMPLES;
    for p in 0..periods {
        let interleaved = &mics[p * PERIOD_SAMPLES * channels..(p + 1) * PERIOD_SAMPLES * channels];
        beamformer.process(interleaved, &mut mono);
        // The audio thread's order: this period's capture, then what is played next.
        match processing.as_mut() {
            Some(chain) => chain.capture(&mono, &mut processed),
            None => processed = mono,
        }
        if let Some(chain) = processing.as_mut() {
            chain.render(&reference[p * PERIOD_SAMPLES..(p + 1) * PERIOD_SAMPLES]);
        }
        for &s in &processed {
            writer.write_sample(s).unwrap();
        }
    }
    writer.finalize().unwrap();
    let stats = processing.map(|c| c.stats()).unwrap_or_default();
    println!(
        "{{\"echo_delay_ms\":{},\"erle_db\":{},\"erl_db\":{}}}",
        stats.echo_delay_ms.map_or("null".into(), |v| v.to_string()),
        stats
            .echo_return_loss_enhancement_db
            .map_or("null".into(), |v| format!("{v:.1}")),
        stats
            .echo_return_loss_db
            .map_or("null".into(), |v| format!("{v:.1}")),
    );
}
