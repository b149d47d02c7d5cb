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
//! - `cargo xtask image [--board qemu|pi4] [--keyring PEM]`: the station's SD card image
//!   (root needed); `--test [--power-cuts N]` boots the qemu image and updates, refuses,
//!   rolls back and cuts its power (`image_test.rs`).
//! - `cargo xtask bundle [--board B] [--version V] [--cert PEM --key PATH|URI]`: a signed
//!   verity RAUC bundle of the built root.
//! - `cargo xtask yocto <crates|check>`: the Yocto layer's crate list from Cargo.lock, and
//!   its checks (the list matches, oelint-adv is clean).
//! - `cargo xtask browser [--out DIR]`: Debian's Chromium joins a stage from its listener
//!   link, hears a sim station, raises its hand, is invited and speaks to another
//!   (`browser_test.rs`); with `--crowd N`, N listeners and two stations on one stage, and
//!   the server's CPU per browser listener (`crowd_test.rs`).
//! - `cargo xtask setup`: only installs what is missing.

mod analysis;
mod bench;
mod browser_test;
mod bundle;
mod cross;
mod crowd_test;
mod deb;
mod deb_boot;
mod demo;
mod image;
mod image_test;
mod quality;
mod rooms;
mod setup;
mod sh;
mod test;
mod uboot;
mod yocto;

use anyhow::Result;
use clap::{Parser, Subcommand};

pub use bench::Benchmark;

