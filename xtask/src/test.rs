//! `cargo xtask test`: everything CI checks, in order of cost.

use anyhow::Result;

use crate::setup;
use crate::sh::{cargo, nightly_cargo, run as sh};

/// Fuzz targets under fuzz/ (one per parser of outside bytes).
pub const FUZZ_TARGETS: &[&str] = &["signal_client", "signal_server", "media_packet"];

fn run_all() -> Result<()> {
    setup::ensure_all()?;
    sh(cargo().args(["fmt", "--all", "--", "--check"]))?;
    sh(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    sh(cargo().args(["test", "--workspace"]))?;
    // The fuzz targets must keep building; `cargo xtask fuzz` runs them.
    sh(nightly_cargo().args(["fuzz", "build", "--dev"]))?;
    Ok(())
}

pub fn run() -> Result<()> {
    run_all()?;
    println!("xtask test: all checks passed");
    Ok(())
}

pub fn fuzz(seconds: u64) -> Result<()> {
    setup::ensure_fuzz_tools()?;
    for target in FUZZ_TARGETS {
        sh(nightly_cargo().args([
            "fuzz",
            "run",
            target,
            "--",
            &format!("-max_total_time={seconds}"),
        ]))?;
    }
    Ok(())
}
