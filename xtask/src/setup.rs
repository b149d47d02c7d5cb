//! Installs what the build, the tests and the demo need on a fresh Debian / Raspberry Pi OS
//! machine: Debian packages (when root; otherwise prints the one command to run), rustup
//! components and cargo tools.

use std::process::Command;

use anyhow::{Result, bail};

use crate::sh::{cargo, run, succeeds};

/// Debian packages: C libraries the crates link, and the real peers tests and demo use.
pub const APT_PACKAGES: &[&str] = &[
    "pkg-config",
    "libopus-dev",
    "libasound2-dev",
    // Echo cancellation, noise suppression, gain control (the WebRTC audio processing module;
    // its Rust bindings are generated with libclang and its C++ shim built with g++).
    "libwebrtc-audio-processing-dev",
    "libclang-dev",
    "g++",
    "espeak-ng",
    "sox",
    "tshark",
    "iproute2",
    // The console's end-to-end tests: a pty pair for the serial line, a terminal to type in,
    // and the station's own ping.
    "socat",
    "tmux",
    "iputils-ping",
    // The quality judge's venv (pesq builds a C extension).
    "python3-venv",
    "python3-dev",
    "gcc",
];

/// Whether a Debian package is installed: `name:arch` for that architecture, a bare name
/// for this machine's own (or `all`) — the cross tool chain's `libopus-dev:arm64` is not the
/// host's `libopus-dev`.
pub fn installed(package: &str) -> bool {
    let (name, arch) = match package.split_once(':') {
        Some((name, arch)) => (name, arch.to_string()),
        None => (package, native_architecture()),
    };
    Command::new("dpkg-query")
        .args(["-W", "-f=${Architecture} ${Status}\n", name])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout).lines().any(|l| {
                l.strip_suffix(" install ok installed")
                    .is_some_and(|a| a == arch || a == "all")
            })
        })
}

/// dpkg's architecture of this machine (`amd64`, `arm64`).
fn native_architecture() -> String {
    Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub fn ensure_apt() -> Result<()> {
    ensure_packages(APT_PACKAGES)
}

/// Installs the Debian packages of `packages` that are missing (as root; otherwise says the
/// command to run).
pub fn ensure_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_root() {
        bail!("missing Debian packages; install them with:\n  sudo apt-get install -y {list}");
    }
    println!("installing Debian packages: {list}");
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing))?;
    Ok(())
}

pub fn ensure_rust_components() -> Result<()> {
    for (probe, component) in [("fmt", "rustfmt"), ("clippy", "clippy")] {
        if !succeeds(cargo().args([probe, "--version"])) {
            run(Command::new("rustup").args(["component", "add", component]))?;
        }
    }
    Ok(())
}

/// cargo-fuzz on a nightly tool chain, for the fuzz targets.
pub fn ensure_fuzz_tools() -> Result<()> {
    if !succeeds(Command::new("rustup").args(["run", "nightly", "rustc", "--version"])) {
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    if !succeeds(crate::sh::nightly_cargo().args(["fuzz", "--version"])) {
        run(cargo().args(["install", "--locked", "cargo-fuzz"]))?;
    }
    Ok(())
}

pub fn ensure_all() -> Result<()> {
    ensure_apt()?;
    crate::quality::ensure_venv()?;
    ensure_rust_components()?;
    ensure_fuzz_tools()
}
