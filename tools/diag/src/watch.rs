//! `stagebox-diag watch`: a live dashboard — status, the microphones' level as a meter, the
//! buttons and LED, the latest log lines — redrawn until Ctrl-C.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use crate::link::{ANSWER_LIMIT, Link, text_of};

/// How long each live part is watched per round.
const GLANCE: Duration = Duration::from_millis(1500);

/// The last picture of a live view watched for `GLANCE`.
fn glance(link: &mut Link, line: &str, stop: &AtomicBool) -> Result<String> {
    let started = Instant::now();
    let mut last = String::new();
    let answer = link.command(line, json!({}), ANSWER_LIMIT, &mut |picture| {
        last = picture
            .lines()
            .filter(|l| !l.contains("stops"))
            .collect::<Vec<_>>()
            .join("\n");
        started.elapsed() < GLANCE && !stop.load(Ordering::Relaxed)
    })?;
    text_of(&answer)?;
    Ok(last)
}

pub fn run(link: &mut Link, stop: &AtomicBool) -> Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let status = text_of(&link.command("status", json!({}), ANSWER_LIMIT, &mut |_| true)?)?;
        let levels = glance(link, "audio levels", stop)?;
        let buttons = glance(link, "buttons", stop)?;
        let logs = text_of(&link.command("logs", json!({}), ANSWER_LIMIT, &mut |_| true)?)?;
        let recent: Vec<&str> = logs.lines().rev().take(8).collect();
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\x1b[H\x1b[2J");
        let _ = writeln!(out, "stagebox-diag watch (Ctrl-C ends)\n");
        let _ = writeln!(out, "{}\n", status.trim_end());
        let _ = writeln!(out, "{levels}");
        let _ = writeln!(out, "{buttons}\n");
        let _ = writeln!(out, "recent log:");
        for l in recent.iter().rev() {
            let _ = writeln!(out, "  {l}");
        }
        let _ = out.flush();
    }
    Ok(())
}
