//! `cargo xtask bench NAME`: measurements through real processes, written to
//! `target/bench/NAME.json` (figures, the machine, the commit) and printed as a table.
//! Benchmarks measure; nothing here passes or fails on a figure (a missed target is printed
//! as missed).
//!
//! - `latency`: mouth-to-ear with 10 ms and 20 ms frames, over many words (their onsets
//!   falling anywhere within frames): from the moment each reached A's microphone to the
//!   moment it left B for the loudspeaker (sound-card buffers excluded).
//! - `cpu`: the station's whole audio pipeline (2-mic capture, beamforming, echo
//!   cancellation, noise suppression, gain control, VAD, encode; 3 speakers decoded and
//!   mixed) against GStreamer doing only the encode and the 3 decodes and mix, in the same
//!   run: CPU seconds per audio second of the steady work on both sides (each program's run
//!   less a run without it: the station's set-up, GStreamer's start-up) and instructions per
//!   10 ms (callgrind, likewise); and the daemon's resident memory in the demo.
//! - `quality`: wideband PESQ of B's output against A's input for several voices, over the
//!   impairment relay at 0, 5, 10, 20 % random loss and a bursty profile, with each loss
//!   protection (`off`, `fec`, `redundancy`) following the listener's reports, and
//!   redundancy from the start (the link's loss as the configured floor), beside plain
//!   libopus (opus-tools, PLC only) on the same speech.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::analysis::{self, RATE};
use crate::demo::{self, DemoOptions, OPUS_LOOKAHEAD_MS};
use crate::quality;
use crate::sh::{cargo, run};

const OUT: &str = "target/bench";

/// The benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Benchmark {
    /// Mouth-to-ear latency through the real processes.
    Latency,
    /// Speech quality (PESQ) over loss, noise and rooms.
    Quality,
    /// The station's CPU and memory against a GStreamer pipeline.
    Cpu,
    /// The room half of `quality` alone.
    Rooms,
    /// The server core's forwarding: datagrams per second per core, allocations each.
    Forward,
}

pub fn run_bench(name: Benchmark) -> Result<()> {
    crate::setup::ensure_apt()?;
    quality::ensure_venv()?;
    std::fs::create_dir_all(OUT)?;
    match name {
        Benchmark::Latency => latency(),
        Benchmark::Quality => quality_sweep(),
        Benchmark::Cpu => cpu(),
        Benchmark::Rooms => rooms_only(),
        Benchmark::Forward => forward(),
    }
}

/// The server core forwarding a speaker to 1–200 listeners, one core, no sockets
/// (`tools/server-core/examples/forward.rs`).
fn forward() -> Result<()> {
    let out = cargo()
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "stagebox-server-core",
            "--example",
            "forward",
        ])
        .output()?;
    if !out.status.success() {
        bail!(
            "the forward benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let figures: Value = serde_json::from_slice(&out.stdout)?;
    let mut table = String::from(
        "| listeners | packets in/s | datagrams out/s | µs per packet in | allocations per datagram |\n|---|---|---|---|---|\n",
    );
    for f in figures["fanouts"].as_array().into_iter().flatten() {
        table.push_str(&format!(
            "| {} | {} | {} | {:.2} | {} |\n",
            f["listeners"],
            f["packets_in_per_second_per_core"],
            f["datagrams_per_second_per_core"],
            f["us_per_packet_in"].as_f64().unwrap_or(0.0),
            f["allocations_per_datagram"]
        ));
    }
    write_result("forward", figures, &table)
}

/// The machine and the commit, for every result file.
fn provenance() -> Value {
    let text = |cmd: &mut Command| {
        cmd.output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    json!({
        "commit": text(Command::new("git").args(["rev-parse", "HEAD"])),
        "dirty": !text(Command::new("git").args(["status", "--porcelain"])).is_empty(),
        "machine": text(Command::new("uname").args(["-srm"])),
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "date": text(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])),
    })
}

