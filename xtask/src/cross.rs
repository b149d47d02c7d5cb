//! `cargo xtask cross [--test]`: the workspace for `aarch64-unknown-linux-gnu` with Debian's
//! cross tool chain (rustc-web with the arm64 std, gcc-aarch64-linux-gnu, the `:arm64` C
//! libraries, pkg-config's cross settings); with `--test`, the firmware crates' tests run as
//! aarch64 binaries under qemu-aarch64. Builds go to `target/cross`, apart from the host's.

use std::process::Command;

use anyhow::{Result, bail};

use crate::sh::{cargo, run, succeeds};

pub const TARGET: &str = "aarch64-unknown-linux-gnu";

/// Debian packages of the cross tool chain (the arm64 ones need the arm64 architecture).
const CROSS_PACKAGES: &[&str] = &[
    "rustc-web",
    "libstd-rust-web-dev:arm64",
    "gcc-aarch64-linux-gnu",
    "g++-aarch64-linux-gnu",
    "libasound2-dev:arm64",
    "libopus-dev:arm64",
    "libwebrtc-audio-processing-dev:arm64",
    "qemu-user-static",
];

/// Crates whose tests run under emulation: the station's firmware.
const EMULATED_TEST_CRATES: &[&str] = &[
    "stagebox-proto",
    "stagebox-leds",
    "stagebox-core",
    "stagebox-logging",
    "stagebox-ws-link",
    "stagebox-audio",
    "stagebox-apm",
    "stagebox-hal",
    "stagebox-board",
    "stagebox-console",
];

pub fn ensure_cross_tools() -> Result<()> {
    // The host side of a cross build: the bindings' generator (libclang) and build scripts.
    crate::setup::ensure_apt()?;
    if CROSS_PACKAGES.iter().all(|p| crate::setup::installed(p)) {
        return Ok(());
    }
    if crate::setup::is_root() {
        let arches = Command::new("dpkg")
            .arg("--print-foreign-architectures")
            .output()?;
        if !String::from_utf8_lossy(&arches.stdout).contains("arm64") {
            run(Command::new("dpkg").args(["--add-architecture", "arm64"]))?;
        }
    } else {
        bail!(
            "missing cross tool chain; install it with:\n  sudo dpkg --add-architecture arm64 && sudo apt-get update && sudo apt-get install -y {}",
            CROSS_PACKAGES.join(" ")
        );
    }
    crate::setup::ensure_packages(CROSS_PACKAGES)
}

/// cargo, set up to build for aarch64 with Debian's compiler.
fn cross_cargo() -> Command {
    let mut cmd = cargo();
    cmd.env("RUSTC", "/usr/bin/rustc")
        .env("CARGO_TARGET_DIR", "target/cross")
        .env("PKG_CONFIG_ALLOW_CROSS", "1")
        .env(
            "PKG_CONFIG_LIBDIR",
            "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig",
        )
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
            "aarch64-linux-gnu-gcc",
        )
        .env("CC_aarch64_unknown_linux_gnu", "aarch64-linux-gnu-gcc")
        .env("CXX_aarch64_unknown_linux_gnu", "aarch64-linux-gnu-g++")
        .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER", QEMU);
    cmd
}

/// The emulator, without `-L`: the `:arm64` libraries pull in the multiarch `libc6:arm64`,
/// and mixing its glibc with the cross tool chain's copy under /usr/aarch64-linux-gnu (a
/// different build) makes threaded programs spin for ever in thread creation.
pub const QEMU: &str = "qemu-aarch64-static";

/// A stripped copy of the aarch64 release binary `name` (built by [`build_release`]).
fn stripped(name: &str) -> Result<std::path::PathBuf> {
    let bin = std::path::Path::new("target/cross")
        .join(TARGET)
        .join("release")
        .join(name);
    let out = std::path::Path::new("target/cross").join(format!("{name}.stripped"));
    // Written beside and renamed into place: the image's build, in a thread of its own, may
    // strip and copy the same binary while a step of the suite does.
    let partial = crate::sh::unique_sibling(&out);
    run(Command::new("aarch64-linux-gnu-strip")
        .arg("-o")
        .arg(&partial)
        .arg(&bin))?;
    std::fs::rename(&partial, &out)?;
    Ok(out)
}

/// The stripped aarch64 console service, once [`build_release`] has run.
pub fn stripped_console() -> Result<std::path::PathBuf> {
    stripped("stagebox-console")
}

/// Builds the station (its daemon and its console service) and the server for aarch64
/// (release) and returns the stripped `stationd`.
pub fn build_release() -> Result<std::path::PathBuf> {
    ensure_cross_tools()?;
    if !succeeds(Command::new("/usr/bin/rustc").arg("--version")) {
        bail!("/usr/bin/rustc (Debian's rustc-web) does not run");
    }
    run(cross_cargo().args([
        "build",
        "--release",
        "--target",
        TARGET,
        "-p",
        "stagebox-stationd",
        "-p",
        "stagebox-consoled",
        "-p",
        "stagebox-stage-server",
    ]))?;
    let bin = std::path::Path::new("target/cross")
        .join(TARGET)
        .join("release/stationd");
    let stripped = stripped("stationd")?;
    let size = std::fs::metadata(&stripped)?.len();
    println!(
        "stripped aarch64 stationd: {size} bytes ({:.2} MiB)",
        size as f64 / 1_048_576.0
    );
    run(Command::new(QEMU).arg(&bin).arg("--version"))?;
    Ok(stripped)
}

pub fn run_cross(test: bool) -> Result<()> {
    build_release()?;
    if test {
        let mut cmd = cross_cargo();
        cmd.args(["test", "--lib", "--tests", "--target", TARGET]);
        for krate in EMULATED_TEST_CRATES {
            cmd.args(["-p", krate]);
        }
        run(&mut cmd)?;
        // End to end under emulation: station cores, the server core and the Opus media
        // path together, through a lossy simulated network. Optimized, as the station runs:
        // most of the code is the release build's above, and media_loss's minutes of audio
        // took 110 s unoptimized under qemu.
        run(cross_cargo().args([
            "test",
            "--release",
            "--target",
            TARGET,
            "-p",
            "stagebox-tests",
            "--test",
            "media_loss",
            "--test",
            "stage_flow",
        ]))?;
    }
    Ok(())
}
