//! The room half of `cargo xtask bench quality`: the station's capture chain (beamformer and
//! processing module, `firmware/audio/examples/room_chain.rs`) on rooms simulated with
//! pyroomacoustics (`tools/quality/rooms.py`: image-source impulse responses, a loudspeaker a
//! hand's width from the microphones, a talker 1 m in front, babble and a fan, microphone
//! self-noise), for each board's microphone array.
//!
//! - **Echo**: ERLE while only the far end talks (echo in / what is left, per second after
//!   the canceller's first 2 s; median; the canceller's suppressor mutes what it takes for
//!   echo alone, so this reaches the microphones' own noise floor and below); under double
//!   talk, how far the output is from the talker alone (the processed double talk minus the
//!   processed talker, in dB below the echo at the microphones: echo left and talker cut
//!   alike; gain control off so both are comparable); and the talker's wideband PESQ: alone,
//!   over the echo unprocessed, over the echo through the default chain.
//! - **Noise**: PESQ of the talker in babble and in fan noise at 5 dB SNR: the first
//!   microphone as it is, beamformed, beamformed with the noise suppressor at `low` (the
//!   default) and `high`; the beamformer's SNR gain (it is linear: the talker and the noise
//!   through it separately) and the noise suppressor's noise reduction (the noise alone).
//!
//! PESQ's reference is the talker as the microphones hear it in that room, alone (through
//! the same beamformer, or the first microphone alone): PESQ cannot compare reverberant speech
//! with the dry voice (a 0.35 s room alone scores about 1.3), and what is judged here is what
//! the echo, the noise and the chain do to the talker, not the room.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::analysis;
use crate::quality;
use crate::sh::run;

/// (room, board profile whose microphone array the station has).
const SCENES: &[(&str, &str)] = &[
    ("office", "respeaker-2mic"),
    ("office", "respeaker-4mic"),
    ("hall", "respeaker-4mic"),
];

/// The talker's chain settings: beamformer, echo canceller, noise suppression, gain control.
struct Chain {
    name: &'static str,
    args: [&'static str; 4],
}

const AS_IS: Chain = Chain {
    name: "first mic, unprocessed",
    args: ["first", "no", "bypass", "no"],
};
const BEAM: Chain = Chain {
    name: "beamformed",
    args: ["beam", "no", "bypass", "no"],
};
const BEAM_NS_LOW: Chain = Chain {
    name: "beamformed + NS low",
    args: ["beam", "aec", "low", "no"],
};
const BEAM_NS_HIGH: Chain = Chain {
    name: "beamformed + NS high",
    args: ["beam", "aec", "high", "no"],
};
/// The station's defaults (`noise_suppression = "low"`, gain control on).
const DEFAULT: Chain = Chain {
    name: "default chain",
    args: ["beam", "aec", "low", "agc"],
};

/// A board's `mic_geometry_mm`, as `x,y,z;x,y,z;…`.
fn board_geometry(board: &str) -> Result<String> {
    let path = format!("board/hats/{board}.toml");
    let text = std::fs::read_to_string(&path).with_context(|| path.clone())?;
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("mic_geometry_mm"))
        .with_context(|| format!("{path} has no mic_geometry_mm"))?;
    let points: Vec<String> = line
        .trim_start_matches([' ', '='])
        .split(']')
        .map(|p| p.trim_matches(|c: char| c == '[' || c == ',' || c.is_whitespace()))
        .filter(|p| !p.is_empty())
        .map(|p| p.split(',').map(str::trim).collect::<Vec<_>>().join(","))
        .collect();
    Ok(points.join(";"))
}

fn room_chain() -> PathBuf {
    PathBuf::from("target/release/examples/room_chain")
}

/// Runs `mics` through `chain`; returns the output. The station's loudspeaker plays the far
/// end in the scenes with echo, and nothing in the others.
fn through(dir: &Path, geometry: &str, mics: &str, chain: &Chain) -> Result<Vec<f64>> {
    let out = dir.join(format!("{mics}-{}.wav", chain.args.join("-")));
    let reference = if matches!(mics, "echo" | "doubletalk") {
        dir.join("ref.wav")
    } else {
        PathBuf::from("silence")
    };
    run(Command::new(room_chain())
        .arg(dir.join(format!("{mics}.wav")))
        .arg(reference)
        .arg(&out)
        .arg(geometry)
        .args(chain.args))?;
    analysis::read_wav(&out)
}

fn energy(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>()
}

fn db(ratio: f64) -> f64 {
    10.0 * ratio.max(1e-30).log10()
}