/// The project's commands.
#[derive(Debug, Parser)]
#[command(name = "xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install what is missing, then run everything CI checks.
    Test,
    /// A stage server and two sim stations on loopback, talking; a report in --out.
    Demo {
        /// Where the report, logs and recordings go.
        #[arg(long, default_value = "demo-out")]
        out: String,
        /// The stations' Opus frame, ms.
        #[arg(long, default_value_t = 20)]
        frame_ms: u32,
        /// The stations' least jitter-buffer target, frames.
        #[arg(long, default_value_t = 1)]
        jitter_frames: u32,
        /// Run the stations as aarch64 binaries under qemu.
        #[arg(long)]
        aarch64: bool,
        /// impair-relay flags for the stations' link, e.g. "--loss 10 --jitter 5".
        #[arg(long, allow_hyphen_values = true, value_name = "FLAGS")]
        impair: Option<String>,
        /// A line for the stations' [audio] section (repeatable), e.g.
        /// 'noise_suppression = "high"'.
        #[arg(long, value_name = "LINE")]
        audio: Vec<String>,
    },
    /// Measurements through real processes, written to target/bench/NAME.json.
    Bench {
        #[arg(value_enum)]
        name: Benchmark,
    },
    /// Build for aarch64 (and run the firmware tests under qemu with --test).
    Cross {
        #[arg(long)]
        test: bool,
    },
    /// The arm64 Debian package (and its install test with --test).
    Deb {
        #[arg(long)]
        test: bool,
    },
    /// Run every fuzz target for a while.
    Fuzz {
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    /// The station's SD card image: target/image/stagebox-BOARD.img (needs root).
    Image {
        #[arg(long, value_enum, default_value = "qemu")]
        board: image::Board,
        /// The certificate (or CA) whose bundles the image installs; the development key's
        /// when not given.
        #[arg(long, value_name = "PEM")]
        keyring: Option<std::path::PathBuf>,
        /// Build the qemu image and test it: boot, update, refusals, rollback, power cuts.
        #[arg(long)]
        test: bool,
        /// With --test: how many times the power is cut (CI runs 3: one each while
        /// downloading, installing and in a first boot).
        #[arg(long, default_value_t = 3, requires = "test")]
        power_cuts: u32,
        /// With --test: plain healthy reboots that must stay on their slot (CI runs 0: its
        /// reboot with both slots' tries spent and its power-on after the environment is
        /// garbled each stay on the slot already).
        #[arg(long, default_value_t = 1, requires = "test")]
        healthy_reboots: u32,
        /// With --test: the image is built already (target/image/stagebox-qemu.img).
        #[arg(long, requires = "test")]
        reuse_image: bool,
        /// With --test: the part that runs inside the test's network namespace.
        #[arg(long, hide = true, requires = "test")]
        in_namespace: bool,
    },
    /// A signed, verity-format RAUC bundle of the built root (`cargo xtask image` first).
    Bundle {
        #[arg(long, value_enum, default_value = "qemu")]
        board: image::Board,
        /// MAJOR.MINOR.PATCH (the workspace's version when not given).
        #[arg(long)]
        version: Option<String>,
        /// The signing certificate (the development one when not given).
        #[arg(long, value_name = "PEM", requires = "key")]
        cert: Option<std::path::PathBuf>,
        /// Its key: a file, or a PKCS#11 URI (`pkcs11:token=…;object=…`).
        #[arg(long, value_name = "PATH|URI", requires = "cert")]
        key: Option<String>,
        /// Where the bundle goes (target/image/stagebox-BOARD-VERSION.raucb).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// The Yocto layer (yocto/meta-stagebox).
    Yocto {
        #[arg(value_enum)]
        action: YoctoAction,
    },
    /// Only install what is missing.
    Setup,
    /// Debian's Chromium on a stage: joins from the listener link, hears a sim station, is
    /// invited and speaks to another.
    Browser {
        /// Where the report, logs, recordings and screenshots go.
        #[arg(long, default_value = "target/browser-test/run")]
        out: std::path::PathBuf,
        /// Instead: this many listeners in browser contexts and two stations on one stage;
        /// all must hear the speaker, and the server's CPU per listener is measured.
        #[arg(long, value_name = "N")]
        crowd: Option<usize>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum YoctoAction {
    /// Write the daemon recipe's crate list from Cargo.lock.
    Crates,
    /// Check that the crate list matches Cargo.lock and that oelint-adv is clean.
    Check,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = sh::workspace_root()?;
    std::env::set_current_dir(&root)?;
    match cli.command {
        Task::Setup => setup::ensure_all(),
        Task::Browser { out, crowd: None } => {
            setup::ensure_apt()?;
            quality::ensure_venv()?;
            browser_test::run_browser_test(&out).map(|_| ())
        }
        Task::Browser {
            out,
            crowd: Some(n),
        } => {
            setup::ensure_apt()?;
            let outcome = crowd_test::run_crowd_test(&out, n)?;
            crowd_test::check(&outcome)
        }
        Task::Test => test::run(),
        Task::Demo {
            out,
            frame_ms,
            jitter_frames,
            aarch64,
            impair,
            audio,
        } => {
            setup::ensure_apt()?;
            quality::ensure_venv()?;
            demo::run_demo(&demo::DemoOptions {
                frame_ms,
                jitter_frames,
                aarch64_stations: aarch64,
                impairment: impair
                    .map(|f| f.split_whitespace().map(String::from).collect())
                    .unwrap_or_default(),
                station_audio: audio,
                ..demo::DemoOptions::new(out)
            })?;
            Ok(())
        }
        Task::Bench { name } => bench::run_bench(name),
        Task::Cross { test } => cross::run_cross(test),
        Task::Deb { test: true } => deb::test(),
        Task::Deb { test: false } => deb::build().map(|_| ()),
        Task::Fuzz { seconds } => test::fuzz(seconds),
        Task::Image {
            test: true,
            power_cuts,
            healthy_reboots,
            reuse_image,
            in_namespace,
            ..
        } => {
            let opts = image_test::TestOptions {
                power_cuts,
                healthy_reboots,
                reuse_image,
            };
            if in_namespace {
                image_test::run_inside(opts)
            } else {
                image_test::run_test(opts)
            }
        }
        Task::Image { board, keyring, .. } => image::build(board, keyring.as_deref()).map(|_| ()),
        Task::Bundle {
            board,
            version,
            cert,
            key,
            out,
        } => {
            let version = match version {
                Some(v) => v,
                None => deb::version()?,
            };
            let signer = match (cert, key) {
                (Some(cert), Some(key)) => bundle::Signer { cert, key },
                _ => bundle::dev_signer()?,
            };
            let out = out.unwrap_or_else(|| {
                format!("target/image/stagebox-{}-{version}.raucb", board.name()).into()
            });
            bundle::make(board, &version, &signer, &[], &out).map(|_| ())
        }
        Task::Yocto {
            action: YoctoAction::Crates,
        } => yocto::write_crates(),
        Task::Yocto {
            action: YoctoAction::Check,
        } => yocto::check(),
    }
}
