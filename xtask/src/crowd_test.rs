//! `cargo xtask browser --crowd N` (a step of `cargo xtask test` with 20): N people listen
//! from N browser contexts of one headless Chromium (`tools/browser-test/crowd.mjs`) while
//! station A speaks and station B listens. Every listener must hear A: as many packets as A
//! sent, none lost, audio energy in what it played; B must receive it all too.
//!
//! The server's CPU time per browser listener is measured, not asserted: A speaks for a window
//! before the crowd joins and for as long after, and the stage server's own CPU time
//! (`/proc/PID/stat`, user and system) over each window is read. The difference, per listener,
//! gives the listeners one core carries at that cost (the forwarding benchmark measures the
//! same per-packet path without a browser).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::browser_test::{Driver, StageRun};
use crate::demo;

/// How long A speaks in each window.
const WINDOW: Duration = Duration::from_secs(10);

/// What the crowd heard and what it cost the server.
pub struct CrowdOutcome {
    pub listeners: usize,
    /// Packets A sent while the crowd listened.
    pub a_sent: u64,
    /// Per listener: (packets received, packets lost, audio energy).
    pub heard: Vec<(u64, i64, f64)>,
    /// Frames B received while the crowd listened.
    pub b_received: u64,
    /// The server's CPU seconds over a window without browsers, and over one with the crowd.
    pub cpu_without: f64,
    pub cpu_with: f64,
    pub window: f64,
}

impl CrowdOutcome {
    /// The server's CPU seconds per browser listener per second of speech.
    pub fn cpu_per_listener(&self) -> f64 {
        ((self.cpu_with - self.cpu_without) / self.listeners as f64 / self.window).max(0.0)
    }

    /// Browser listeners one core carries at that cost (`None` if too small to measure).
    pub fn listeners_per_core(&self) -> Option<f64> {
        let per = self.cpu_per_listener();
        (per > 0.0).then(|| 1.0 / per)
    }
}

/// User and system CPU seconds of process `pid` so far.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces, inside parentheses).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields.get(i).context("short /proc stat")?.parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let hz = clock_ticks_per_second();
    Ok((ticks(11)? + ticks(12)?) / hz)
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A speaks for [`WINDOW`]; the server's CPU seconds meanwhile, and A's packets sent.
fn speaking_window(run: &StageRun, server_pid: u32) -> Result<(f64, u64)> {
    let sent = || -> Result<u64> {
        let stats: Value = serde_json::from_str(&demo::control(&run.sock_a, "stats")?)?;
        Ok(stats["media"]["rtp_sent"].as_u64().unwrap_or(0))
    };
    let sent_before = sent()?;
    demo::control(&run.sock_a, "ptt down")?;
    demo::control(&run.sock_a, "mic play")?;
    let cpu_before = cpu_seconds(server_pid)?;
    std::thread::sleep(WINDOW);
    let cpu = cpu_seconds(server_pid)? - cpu_before;
    demo::control(&run.sock_a, "ptt up")?;
    // What was sent reaches everyone before it is counted.
    std::thread::sleep(Duration::from_millis(500));
    Ok((cpu, sent()? - sent_before))
}