fn write_result(name: &str, figures: Value, table: &str) -> Result<()> {
    let path = Path::new(OUT).join(format!("{name}.json"));
    let doc = json!({ "benchmark": name, "provenance": provenance(), "figures": figures, "table": table });
    std::fs::write(&path, serde_json::to_string_pretty(&doc)?)?;
    println!("\n{table}");
    println!("written to {}", path.display());
    Ok(())
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

// ---------------------------------------------------------------------------------------
// latency

/// The test sounds: single words with pauses between them (speech, so the noise suppressor
/// leaves them alone, and each different, so none is learned as noise). Where each word
/// falls within a frame is left to the words' lengths.
const WORDS: &str = "maple river lantern copper window garden silver orange pocket \
    marble thunder velvet harbor candle meadow puzzle rocket saddle timber violin \
    anchor blossom cactus dolphin engine falcon glacier hammer island jacket kettle \
    ladder magnet needle oyster pepper quiver ribbon salmon tablet walnut yellow zipper \
    basket button cherry";

/// Samples of each word compared: its first 120 ms.
const TEMPLATE: usize = 5760;

fn word_track(dir: &Path) -> Result<PathBuf> {
    demo::generated_speech(
        &dir.join("words.wav"),
        &["-s", "140", "-g", "35"],
        WORDS,
        0.3,
    )
}

/// Normalized cross-correlation of `template` with `signal` at `at`.
fn correlation_at(template: &[f64], signal: &[f64], at: usize) -> f64 {
    let Some(window) = signal.get(at..at + template.len()) else {
        return 0.0;
    };
    let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
    for (&x, &y) in template.iter().zip(window) {
        xy += x * y;
        xx += x * x;
        yy += y * y;
    }
    if xx <= 0.0 || yy <= 0.0 {
        0.0
    } else {
        xy / (xx * yy).sqrt()
    }
}

/// Each word's mouth-to-ear latency, ms: where the start of a word A's microphone recorded
/// reappears in B's output (normalized correlation above 0.7), searched from 0 to 300 ms;
/// and how many words were not found.
fn sound_latencies(dir: &Path, report: &Value) -> Result<(Vec<f64>, usize)> {
    let mic = analysis::read_wav(&dir.join("speaker-in.wav"))?;
    let out = analysis::read_wav(&dir.join("listener-out.wav"))?;
    let ns = |v: &Value| v.as_u64().unwrap_or(0) as f64;
    let capture_start = ns(&report["stations"]["a-1"]["audio"]["capture_start_unix_ns"]);
    let playback_start = ns(&report["stations"]["b-1"]["audio"]["playback_start_unix_ns"]);
    // B's output index of the moment A's microphone recorded sample 0.
    let offset = (capture_start - playback_start) / 1e9 * RATE;
    // The sounds as A's microphone recorded them: onsets above −40 dBFS after quiet.
    let mut starts = Vec::new();
    let mut n = 0;
    while n < mic.len() {
        if mic[n].abs() > 328.0 {
            starts.push(n);
            // Past this word: the next onset after 150 ms of quiet.
            let mut quiet = 0;
            while n < mic.len() && quiet < (0.15 * RATE) as usize {
                quiet = if mic[n].abs() > 328.0 { 0 } else { quiet + 1 };
                n += 1;
            }
        } else {
            n += 1;
        }
    }
    let mut latencies = Vec::new();
    let mut missing = 0;
    for &s in &starts {
        let Some(template) = mic.get(s..s + TEMPLATE) else {
            continue;
        };
        let base = s as f64 + offset;
        let mut best = (0.0, f64::NAN);
        for lag in 0..(0.3 * RATE) as usize {
            let at = base + lag as f64;
            if at < 0.0 {
                continue;
            }
            let c = correlation_at(template, &out, at as usize);
            if c > best.0 {
                best = (c, lag as f64 * 1000.0 / RATE);
            }
        }
        if best.0 > 0.7 {
            latencies.push(best.1);
        } else {
            missing += 1;
        }
    }
    Ok((latencies, missing))
}

fn latency() -> Result<()> {
    let mut figures = Vec::new();
    let mut table = String::from(
        "mouth-to-ear (A's microphone → B's loudspeaker, sound-card buffers excluded), words\n\
         frame | chain | words | p50 ms | p95 ms | min ms | max ms | floor ms | budget (p50)\n\
         ------|-------|-------|--------|--------|--------|--------|----------|-------------\n",
    );
    // The chain's own delay (echo canceller, noise suppressor) shows beside a run without it.
    for (frame_ms, budget, chain) in [(10u32, 30.0, true), (20, 50.0, true), (10, 30.0, false)] {
        let name = format!("{frame_ms}ms-{}", if chain { "chain" } else { "raw" });
        let dir = PathBuf::from(OUT).join(format!("latency-{name}"));
        std::fs::create_dir_all(&dir)?;
        let wav = word_track(&dir)?;
        let outcome = demo::run_demo(&DemoOptions {
            frame_ms,
            speech: Some(wav),
            station_audio: if chain {
                Vec::new()
            } else {
                PROCESSING_OFF.iter().map(|s| s.to_string()).collect()
            },
            ..DemoOptions::new(&dir)
        })?;
        let (mut l, missing) = sound_latencies(&dir, &outcome.report)?;
        l.sort_by(f64::total_cmp);
        let floor = f64::from(frame_ms) + OPUS_LOOKAHEAD_MS;
        let p50 = percentile(&l, 0.5);
        let verdict = if p50 <= budget { "met" } else { "MISSED" };
        table.push_str(&format!(
            "{frame_ms:>3} ms | {:<5} | {:>5} | {:>6.1} | {:>6.1} | {:>6.1} | {:>6.1} | {floor:>8.1} | ≤ {budget} {verdict}\n",
            if chain { "on" } else { "off" },
            l.len(),
            p50,
            percentile(&l, 0.95),
            l.first().copied().unwrap_or(f64::NAN),
            l.last().copied().unwrap_or(f64::NAN),
        ));
        if l.first().is_some_and(|&m| m < floor) {
            table.push_str("      (a figure below the floor: the measurement is wrong)\n");
        }
        figures.push(json!({
            "frame_ms": frame_ms,
            "processing_chain": chain,
            "words_measured": l.len(),
            "words_not_found": missing,
            "p50_ms": p50,
            "p95_ms": percentile(&l, 0.95),
            "min_ms": l.first(),
            "max_ms": l.last(),
            "floor_ms": floor,
            "budget_p50_ms": budget,
            "latencies_ms": l,
            "listener_frames": outcome.report["listener_frames"],
        }));
    }
    write_result("latency", Value::Array(figures), &table)
}

// ---------------------------------------------------------------------------------------
// quality

/// Voices and what they say (espeak-ng voices; none of it is the demo's sample).
const VOICES: &[(&str, &str)] = &[
    (
        "en-us+m3",
        "The committee will now hear from the residents of the east side. \
         Please keep your remarks to two minutes, and speak clearly into the microphone.",
    ),
    (
        "en+f3",
        "Thank you. I have lived on Maple Street for eleven years, and the new bus line \
         would pass right in front of the school. We ask for a crossing guard.",
    ),
];

/// Loss profiles: name, relay flags (losses towards the listener), nominal loss in percent.
fn profiles() -> Vec<(&'static str, Vec<&'static str>, u8)> {
    vec![
        ("clean", vec![], 0),
        ("random 5 %", vec!["--loss", "5"], 5),
        ("random 10 %", vec!["--loss", "10"], 10),
        ("random 20 %", vec!["--loss", "20"], 20),
        // Gilbert–Elliott: 4 % chance to enter a burst, 30 % to leave it: about 12 % loss
        // in bursts of ~3 packets.
        ("bursty ~12 %", vec!["--gilbert", "4,30"], 12),
    ]
}

/// Processing off: what the listener gets from the codec and the network alone.
const PROCESSING_OFF: &[&str] = &[
    "echo_cancellation = false",
    "noise_suppression = \"off\"",
    "gain_control = false",
    "high_pass = false",
];

/// Builds one of `stagebox-audio`'s measurement examples (release).
pub fn build_audio_example(name: &str) -> Result<()> {
    run(crate::sh::cargo().args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "stagebox-audio",
        "--example",
        name,
    ]))
}

