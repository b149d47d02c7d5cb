//! Speech quality: wideband PESQ (ITU-T P.862.2, the `pesq` package from PyPI) of what a
//! listener played against what the speaker said, through a Python venv the project makes
//! for itself (`target/venv`), so nothing is installed by hand.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::sh::{run, succeeds};

/// The project's own Python environment.
pub const VENV: &str = "target/venv";
/// Python packages the quality judge needs.
const PYTHON_PACKAGES: &[&str] = &["numpy", "pesq==0.0.4"];
const SCRIPT: &str = "tools/quality/pesq_wb.py";
/// The room simulator for the echo and noise measurements (a benchmark's alone, so the tests
/// do not download it).
const ROOM_PACKAGE: &str = "pyroomacoustics==0.10.1";
const ROOM_SCRIPT: &str = "tools/quality/rooms.py";

fn python() -> PathBuf {
    Path::new(VENV).join("bin/python")
}

/// Makes `target/venv` with the packages, if it is not there yet.
pub fn ensure_venv() -> Result<()> {
    if succeeds(Command::new(python()).args(["-c", "import pesq, numpy"])) {
        return Ok(());
    }
    run(Command::new("python3").args(["-m", "venv", VENV]))?;
    run(Command::new(python())
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PYTHON_PACKAGES))?;
    Ok(())
}

/// Adds the room simulator to the venv, if it is not there yet.
pub fn ensure_room_tools() -> Result<()> {
    ensure_venv()?;
    if succeeds(Command::new(python()).args(["-c", "import pyroomacoustics"])) {
        return Ok(());
    }
    run(Command::new(python()).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        ROOM_PACKAGE,
    ]))
}

/// Simulates `room` (see `tools/quality/rooms.py`) with a board's microphones at
/// `geometry` (`x,y,z;…` mm), voices: far end, talker, three babblers. Writes the scene's
/// WAVs into `dir`; returns the room's description.
pub fn simulate_room(
    room: &str,
    dir: &Path,
    voices: &[PathBuf],
    geometry: &str,
) -> Result<serde_json::Value> {
    let out = Command::new(python())
        .arg(ROOM_SCRIPT)
        .arg(room)
        .arg(dir)
        .args(voices)
        .arg(geometry)
        .output()
        .context("running the room simulator")?;
    if !out.status.success() {
        bail!("room simulator: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).with_context(|| format!("room simulator printed {text:?}"))
}

/// Writes `samples` (48 kHz) as a 16 kHz 16-bit mono WAV at `path`, resampled by sox.
fn write_16k(samples: &[f64], path: &Path) -> Result<()> {
    let wide = path.with_extension("48k.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wide, spec)?;
    for &s in samples {
        w.write_sample(s.round().clamp(-32768.0, 32767.0) as i16)?;
    }
    w.finalize()?;
    run(Command::new("sox")
        .arg(&wide)
        .args(["-r", "16000"])
        .arg(path))?;
    std::fs::remove_file(&wide)?;
    Ok(())
}

/// Wideband PESQ of `degraded` against `reference`, both 48 kHz and already aligned (the
/// degraded signal's sample `i` answers the reference's sample `i`). Work files go to `dir`.
pub fn pesq_wb(reference: &[f64], degraded: &[f64], dir: &Path, name: &str) -> Result<f64> {
    ensure_venv()?;
    let n = reference.len().min(degraded.len());
    if n < 48_000 {
        bail!("{name}: under a second of audio to judge");
    }
    let (r, d) = (
        dir.join(format!("{name}-ref16k.wav")),
        dir.join(format!("{name}-deg16k.wav")),
    );
    write_16k(&reference[..n], &r)?;
    write_16k(&degraded[..n], &d)?;
    let out = Command::new(python())
        .arg(SCRIPT)
        .arg(&r)
        .arg(&d)
        .output()
        .context("running the PESQ judge")?;
    if !out.status.success() {
        bail!("PESQ: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse::<f64>()
        .with_context(|| format!("PESQ printed {text:?}"))
}

/// The slice of `output` that answers `input` when output lags input by `lag` samples
/// (negative: leads), padded with silence where the output ran out.
pub fn aligned(output: &[f64], lag: i64, len: usize) -> Vec<f64> {
    (0..len as i64)
        .map(|i| {
            usize::try_from(i + lag)
                .ok()
                .and_then(|j| output.get(j))
                .copied()
                .unwrap_or(0.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_shifts_and_pads() {
        let out = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(aligned(&out, 2, 3), vec![3.0, 4.0, 0.0]);
        assert_eq!(aligned(&out, -1, 3), vec![0.0, 1.0, 2.0]);
    }
}