pub fn run_crowd_test(out: &Path, listeners: usize) -> Result<CrowdOutcome> {
    std::fs::create_dir_all(out)?;
    let out = out.canonicalize()?;
    for stale in ["cert.pem", "key.pem"] {
        let _ = std::fs::remove_file(out.join(stale));
    }
    let run = StageRun::start(&out)?;
    let server_pid = run.server.0.id();
    // A (a moderator) speaks: its mic plays the speech, longer than a window.
    println!(
        "crowd test: station A speaks for {} s to station B alone",
        WINDOW.as_secs()
    );
    let (cpu_without, _) = speaking_window(&run, server_pid)?;

    println!("crowd test: {listeners} browser listeners join from the listener link");
    let count = listeners.to_string();
    let url = run.link();
    let mut crowd = Driver::start(
        "crowd.mjs",
        &[url.as_ref(), count.as_ref()],
        &[],
        &out.join("crowd.log"),
    )?;
    let joined = crowd.answer("joining")?;
    if joined["listening"].as_u64() != Some(listeners as u64) {
        bail!("the crowd did not join: {joined}");
    }
    demo::wait_for("the crowd on the stage", Duration::from_secs(20), || {
        let s = demo::admin(
            run.admin_port,
            &json!({"action": "stage", "stage": "townhall"}),
        )?;
        Ok(s["members"].as_array().map_or(0, Vec::len) == listeners + 2)
    })?;
    let received = || -> Result<u64> {
        let stats: Value = serde_json::from_str(&demo::control(&run.sock_b, "stats")?)?;
        Ok(stats["playout"]["frames_received"].as_u64().unwrap_or(0))
    };
    let b_before = received()?;
    println!(
        "crowd test: station A speaks for {} s to B and the crowd",
        WINDOW.as_secs()
    );
    let (cpu_with, a_sent) = speaking_window(&run, server_pid)?;
    let b_received = received()? - b_before;
    let heard = crowd.ask("heard")?;
    let _ = crowd.ask("quit");
    let heard: Vec<(u64, i64, f64)> = heard
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            (
                h["packets_received"].as_u64().unwrap_or(0),
                h["packets_lost"].as_i64().unwrap_or(i64::MAX),
                h["total_audio_energy"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    let outcome = CrowdOutcome {
        listeners,
        a_sent,
        heard,
        b_received,
        cpu_without,
        cpu_with,
        window: WINDOW.as_secs_f64(),
    };
    std::fs::write(
        out.join("crowd.json"),
        serde_json::to_string_pretty(&json!({
            "listeners": outcome.listeners,
            "a_sent_while_the_crowd_listened": outcome.a_sent,
            "per_listener_received_lost_energy": outcome.heard,
            "b_received": outcome.b_received,
            "server_cpu_seconds_without_browsers": outcome.cpu_without,
            "server_cpu_seconds_with_the_crowd": outcome.cpu_with,
            "window_seconds": outcome.window,
            "server_cpu_per_listener": outcome.cpu_per_listener(),
            "listeners_per_core": outcome.listeners_per_core(),
        }))?,
    )?;
    let least = outcome.heard.iter().map(|h| h.0).min().unwrap_or(0);
    println!(
        "crowd test: A sent {} packets; each of {} listeners received at least {least}; B received \
         {} frames; server CPU {:.2} s without browsers, {:.2} s with them over {:.0} s of \
         speech: {:.4} s per listener per second, about {} listeners per core",
        outcome.a_sent,
        outcome.listeners,
        outcome.b_received,
        outcome.cpu_without,
        outcome.cpu_with,
        outcome.window,
        outcome.cpu_per_listener(),
        outcome
            .listeners_per_core()
            .map_or("too many to tell from this run".to_string(), |n| format!(
                "{n:.0}"
            )),
    );
    Ok(outcome)
}

/// Fails unless every listener heard A whole and B received it.
pub fn check(o: &CrowdOutcome) -> Result<()> {
    if o.heard.len() != o.listeners || o.a_sent < 200 {
        bail!(
            "{} of {} listeners answered; A sent {} packets",
            o.heard.len(),
            o.listeners,
            o.a_sent
        );
    }
    for (i, &(received, lost, energy)) in o.heard.iter().enumerate() {
        if received < o.a_sent || lost != 0 || energy <= 0.0 {
            bail!(
                "listener {}: received {received} of A's {} packets, {lost} lost, audio energy \
                 {energy}",
                i + 1,
                o.a_sent
            );
        }
    }
    if o.b_received < o.a_sent {
        bail!(
            "station B received {} of A's {} frames",
            o.b_received,
            o.a_sent
        );
    }
    Ok(())
}