/// The babble around the talker in the room measurements.
const BABBLERS: &[(&str, &str)] = &[
    (
        "en-gb+m1",
        "Did you see the schedule for the spring market? They moved the stalls to the north \
         lot again, so parking will be a mess on Saturday morning.",
    ),
    (
        "en-us+f2",
        "My daughter plays in the youth orchestra, and the rehearsal room has no heating \
         since October. Someone should write to the council about it.",
    ),
    (
        "en+m7",
        "I think the library hours are fine, but the reading room closes far too early for \
         anyone who works until six in the evening.",
    ),
];

/// Far end, talker and babblers for the room measurements.
fn room_voices(dir: &Path) -> Result<Vec<PathBuf>> {
    VOICES
        .iter()
        .chain(BABBLERS)
        .enumerate()
        .map(|(i, (v, t))| voice_sample(dir, i, v, t))
        .collect()
}

/// The room half of `quality` alone.
fn rooms_only() -> Result<()> {
    let dir = PathBuf::from(OUT).join("rooms");
    std::fs::create_dir_all(&dir)?;
    let (figures, table) = crate::rooms::measure(&dir, &room_voices(&dir)?)?;
    write_result("rooms", figures, &table)
}

fn voice_sample(dir: &Path, index: usize, voice: &str, text: &str) -> Result<PathBuf> {
    let wav = dir.join(format!("voice{index}.wav"));
    demo::generated_speech(&wav, &["-v", voice, "-s", "150"], text, 0.3)
}

