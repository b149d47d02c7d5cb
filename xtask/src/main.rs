//! `cargo xtask` — the project's two commands and their helpers.
//!
//! - `cargo xtask test`: installs what is missing, then runs everything CI checks.
//! - `cargo xtask demo [--out DIR]`: a stage server and two sim stations on loopback.
//! - `cargo xtask fuzz [--seconds N]`: runs every fuzz target for a while.
//! - `cargo xtask setup`: only installs what is missing.

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
        Some("demo") => bail!(
            "the demo needs the station daemon and the server binary, which have not landed yet"
        ),
        Some("fuzz") => {
            let seconds = flag_value(&args, "--seconds")?.unwrap_or(30);
            test::fuzz(seconds)
        }
        Some("help") | Some("--help") | None => {
            println!("usage: cargo xtask <test|demo|fuzz|setup>");
            Ok(())
        }
        Some(other) => bail!("unknown xtask command {other:?}; try `cargo xtask help`"),
    }
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