/// Per-second energy ratios of `input` over `output` after the first `skip_s` seconds, dB.
fn per_second_db(input: &[f64], output: &[f64], skip_s: usize) -> Vec<f64> {
    let n = input.len().min(output.len());
    (skip_s..n / 48_000)
        .map(|s| {
            let r = s * 48_000..(s + 1) * 48_000;
            db(energy(&input[r.clone()]) / energy(&output[r]).max(1.0))
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    crate::bench::percentile(&v, 0.5)
}

fn pesq(dir: &Path, reference: &[f64], output: &[f64], tag: &str) -> Result<f64> {
    quality::pesq_wb(reference, output, dir, tag)
}

/// The figures of one scene, and its rows of the echo and noise tables.
fn scene(
    base: &Path,
    room: &str,
    board: &str,
    voices: &[PathBuf],
) -> Result<(Value, String, String)> {
    let dir = base.join(format!("{room}-{board}"));
    std::fs::create_dir_all(&dir)?;
    let geometry = board_geometry(board)?;
    let described = quality::simulate_room(room, &dir, voices, &geometry)?;
    // The talker alone, as the microphones hear them: the references.
    let talker_beam = through(&dir, &geometry, "near", &BEAM)?;
    let talker_first = through(&dir, &geometry, "near", &AS_IS)?;

    // Echo.
    let echo_in = through(&dir, &geometry, "echo", &BEAM)?;
    let echo_out = through(&dir, &geometry, "echo", &BEAM_NS_LOW)?;
    let erle = median(per_second_db(&echo_in, &echo_out, 2));
    let talker = through(&dir, &geometry, "near", &BEAM_NS_LOW)?;
    let both = through(&dir, &geometry, "doubletalk", &BEAM_NS_LOW)?;
    let n = talker.len().min(both.len()).min(echo_in.len());
    let leak: Vec<f64> = (0..n).map(|i| both[i] - talker[i]).collect();
    let talking = 3 * 48_000..n;
    let double_talk_db = db(energy(&echo_in[talking.clone()]) / energy(&leak[talking]).max(1.0));
    let mut talker_scores = Vec::new();
    for (mics, chain, tag) in [
        ("near", &DEFAULT, "alone"),
        ("doubletalk", &BEAM, "dt-raw"),
        ("doubletalk", &DEFAULT, "dt-chain"),
    ] {
        let out = through(&dir, &geometry, mics, chain)?;
        talker_scores.push(pesq(&dir, &talker_beam, &out, tag)?);
    }
    let [pesq_alone, pesq_raw, pesq_dt] = talker_scores[..] else {
        unreachable!("three scores");
    };
    let echo_row = format!(
        "{room:<6} | {board:<14} | {erle:>9.1} | {double_talk_db:>14.1} | {pesq_alone:>12.2} | {pesq_raw:>15.2} | {pesq_dt:>14.2} | {}\n",
        if erle >= 25.0 { "met" } else { "MISSED" }
    );

    // Noise.
    let mut noise_rows = String::new();
    let mut noise_figures = Vec::new();
    for noise in ["babble", "fan"] {
        let mixture = format!("near_{noise}");
        let mut scores = Vec::new();
        for chain in [&AS_IS, &BEAM, &BEAM_NS_LOW, &BEAM_NS_HIGH] {
            let out = through(&dir, &geometry, &mixture, chain)?;
            let reference = if chain.args[0] == "first" {
                &talker_first
            } else {
                &talker_beam
            };
            let tag = format!("{noise}-{}", chain.args.join("-"));
            scores.push((chain.name, pesq(&dir, reference, &out, &tag)?));
        }
        let noise_first = through(&dir, &geometry, noise, &AS_IS)?;
        let noise_beam = through(&dir, &geometry, noise, &BEAM)?;
        let noise_ns = through(&dir, &geometry, noise, &BEAM_NS_LOW)?;
        let snr = |speech: &[f64], noise: &[f64]| db(energy(speech) / energy(noise).max(1.0));
        let beam_gain = snr(&talker_beam, &noise_beam) - snr(&talker_first, &noise_first);
        let ns_reduction = median(per_second_db(&noise_beam, &noise_ns, 2));
        noise_rows.push_str(&format!(
            "{room:<6} | {board:<14} | {noise:<6} | {:>9.2} | {:>10.2} | {:>9.2} | {:>10.2} | {beam_gain:>13.1} | {ns_reduction:>15.1}\n",
            scores[0].1, scores[1].1, scores[2].1, scores[3].1
        ));
        noise_figures.push(json!({
            "noise": noise,
            "snr_db_first_mic": 5.0,
            "pesq_wb": scores.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "beamformer_snr_gain_db": beam_gain,
            "noise_suppressor_low_noise_reduction_db": ns_reduction,
        }));
    }
    let figures = json!({
        "room": described,
        "board": board,
        "echo": {
            "erle_db_far_end_alone": erle,
            "erle_per_second_db": per_second_db(&echo_in, &echo_out, 2),
            "echo_left_under_double_talk_db": double_talk_db,
            "pesq_wb_talker_alone_default_chain": pesq_alone,
            "pesq_wb_double_talk_unprocessed": pesq_raw,
            "pesq_wb_double_talk_default_chain": pesq_dt,
        },
        "noise": noise_figures,
    });
    Ok((figures, echo_row, noise_rows))
}

/// The echo and noise tables over every scene; `voices`: far end, talker, three babblers.
pub fn measure(base: &Path, voices: &[PathBuf]) -> Result<(Value, String)> {
    quality::ensure_room_tools()?;
    crate::bench::build_audio_example("room_chain")?;
    let mut figures = Vec::new();
    let mut echo = String::from(
        "echo: far end through the station's loudspeaker 10 cm from its mics (mildly distorting), \
         talker 1 m in front; AEC + NS low, no gain control unless said; PESQ against the \
         talker alone at the mics\n\
         room   | board          | ERLE dB   | dbl-talk error | PESQ talker  | PESQ dbl-talk   | PESQ dbl-talk  | ERLE ≥ 25\n       \
         |                | far alone | dB below echo  | alone, chain | unprocessed     | default chain  |\n\
         -------|----------------|-----------|----------------|--------------|-----------------|----------------|----------\n",
    );
    let mut noise = String::from(
        "noise: talker 1 m in front, 5 dB SNR at the first mic; wideband PESQ against the talker \
         alone at the mics\n\
         room   | board          | noise  | first mic | beamformed | + NS low  | + NS high  | beam SNR gain | NS low cuts dB\n\
         -------|----------------|--------|-----------|------------|-----------|------------|---------------|----------------\n",
    );
    for (room, board) in SCENES {
        let (f, e, n) = scene(base, room, board, voices)
            .with_context(|| format!("room {room} with {board}"))?;
        figures.push(f);
        echo.push_str(&e);
        noise.push_str(&n);
    }
    Ok((Value::Array(figures), format!("{echo}\n{noise}")))
}