/// Plain libopus on `wav` (32 kbit/s, 20 ms, opus-tools), decoded with `loss` percent random
/// loss and its PLC only: wideband PESQ.
fn plain_libopus(dir: &Path, wav: &Path, loss: u8, tag: &str) -> Result<f64> {
    let encoded = dir.join(format!("{tag}.opus"));
    let decoded = dir.join(format!("{tag}-dec.wav"));
    run(Command::new("opusenc")
        .args(["--quiet", "--bitrate", "32", "--framesize", "20"])
        .arg(wav)
        .arg(&encoded))?;
    run(Command::new("opusdec")
        .args([
            "--quiet",
            "--rate",
            "48000",
            "--packet-loss",
            &loss.to_string(),
        ])
        .arg(&encoded)
        .arg(&decoded))?;
    let reference = analysis::read_wav(wav)?;
    let output = analysis::read_wav(&decoded)?;
    quality::pesq_wb(&reference, &output, dir, tag)
}

fn quality_sweep() -> Result<()> {
    crate::setup::ensure_packages(&["opus-tools"])?;
    let dir = PathBuf::from(OUT).join("quality");
    std::fs::create_dir_all(&dir)?;
    let voices: Vec<PathBuf> = VOICES
        .iter()
        .enumerate()
        .map(|(i, (v, t))| voice_sample(&dir, i, v, t))
        .collect::<Result<_>>()?;
    let mut figures = Vec::new();
    let mut table = String::from(
        "wideband PESQ of B's output against A's input (mean over voices), 32 kbit/s, 20 ms\n\
         link          | chain | protection  | PESQ | played | copies | FEC | concealed | late | plain libopus (PLC)\n\
         --------------|-------|-------------|------|--------|--------|-----|-----------|------|--------------------\n",
    );
    let mut runs = Vec::new();
    for (name, flags, loss) in profiles() {
        // (loss_protection, configured floor)
        let protections: &[(&str, bool)] = if loss == 0 {
            &[("redundancy", false)]
        } else {
            &[
                ("off", false),
                ("fec", false),
                ("redundancy", false),
                ("redundancy", true),
            ]
        };
        for &(protection, floor) in protections {
            runs.push((name, flags.clone(), loss, protection, floor, true));
        }
    }
    runs.insert(1, ("clean", vec![], 0, "redundancy", false, false));
    for (name, flags, loss, protection, floor, chain) in runs {
        let label = if floor {
            format!("{protection}+")
        } else {
            protection.to_string()
        };
        let mut scores = Vec::new();
        let mut frames = [0u64; 5];
        for (i, wav) in voices.iter().enumerate() {
            let tag = format!(
                "{}-{}-{protection}{}-v{i}",
                name.replace([' ', '%', '~'], ""),
                if chain { "chain" } else { "raw" },
                if floor { "-floor" } else { "" },
            );
            // Protection follows what the listener reports (from its first report, within a
            // second of the first loss), or with the floor, covers the link's loss from the
            // first frame.
            let mut station_audio = vec![
                format!("loss_protection = \"{protection}\""),
                format!("expected_loss_percent = {}", if floor { loss } else { 0 }),
            ];
            if !chain {
                station_audio.extend(PROCESSING_OFF.iter().map(|s| s.to_string()));
            }
            let mut impairment: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
            if !impairment.is_empty() {
                impairment.extend(["--direction", "down", "--seed", "7"].map(String::from));
            }
            let outcome = demo::run_demo(&DemoOptions {
                speech: Some(wav.clone()),
                impairment,
                station_audio,
                ..DemoOptions::new(dir.join(&tag))
            })
            .with_context(|| format!("quality run {tag}"))?;
            scores.push(outcome.pesq.map_err(anyhow::Error::msg)?);
            let f = &outcome.report["listener_frames"];
            for (k, key) in [
                "played",
                "recovered_redundant",
                "recovered_fec",
                "concealed",
                "late",
            ]
            .iter()
            .enumerate()
            {
                frames[k] += f[*key].as_u64().unwrap_or(0);
            }
        }
        let mean = scores.iter().sum::<f64>() / scores.len() as f64;
        let plain: Option<f64> = if name.starts_with("bursty") || !chain {
            None
        } else {
            let s = voices
                .iter()
                .enumerate()
                .map(|(i, wav)| plain_libopus(&dir, wav, loss, &format!("libopus-{loss}-v{i}")))
                .collect::<Result<Vec<f64>>>()?;
            Some(s.iter().sum::<f64>() / s.len() as f64)
        };
        table.push_str(&format!(
            "{name:<13} | {:<5} | {label:<11} | {mean:.2} | {:>6} | {:>6} | {:>3} | {:>9} | {:>4} | {}\n",
            if chain { "on" } else { "off" },
            frames[0],
            frames[1],
            frames[2],
            frames[3],
            frames[4],
            plain.map_or("n/a".to_string(), |p| format!("{p:.2}")),
        ));
        figures.push(json!({
            "link": name,
            "relay_flags": flags,
            "processing_chain": chain,
            "loss_protection": protection,
            "configured_floor_percent": if floor { loss } else { 0 },
            "pesq_wb_per_voice": scores,
            "pesq_wb_mean": mean,
            "listener_frames": {
                "played": frames[0],
                "recovered_redundant": frames[1],
                "recovered_fec": frames[2],
                "concealed": frames[3],
                "late": frames[4],
            },
            "plain_libopus_plc_pesq_wb": plain,
        }));
    }
    table.push_str(
        "protection: as the listener reports (its first report within a second of the first \
         loss); `+`: the link's loss configured as the floor (audio.expected_loss_percent); \
         copies: lost frames played from redundant copies\n",
    );
    table.push_str(&quality_verdicts(&figures));
    let rooms_dir = dir.join("rooms");
    std::fs::create_dir_all(&rooms_dir)?;
    let (rooms, rooms_table) = crate::rooms::measure(&rooms_dir, &room_voices(&rooms_dir)?)?;
    write_result(
        "quality",
        json!({ "network": figures, "rooms": rooms }),
        &format!("{table}\n{rooms_table}"),
    )
}

