//! Files over the console line, with progress bars: an update bundle pushed (resumed where a
//! pulled cable stopped it), and the support bundle fetched (checked against its SHA-256).

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::link::{ANSWER_LIMIT, Link, text_of};

/// Bytes per pushed piece: its base64 and the request fit one frame (4096 bytes).
const PIECE: usize = 2048;

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

fn sha256(data: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data))
}

/// One piece (empty: just "where are we"); the station's figure back.
fn piece(link: &mut Link, size: u64, sha: &str, offset: u64, data: &[u8]) -> Result<(u64, bool)> {
    let body = json!({"push": {
        "size": size,
        "sha256": sha,
        "offset": offset,
        "data": base64::engine::general_purpose::STANDARD.encode(data),
    }});
    let answer = link.call(body, ANSWER_LIMIT, &mut |_| true)?;
    let text = text_of(&answer)?;
    let v: Value = serde_json::from_str(&text).context("the station's answer to a piece")?;
    Ok((
        v["have"]
            .as_u64()
            .context("the station's answer to a piece")?,
        v["complete"] == true,
    ))
}

pub fn push(link: &mut Link, bundle: &Path, stop: &AtomicBool) -> Result<()> {
    let data = std::fs::read(bundle).with_context(|| format!("{}", bundle.display()))?;
    let size = data.len() as u64;
    let sha = sha256(&data);
    let (mut have, mut complete) = piece(link, size, &sha, 0, &[])?;
    if have > 0 && !complete {
        eprintln!("the station holds {have} bytes of this bundle already: going on from there");
    }
    let progress = bar(size, "pushing");
    progress.set_position(have);
    while !complete {
        if stop.load(Ordering::Relaxed) {
            progress.abandon();
            bail!("stopped at {have} of {size} bytes: run the same command again to go on");
        }
        let start = usize::try_from(have).context("offset")?;
        let end = (start + PIECE).min(data.len());
        let step = piece(link, size, &sha, have, &data[start..end]).map_err(|e| {
            progress.abandon();
            e.context(format!(
                "the push stopped at {have} of {size} bytes; run the same command again to go on"
            ))
        })?;
        (have, complete) = step;
        progress.set_position(have);
    }
    progress.finish();
    println!(
        "pushed {} ({size} bytes, sha256 {sha}); `stagebox-diag update install` installs it",
        bundle.display()
    );
    Ok(())
}

/// `support bundle ready: N bytes, sha256 HEX` → (N, HEX).
fn ready(text: &str) -> Option<(u64, String)> {
    let rest = text.split("ready: ").nth(1)?;
    let (size, rest) = rest.split_once(" bytes, sha256 ")?;
    let sha: String = rest.chars().take(64).collect();
    Some((size.parse().ok()?, sha))
}

pub fn support_bundle(link: &mut Link, out: &Path) -> Result<()> {
    eprintln!("the station is gathering its logs, configuration and figures…");
    let answer = link.command("support-bundle", json!({}), ANSWER_LIMIT * 4, &mut |_| true)?;
    let text = text_of(&answer)?;
    let (size, sha) = ready(&text).with_context(|| format!("unexpected answer: {text}"))?;
    let progress = bar(size, "fetching");
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    while (data.len() as u64) < size {
        let body = json!({"fetch": {"offset": data.len(), "len": 2048}});
        let answer = link.call(body, ANSWER_LIMIT, &mut |_| true).map_err(|e| {
            progress.abandon();
            e.context(format!(
                "the transfer stopped at {} of {size} bytes; run the same command again",
                data.len()
            ))
        })?;
        let v: Value = serde_json::from_str(&text_of(&answer)?).context("a fetched piece")?;
        let piece = base64::engine::general_purpose::STANDARD
            .decode(v["data"].as_str().unwrap_or(""))
            .context("a fetched piece")?;
        if piece.is_empty() {
            bail!(
                "the station's bundle ended at {} of {size} bytes",
                data.len()
            );
        }
        data.extend_from_slice(&piece);
        progress.set_position(data.len() as u64);
    }
    progress.finish();
    if sha256(&data) != sha {
        bail!("the bundle arrived damaged (SHA-256 differs): run the same command again");
    }
    let mut f = std::fs::File::create(out).with_context(|| format!("{}", out.display()))?;
    f.write_all(&data)?;
    println!("saved {} ({size} bytes, secrets removed)", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_line_gives_size_and_checksum() {
        let sha = "ab".repeat(32);
        let text = format!("support bundle ready: 1234 bytes, sha256 {sha}\n(more)");
        assert_eq!(ready(&text), Some((1234, sha)));
        assert_eq!(ready("nothing"), None);
    }
}
