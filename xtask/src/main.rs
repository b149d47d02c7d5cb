//! `cargo xtask` — the project's two commands and their helpers.
//!
//! - `cargo xtask test`: installs what is missing, then runs everything CI checks.
//! - `cargo xtask demo [--out DIR] [--aarch64] [--impair FLAGS] [--audio LINE]...`: a stage
//!   server and two sim stations on loopback (with `--aarch64`, the stations run as aarch64
//!   binaries under qemu; `--impair` puts impair-relay with those flags between them).
//! - `cargo xtask fuzz [--seconds N]`: runs every fuzz target for a while.
//! - `cargo xtask bench <latency|quality|cpu|rooms>`: measurements through real processes,
//!   written to `target/bench/NAME.json` (`rooms`: the room half of `quality` alone).
//! - `cargo xtask cross [--test]`: builds for aarch64 (and runs the firmware tests under qemu).
//! - `cargo xtask deb [--test]`: the arm64 Debian package (and its install test).
//! - `cargo xtask setup`: only installs what is missing.

mod analysis;
mod bench;
mod cross;
mod deb;
mod demo;
mod quality;
mod rooms;
mod setup;
mod sh;
mod test;

use anyhow::{Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = sh::workspace_root()?;
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("setup") => setup::ensure_all(),
        Some("test") => test::run(),
        Some("demo") => {
            setup::ensure_apt()?;
            quality::ensure_venv()?;
            let out = flag_string(&args, "--out").unwrap_or_else(|| "demo-out".into());
            let frame_ms = flag_value(&args, "--frame-ms")?.unwrap_or(20) as u32;
            let jitter_frames = flag_value(&args, "--jitter-frames")?.unwrap_or(1) as u32;
            // `--impair "--loss 10 --jitter 5"`: impair-relay flags for the stations' link;
            // `--audio 'noise_suppression = "high"'` (repeatable): a station [audio] line.
            let impairment = flag_string(&args, "--impair")
                .map(|f| f.split_whitespace().map(String::from).collect())
                .unwrap_or_default();
            let station_audio = args
                .windows(2)
                .filter(|w| w[0] == "--audio")
                .map(|w| w[1].clone())
                .collect();
            demo::run_demo(&demo::DemoOptions {
                frame_ms,
                jitter_frames,
                aarch64_stations: args.iter().any(|a| a == "--aarch64"),
                impairment,
                station_audio,
                ..demo::DemoOptions::new(out)
            })?;
            Ok(())
        }
        Some("bench") => match args.get(1) {
            Some(name) => bench::run_bench(name),
            None => bail!("usage: cargo xtask bench <latency|quality|cpu>"),
        },
        Some("cross") => cross::run_cross(args.iter().any(|a| a == "--test")),
        Some("deb") => {
            if args.iter().any(|a| a == "--test") {
                deb::test()
            } else {
                deb::build().map(|_| ())
            }
        }
        Some("fuzz") => {
            let seconds = flag_value(&args, "--seconds")?.unwrap_or(30);
            test::fuzz(seconds)
        }
        Some("help") | Some("--help") | None => {
            println!(
                "usage: cargo xtask <test|demo [--aarch64]|bench <latency|quality|cpu>|cross [--test]|deb [--test]|fuzz|setup>"
            );
            Ok(())
        }
        Some(other) => bail!("unknown xtask command {other:?}; try `cargo xtask help`"),
    }
}

fn flag_string(args: &[String], flag: &str) -> Option<String> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1).cloned()
}

fn flag_value(args: &[String], flag: &str) -> Result<Option<u64>> {
    match args.iter().position(|a| a == flag) {
        None => Ok(None),
        Some(i) => match args.get(i + 1).map(|v| v.parse::<u64>()) {
            Some(Ok(v)) => Ok(Some(v)),
            _ => bail!("{flag} needs a whole number"),
        },
    }
}