/// The targets, judged on the default configuration (chain on, redundancy as reported) and
/// on redundancy from the start.
fn quality_verdicts(figures: &[Value]) -> String {
    let pesq = |link: &str, chain: bool, floor: bool, key: &str| {
        figures
            .iter()
            .find(|f| {
                f["link"] == link
                    && f["processing_chain"] == chain
                    && f["loss_protection"] == "redundancy"
                    && (f["configured_floor_percent"] != 0) == floor
            })
            .and_then(|f| f[key].as_f64())
    };
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut out = String::new();
    if let (Some(station), Some(plain)) = (
        pesq("clean", true, false, "pesq_wb_mean"),
        pesq("clean", true, false, "plain_libopus_plc_pesq_wb"),
    ) {
        out.push_str(&format!(
            "target lossless within 0.1 of plain libopus: {station:.2} vs {plain:.2}, {}\n",
            verdict(plain - station <= 0.1)
        ));
    }
    for (link, target) in [("random 10 %", 3.5), ("random 20 %", 2.8)] {
        let reported = pesq(link, true, false, "pesq_wb_mean");
        let floor = pesq(link, true, true, "pesq_wb_mean");
        if let (Some(r), Some(f)) = (reported, floor) {
            out.push_str(&format!(
                "target ≥ {target} at {link}: {r:.2} as reported, {}; {f:.2} from the start, {}\n",
                verdict(r >= target),
                verdict(f >= target)
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// cpu

/// What a bash script printed (its standard output), GStreamer kept from forking its
/// registry scan into another process.
fn bash_output(script: &str) -> Result<(bool, String)> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("GST_REGISTRY_FORK", "no")
        .output()
        .context("bash")?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// CPU seconds (user + system, all threads) of a shell command.
fn cpu_seconds_of(command: &str) -> Result<f64> {
    let (ok, text) = bash_output(&format!(
        "TIMEFORMAT='%3U %3S'; {{ time {command} >/dev/null 2>/dev/null ; }} 2>&1"
    ))?;
    let parts: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    if !ok || parts.len() != 2 {
        bail!("timing `{command}` failed: {text}");
    }
    Ok(parts[0] + parts[1])
}

/// Instructions a command executes, by callgrind.
fn instructions_of(command: &str) -> Result<f64> {
    let (_, text) = bash_output(&format!(
        "valgrind --tool=callgrind --callgrind-out-file=/dev/null {command} 2>&1 >/dev/null"
    ))?;
    text.lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .with_context(|| format!("callgrind said: {text}"))
}

/// The GStreamer pipelines the station is compared with, over `seconds` of audio: an
/// encode branch (`opusenc ! rtpopuspay`) and three decode branches into a mixer.
fn gstreamer_commands(dir: &Path, speech: &Path, seconds: usize) -> Result<(String, String)> {
    let long = dir.join(format!("speech-{seconds}s.wav"));
    run(Command::new("sox").arg(speech).arg(&long).args([
        "repeat",
        "100",
        "trim",
        "0",
        &seconds.to_string(),
    ]))?;
    let mut decode = String::from(
        "gst-launch-1.0 -q audiomixer name=mix ! audio/x-raw,rate=48000,channels=1 ! fakesink sync=false",
    );
    for i in 0..3 {
        let ogg = dir.join(format!("speaker{i}-{seconds}s.opus"));
        run(Command::new("opusenc")
            .args(["--quiet", "--bitrate", "32", "--framesize", "20"])
            .arg(&long)
            .arg(&ogg))?;
        decode.push_str(&format!(
            " filesrc location={} ! oggdemux ! opusdec ! mix.",
            ogg.display()
        ));
    }
    let encode = format!(
        "gst-launch-1.0 -q filesrc location={} ! wavparse ! audioconvert ! \
         opusenc bitrate=32000 frame-size=20 ! rtpopuspay ! fakesink sync=false",
        long.display()
    );
    Ok((encode, decode))
}

fn cpu() -> Result<()> {
    crate::setup::ensure_packages(&[
        "gstreamer1.0-tools",
        "gstreamer1.0-plugins-base",
        "gstreamer1.0-plugins-good",
        "opus-tools",
        "valgrind",
    ])?;
    let dir = PathBuf::from(OUT).join("cpu");
    std::fs::create_dir_all(&dir)?;
    let speech = voice_sample(&dir, 0, VOICES[0].0, VOICES[0].1)?;
    build_audio_example("pipeline_cpu")?;
    let station = |seconds: usize| {
        format!(
            "target/release/examples/pipeline_cpu {} {seconds}",
            speech.display()
        )
    };
    const SECONDS: usize = 60;
    const SHORT: usize = 5;
    let (gst_encode, gst_decode) = gstreamer_commands(&dir, &speech, SECONDS)?;
    let (gst_encode_short, gst_decode_short) = gstreamer_commands(&dir, &speech, SHORT)?;
    let (gst_encode_1s, gst_decode_1s) = gstreamer_commands(&dir, &speech, 1)?;

    // CPU time of the same work on both sides: each program's whole run (all its threads)
    // less a run that does everything but the steady work — the station's example without
    // its loop (set-up: the three speakers' streams encoded beforehand, the chain built),
    // GStreamer's pipelines over 1 s instead of 60 s (start-up, registry, pipeline) — so
    // what is left is 60 s of audio worked through, against 59 s for GStreamer. Side by side,
    // three rounds each, the best of each.
    let setup_only = format!("{} setup-only", station(SECONDS));
    let commands = [
        station(SECONDS),
        setup_only,
        gst_encode.clone(),
        gst_encode_1s.clone(),
        gst_decode.clone(),
        gst_decode_1s.clone(),
    ];
    let mut best = [f64::MAX; 6];
    for _ in 0..3 {
        for (b, command) in best.iter_mut().zip(&commands) {
            *b = b.min(cpu_seconds_of(command)?);
        }
    }
    let steady = (SECONDS - 1) as f64;
    let per_second = [
        (best[0] - best[1]) / SECONDS as f64,
        (best[2] - best[3]) / steady,
        (best[4] - best[5]) / steady,
    ];
    let gst_total = per_second[1] + per_second[2];
    // Instructions per 10 ms, counted by callgrind, set-up excluded: the station's loop is
    // its whole run less a run that only sets up; GStreamer's is a 5 s run less a 1 s run,
    // over the 4 s between.
    let periods = (SHORT * 100) as f64;
    let instr = [
        (instructions_of(&station(SHORT))?
            - instructions_of(&format!("{} setup-only", station(SHORT)))?)
            / periods,
        (instructions_of(&gst_encode_short)? - instructions_of(&gst_encode_1s)?)
            / ((SHORT - 1) * 100) as f64,
        (instructions_of(&gst_decode_short)? - instructions_of(&gst_decode_1s)?)
            / ((SHORT - 1) * 100) as f64,
    ];
    let instr_gst = instr[1] + instr[2];
    // Resident memory of the daemons in a demo run.
    let demo = demo::run_demo(&DemoOptions::new(dir.join("demo")))?;
    let rss = |id: &str| demo.report["stations"][id]["process"]["rss_kib"].as_u64();
    let rss_max = [rss("a-1"), rss("b-1")].into_iter().flatten().max();

    let ratio = per_second[0] / gst_total;
    let table = format!(
        "CPU per audio second and instructions per 10 ms, same machine, same run\n\
         (steady work only: set-up and start-up subtracted on both sides, see below)\n\
         pipeline                                                     | CPU s / audio s | instructions / 10 ms\n\
         -------------------------------------------------------------|-----------------|---------------------\n\
         station: 2 mics, beamform, AEC, NS, AGC, VAD, encode + 3 jitter buffers, decodes, mix | {:.5} | {:.0}\n\
         GStreamer: WAV file ! opusenc ! rtpopuspay                   | {:.5} | {:.0}\n\
         GStreamer: 3 × Ogg file ! oggdemux ! opusdec → audiomixer    | {:.5} | {:.0}\n\
         ratio station / GStreamer (target ≤ 0.8)                     | {ratio:.2} {} | {:.2}\n\
         daemon resident memory in the demo: {} (budget 16 MiB)\n",
        per_second[0],
        instr[0],
        per_second[1],
        instr[1],
        per_second[2],
        instr[2],
        if ratio <= 0.8 { "met" } else { "MISSED" },
        instr[0] / instr_gst,
        rss_max.map_or("unknown".to_string(), |k| format!(
            "{:.1} MiB",
            k as f64 / 1024.0
        )),
    );
    let figures = json!({
        "audio_seconds": SECONDS,
        "what_is_measured": "CPU seconds (user + system, every thread) of each program's run \
            less a run without the steady work: the station's example without its loop \
            (streams encoded and chain built beforehand), GStreamer's pipelines over 1 s \
            instead of 60 s; per second of audio worked through (60 s station, 59 s \
            GStreamer). GStreamer's rows also read and parse files (WAV, Ogg), which the \
            station's loop does not; the station's loop does not packetize RTP or encrypt, \
            which GStreamer's encode row packetizes (no encryption).",
        "best_cpu_seconds": {
            "station_run": best[0], "station_setup_only": best[1],
            "gstreamer_encode_60s": best[2], "gstreamer_encode_1s": best[3],
            "gstreamer_decode_60s": best[4], "gstreamer_decode_1s": best[5],
        },
        "cpu_seconds_per_audio_second": {
            "station_pipeline": per_second[0],
            "gstreamer_encode": per_second[1],
            "gstreamer_3_decodes_and_mix": per_second[2],
            "ratio_station_to_gstreamer": ratio,
        },
        "instructions_per_10ms": {
            "station_pipeline": instr[0],
            "gstreamer_encode": instr[1],
            "gstreamer_3_decodes_and_mix": instr[2],
            "ratio_station_to_gstreamer": instr[0] / instr_gst,
        },
        "daemon_rss_kib": { "a-1": rss("a-1"), "b-1": rss("b-1") },
        "gstreamer_commands": [gst_encode, gst_decode],
    });
    write_result("cpu", figures, &table)
}
