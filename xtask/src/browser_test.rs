//! `cargo xtask browser`: people on a stage from a real browser. Debian's Chromium, driven by
//! Playwright (npm `playwright-core` pointed at the system browser; `tools/browser-test/`),
//! opens the stage's listener link on the stage server's own TLS port and joins as audience:
//!
//! 1. it listens while station A (a moderator) speaks: what the page played is recorded
//!    through WebAudio, handed back, aligned with A's microphone and judged (wideband PESQ);
//!    Then its network changes: its signaling connection goes silent both ways (as a
//!    phone's does when it leaves the Wi-Fi); the page takes its place back as the same
//!    participant (`resume_web`), restarts ICE on its peer connection, and hears A again on a
//!    path from a new local port;
//! 2. it raises its hand; the moderator, signed in to the console in a second browser
//!    context, sees it in the hand queue and invites it; it accepts and speaks (Chromium's
//!    fake microphone plays the speech, the browser's own processing off): what station B
//!    (audience) played is judged against the speech;
//! 3. the console drives a station: B's hand-raise button puts it in the queue, the invite
//!    from the console lights B's LED `invited`, B accepts with its push-to-talk and speaks,
//!    and the console's mute stops B's audio at every listener (the server forwards none of
//!    it while B still holds its button).
//!
//! Screenshots of the listener page and the console at phone and desktop widths are kept
//! beside the report.

use std::io::{BufRead, BufReader, Lines, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::analysis;
use crate::demo::{self, DemoOptions};
use crate::sh::run;

/// The stage's link token in the test's configuration.
const LINK: &str = "browser-test-link-0123456789";
/// The moderator's console account.
const MODERATOR: (&str, &str) = ("moderator", "browser-test-moderator-password");
/// What the listener calls itself on the page (see `listen.mjs`).
const LISTENER_NAME: &str = "Listener in Chromium";

/// One direction's verdict.
pub struct Heard {
    pub pesq: f64,
    pub correlation: f64,
}

impl Heard {
    /// Wideband PESQ of `output` at `(lag, correlation)` (its alignment) against `reference`.
    fn judged(
        reference: &[f64],
        output: &[f64],
        (lag, correlation): (i64, f64),
        out: &Path,
        name: &str,
    ) -> Result<Heard> {
        let pesq = crate::quality::pesq_wb(
            reference,
            &crate::quality::aligned(output, lag, reference.len()),
            out,
            name,
        )?;
        Ok(Heard { pesq, correlation })
    }
}

/// What the browser heard and what it said.
pub struct BrowserOutcome {
    pub station_to_browser: Heard,
    /// From A's microphone to the page's WebAudio graph (the recording's start is read from
    /// the page's clock: within a few milliseconds, plus WebAudio's buffer).
    pub station_to_browser_ms: f64,
    pub frames_sent: u64,
    /// The browser's own statistics of what it received (`inbound-rtp`).
    pub received: Value,
    pub browser_to_station: Heard,
    /// From the page's microphone track (as WebAudio saw it) to station B's loudspeaker
    /// (`None` if the round B played was not found in the track).
    pub browser_to_station_ms: Option<f64>,
    /// The server's counters once the browser has spoken (for the report).
    pub server_stats: Value,
    pub console: ConsoleOutcome,
    /// Each member's last `link_stats`, as the console's overview gave them (id → stats).
    pub links: Value,
    pub ducking: DuckingOutcome,
    pub soundboard: SoundboardOutcome,
    pub network_change: NetworkChange,
}

/// The listener's network changed: what the page and the stage did.
pub struct NetworkChange {
    /// The page's answer: its media path's local port before and after, how long until it
    /// was back on the stage and on a new path.
    pub page: Value,
    /// The stage still lists the browser under the same participant id, connected.
    pub same_participant: bool,
    /// Packets station A sent while speaking afterwards, and those the browser received.
    pub sent: u64,
    pub received: u64,
}

/// Part 1b: the page's signaling connection goes silent (a phone leaving the Wi-Fi); the page
/// takes its place back and restarts ICE; A speaks and the browser hears it on the new path.
fn network_change(
    driver: &mut Driver,
    sock_a: &Path,
    web_id: &str,
    stage: &dyn Fn() -> Result<Value>,
) -> Result<NetworkChange> {
    println!("browser test: the listener's network changes; the page takes its place back");
    let page = driver.ask("network-change")?;
    let same_participant = demo::member(&stage()?, web_id).is_some_and(|m| m["connected"] == true);
    let sent = || -> Result<u64> {
        let stats: Value = serde_json::from_str(&demo::control(sock_a, "stats")?)?;
        Ok(stats["media"]["rtp_sent"].as_u64().unwrap_or(0))
    };
    let received = |driver: &mut Driver| -> Result<u64> {
        Ok(driver.ask("received")?["packets_received"]
            .as_u64()
            .unwrap_or(0))
    };
    let (sent_before, received_before) = (sent()?, received(driver)?);
    demo::control(sock_a, "ptt down")?;
    demo::control(sock_a, "mic play")?;
    std::thread::sleep(Duration::from_secs(3));
    demo::control(sock_a, "ptt up")?;
    std::thread::sleep(Duration::from_millis(500));
    Ok(NetworkChange {
        page,
        same_participant,
        sent: sent()? - sent_before,
        received: received(driver)? - received_before,
    })
}

/// A soundboard clip as station B played it.
pub struct SoundboardOutcome {
    /// The clip's 20 ms frames.
    pub clip_frames: u64,
    /// Frames station B played (from packets) while the clip played and nobody spoke.
    pub b_played: u64,
}

/// Part 5: the moderator uploads a clip in the console and plays it; station B plays it.
fn soundboard_plays_to_everyone(
    driver: &mut Driver,
    out: &Path,
    speech: &Path,
    sock_b: &Path,
) -> Result<SoundboardOutcome> {
    println!("browser test: the console uploads a 3 s clip to the soundboard and plays it");
    let clip = out.join("clip.wav");
    run(Command::new("sox")
        .arg(speech)
        .arg(&clip)
        .args(["trim", "0", "3"]))?;
    let clip_frames = (analysis::read_wav(&clip)?.len() as f64 / 960.0).ceil() as u64;
    driver.ask(&format!(
        "console-upload Welcome jingle | {}",
        clip.display()
    ))?;
    let played = || -> Result<u64> {
        let stats: Value = serde_json::from_str(&demo::control(sock_b, "stats")?)?;
        Ok(stats["playout"]["frames_played"].as_u64().unwrap_or(0))
    };
    std::thread::sleep(Duration::from_secs(1));
    let before = played()?;
    driver.ask("console-play Welcome jingle")?;
    std::thread::sleep(Duration::from_secs(5));
    let b_played = played()? - before;
    Ok(SoundboardOutcome {
        clip_frames,
        b_played,
    })
}

/// Each member's link statistics in an overview, by member id (a browser's by its name).
fn member_links(overview: &Value) -> Value {
    let mut links = serde_json::Map::new();
    for m in overview["stages"][0]["members"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let id = m["name"].as_str().or(m["id"].as_str()).unwrap_or_default();
        links.insert(id.to_string(), m["link"].clone());
    }
    Value::Object(links)
}

/// Debian's Chromium, Node.js and npm, and playwright-core in `target/browser-test`.
pub fn ensure_tools() -> Result<PathBuf> {
    crate::setup::ensure_packages(&["chromium"])?;
    // Node.js may come from elsewhere than Debian (with its own npm): only when a command is
    // missing are Debian's packages installed.
    let missing = |cmd: &str| {
        Command::new(cmd)
            .arg("--version")
            .output()
            .map_or(true, |o| !o.status.success())
    };
    if missing("node") || missing("npm") {
        crate::setup::ensure_packages(&["nodejs", "npm"])?;
    }
    let dir = PathBuf::from("target/browser-test/driver");
    std::fs::create_dir_all(&dir)?;
    for file in [
        "package.json",
        "package-lock.json",
        "chromium.mjs",
        "listen.mjs",
        "crowd.mjs",
    ] {
        std::fs::copy(Path::new("tools/browser-test").join(file), dir.join(file))?;
    }
    if !dir.join("node_modules/playwright-core").exists() {
        run(Command::new("npm").current_dir(&dir).args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]))?;
    }
    Ok(dir)
}

/// A stage server with the test's configuration (stage `townhall` with a browser link, a
/// moderator account) and two sim stations on it: A (`a-1`, moderator) and B (`b-1`,
/// audience), both speaking the same speech when asked.
pub(crate) struct StageRun {
    pub server: demo::Proc,
    pub stations: Vec<demo::Proc>,
    pub gateway: u16,
    pub admin_port: u16,
    pub speech: PathBuf,
    pub sock_a: PathBuf,
    pub sock_b: PathBuf,
}

impl StageRun {
    pub(crate) fn start(out: &Path) -> Result<StageRun> {
        let bin = demo::build_binaries()?.canonicalize()?;
        let speech = demo::speech_sample(out)?;
        let (gateway, media, admin_port) = (
            demo::free_tcp_port()?,
            demo::free_port()?,
            demo::free_tcp_port()?,
        );
        let server_cfg = write_server_config(out, gateway, media, admin_port)?;
        let _ = std::fs::remove_file(out.join("console-accounts.json"));
        let _ = std::fs::remove_dir_all(out.join("clips"));
        add_moderator(&bin, &server_cfg)?;
        let (server, pin) = demo::start_server(&bin, out, &server_cfg)?;
        let opts = DemoOptions::new(out);
        let mut stations = Vec::new();
        for id in ["a-1", "b-1"] {
            let cfg = demo::station_config(out, id, gateway, &pin, &opts, &speech)?;
            let child = Command::new(bin.join("stationd"))
                .arg("--config")
                .arg(&cfg)
                .stderr(std::fs::File::create(out.join(format!("{id}.log")))?)
                .spawn()
                .context("starting stationd")?;
            stations.push(demo::Proc(child, "stationd"));
        }
        let (sock_a, sock_b) = (out.join("a-1.sock"), out.join("b-1.sock"));
        demo::wait_for_stations(admin_port, &sock_a, &sock_b)?;
        Ok(StageRun {
            server,
            stations,
            gateway,
            admin_port,
            speech,
            sock_a,
            sock_b,
        })
    }

    /// The listener link (the page's own voice processing off, for the fake microphone).
    pub(crate) fn link(&self) -> String {
        format!(
            "https://127.0.0.1:{}/listen#stage=townhall&link={LINK}&processing=off",
            self.gateway
        )
    }
}

/// A Chromium driver (`listen.mjs`, `crowd.mjs`): one command per line in, one JSON line out.
pub(crate) struct Driver {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    log: PathBuf,
}

impl Driver {
    /// Starts `node SCRIPT ARGS…` in the driver's directory, its stderr in `log`.
    pub(crate) fn start(
        script: &str,
        args: &[&std::ffi::OsStr],
        envs: &[(&str, &str)],
        log: &Path,
    ) -> Result<Driver> {
        let dir = ensure_tools()?.canonicalize()?;
        let mut child = Command::new("node")
            .current_dir(&dir)
            .arg(script)
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("starting node (the Chromium driver)")?;
        let lines = BufReader::new(child.stdout.take().context("driver stdout")?).lines();
        Ok(Driver {
            child,
            lines,
            log: log.to_path_buf(),
        })
    }

    pub(crate) fn ask(&mut self, command: &str) -> Result<Value> {
        writeln!(
            self.child.stdin.as_mut().context("driver stdin")?,
            "{command}"
        )?;
        self.answer(command)
    }

    pub(crate) fn answer(&mut self, what: &str) -> Result<Value> {
        let line = self.lines.next().transpose()?.unwrap_or_default();
        serde_json::from_str(&line).with_context(|| {
            format!(
                "the Chromium driver gave no answer to {what}; see {}",
                self.log.display()
            )
        })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run_browser_test(out: &Path) -> Result<BrowserOutcome> {
    std::fs::create_dir_all(out)?;
    let out = out.canonicalize()?;
    for stale in ["cert.pem", "key.pem", "browser-out.wav", "b-1-speaker.wav"] {
        let _ = std::fs::remove_file(out.join(stale));
    }
    let stage_run = StageRun::start(&out)?;
    let url = stage_run.link();
    let StageRun {
        server: _server,
        stations,
        admin_port,
        speech,
        sock_a,
        sock_b,
        ..
    } = stage_run;
    let speech_in = analysis::read_wav(&speech)?;
    let speech_seconds = speech_in.len() as f64 / analysis::RATE;
    let stage = || demo::admin(admin_port, &json!({"action": "stage", "stage": "townhall"}));
    println!("browser test: Chromium opens the listener link and joins the stage");
    let wav_out = out.join("browser-out.wav");
    let shots = out.join("listener");
    let mut driver = Driver::start(
        "listen.mjs",
        &[
            url.as_ref(),
            wav_out.as_os_str(),
            speech.as_os_str(),
            shots.as_os_str(),
        ],
        &[
            ("MODERATOR_NAME", MODERATOR.0),
            ("MODERATOR_PASSWORD", MODERATOR.1),
        ],
        &out.join("chromium.log"),
    )?;
    driver.answer("joining")?;
    let mut web_id = String::new();
    demo::wait_for("the browser on the stage", Duration::from_secs(10), || {
        let s = stage()?;
        if let Some(id) = s["members"].as_array().and_then(|m| {
            m.iter()
                .filter_map(|m| m["station_id"].as_str())
                .find(|id| id.starts_with("web-"))
        }) {
            web_id = id.to_string();
        }
        Ok(!web_id.is_empty())
    })?;

    // 1. A station speaks; the browser listens.
    let recording = driver.ask("record")?;
    println!("browser test: station A (a moderator) speaks for {speech_seconds:.1} s");
    demo::control(&sock_a, "ptt down")?;
    demo::control(&sock_a, "mic play")?;
    std::thread::sleep(Duration::from_secs_f64(speech_seconds + 1.0));
    demo::control(&sock_a, "ptt up")?;
    std::thread::sleep(Duration::from_millis(300));
    let stats_a: Value = serde_json::from_str(&demo::control(&sock_a, "stats")?)?;
    let recorded = driver.ask("stop")?;
    let heard = analysis::read_wav(&out.join("browser-out.wav"))?;
    let capture_start_ms = stats_a["audio"]["capture_start_unix_ns"]
        .as_u64()
        .unwrap_or(0) as f64
        / 1e6;
    let recording_from_ms = recording["recording_from_unix_ms"].as_f64().unwrap_or(0.0);
    // A still runs (its recording grows): read what it holds now.
    let speaker_in = analysis::read_growing_wav(&out.join("a-1-mic.wav"))?;
    let alignment = analysis::align(
        &speaker_in,
        &heard,
        (recording_from_ms - capture_start_ms) / 1000.0,
    )?;
    let station_to_browser = Heard::judged(
        &speaker_in,
        &heard,
        (alignment.lag_samples, alignment.correlation),
        &out,
        "station-to-browser",
    )?;

    let network_change = network_change(&mut driver, &sock_a, &web_id, &stage)?;

    // 2. The browser raises its hand, is invited from the console, accepts and speaks;
    // station B listens.
    println!(
        "browser test: the browser raises its hand; the moderator invites it from the console"
    );
    driver.ask("console")?;
    driver.ask("raise")?;
    driver.ask(&format!("console-invite {LISTENER_NAME}"))?;
    let accepted = driver.ask("accept")?;
    // Chromium's fake microphone plays the speech over and over from when it opened; two
    // rounds hold one that the stage carried whole.
    println!("browser test: the browser speaks (Chromium's fake microphone); station B listens");
    let speaking_from = std::time::Instant::now();
    // Meanwhile station B raises its hand with its button, and the console is photographed
    // with a person speaking from a browser and a station waiting in the queue.
    std::thread::sleep(Duration::from_secs_f64(speech_seconds / 2.0));
    demo::control(&sock_b, "hand click")?;
    demo::wait_for("B's hand on the stage", Duration::from_secs(5), || {
        Ok(demo::member(&stage()?, "b-1").is_some_and(|m| m["hand_raised"] == true))
    })?;
    std::thread::sleep(Duration::from_secs(3));
    driver.ask("console-shots")?;
    let rest =
        Duration::from_secs_f64(2.0 * speech_seconds + 1.5).saturating_sub(speaking_from.elapsed());
    std::thread::sleep(rest);
    let part_2_end_ms = unix_ms();
    let mic_path = out.join("browser-mic.wav");
    let mic = driver.ask(&format!("mic {}", mic_path.display()))?;
    let mic_from_ms = mic["from_unix_ms"].as_f64().unwrap_or(0.0);
    let server_stats = demo::admin(admin_port, &json!({"action": "stats"}))?;
    let b_after_browser: Value = serde_json::from_str(&demo::control(&sock_b, "stats")?)?;
    let links = member_links(&demo::admin(admin_port, &json!({"action": "overview"}))?);
    driver.ask(&format!("console-do Move to audience | {LISTENER_NAME}"))?;

    // 3. The console drives station B.
    let console = console_drives_a_station(&mut driver, &sock_b, admin_port, &stage)?;
    let ducking = priority_ducks_in_the_browser(&mut driver, &sock_a, &sock_b)?;
    let soundboard = soundboard_plays_to_everyone(&mut driver, &out, &speech, &sock_b)?;
    driver.ask("leave")?;
    let stats_b: Value = serde_json::from_str(&demo::control(&sock_b, "stats")?)?;
    for sock in [&sock_a, &sock_b] {
        demo::control(sock, "quit")?;
    }
    drop(stations);
    let b_out = analysis::read_wav(&out.join("b-1-speaker.wav"))?;
    // B also heard A in part 1: search only from when the browser's microphone went on (by
    // B's playback clock, less a margin), for the round the stage carried whole.
    let playback_start_ms = stats_b["audio"]["playback_start_unix_ns"]
        .as_u64()
        .unwrap_or(0) as f64
        / 1e6;
    let mic_on_ms = accepted["microphone_on_unix_ms"].as_f64().unwrap_or(0.0);
    let earliest =
        (((mic_on_ms - playback_start_ms) / 1000.0 - 0.5) * analysis::RATE).max(0.0) as i64;
    // B heard A again in part 4: only what B played before part 2 ended is searched.
    let part_2_end = ((part_2_end_ms - playback_start_ms) / 1000.0 * analysis::RATE) as i64;
    let latest = i64::try_from(b_out.len().saturating_sub(speech_in.len()))
        .unwrap_or(0)
        .min(part_2_end - speech_in.len() as i64);
    if latest <= earliest {
        bail!("station B's recording ends before the browser spoke a whole round");
    }
    let whole = stagebox_judge::align(&speech_in, &b_out, earliest..=latest)
        .context("station B played nothing that matches the browser's speech")?;
    let browser_to_station = Heard::judged(
        &speech_in,
        &b_out,
        (whole.lag_samples, whole.correlation),
        &out,
        "browser-to-station",
    )?;
    // Mouth to ear: from when the round B played began in the page's microphone track (found
    // there the same way, within the 3 s before B played it) to when B's loudspeaker began it.
    let b_round_ms = playback_start_ms + whole.lag_samples as f64 / analysis::RATE * 1000.0;
    let mic_in = analysis::read_wav(&mic_path)?;
    let at = |ms: f64| ((ms - mic_from_ms) / 1000.0 * analysis::RATE) as i64;
    let browser_to_station_ms = stagebox_judge::align(
        &speech_in,
        &mic_in,
        at(b_round_ms - 3000.0).max(0)..=at(b_round_ms),
    )
    .map(|m| b_round_ms - (mic_from_ms + m.lag_samples as f64 / analysis::RATE * 1000.0));

    let outcome = BrowserOutcome {
        station_to_browser,
        station_to_browser_ms: alignment.latency_ms,
        browser_to_station_ms,
        frames_sent: stats_a["media"]["rtp_sent"].as_u64().unwrap_or(0),
        received: recorded["received"].clone(),
        browser_to_station,
        server_stats,
        console,
        links,
        ducking,
        soundboard,
        network_change,
    };
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&json!({
            "station_to_browser": {
                "pesq_wb": outcome.station_to_browser.pesq,
                "correlation": outcome.station_to_browser.correlation,
                "mouth_to_ear_ms": outcome.station_to_browser_ms,
                "station_frames_sent": outcome.frames_sent,
                "recorded_samples": recorded["samples"],
                "browser_received": outcome.received,
            },
            "browser_to_station": {
                "pesq_wb": outcome.browser_to_station.pesq,
                "correlation": outcome.browser_to_station.correlation,
                "mouth_to_ear_ms": outcome.browser_to_station_ms,
                "station_b_playout_once_the_browser_spoke": b_after_browser["playout"],
            },
            "server": outcome.server_stats,
            "links_in_the_console": outcome.links,
            "browser_lines_a_priority_and_b_speaking": outcome.ducking.both_speaking,
            "browser_lines_with_a_at_half": outcome.ducking.a_at_half,
            "network_change": {
                "page": outcome.network_change.page,
                "same_participant": outcome.network_change.same_participant,
                "a_sent_after": outcome.network_change.sent,
                "browser_received_after": outcome.network_change.received,
            },
            "soundboard": {
                "clip_frames": outcome.soundboard.clip_frames,
                "b_played": outcome.soundboard.b_played,
            },
            "console_drives_station_b": {
                "led_after_invite": outcome.console.led_after_invite,
                "led_after_mute": outcome.console.led_after_mute,
                "forwarded_while_speaking": outcome.console.forwarded_while_speaking,
                "forwarded_while_muted": outcome.console.forwarded_while_muted,
            },
            "station_a": stats_a,
            "station_b": stats_b,
        }))?,
    )?;
    print_summary(&outcome, &out);
    Ok(outcome)
}

/// What the console did to station B, as the station and the server saw it.
pub struct ConsoleOutcome {
    /// B's LED once the console's invitation reached it.
    pub led_after_invite: String,
    /// B's LED once the console muted it.
    pub led_after_mute: String,
    /// Packets the server forwarded while B spoke, before and while muted (one window each).
    pub forwarded_while_speaking: u64,
    pub forwarded_while_muted: u64,
}

/// Part 3: B's hand is up (its button, in part 2); the console invites it from the queue
/// (B's LED says so), B accepts with push-to-talk and speaks, and the console mutes it.
fn console_drives_a_station(
    driver: &mut Driver,
    sock_b: &Path,
    admin_port: u16,
    stage: &dyn Fn() -> Result<Value>,
) -> Result<ConsoleOutcome> {
    if !demo::member(&stage()?, "b-1").is_some_and(|m| m["hand_raised"] == true) {
        bail!("station B's hand is not up");
    }
    println!("browser test: the console drives station B (invite from the queue, mute)");
    let led = || -> Result<String> {
        let stats: Value = serde_json::from_str(&demo::control(sock_b, "stats")?)?;
        Ok(stats["led"].as_str().unwrap_or_default().to_string())
    };
    driver.ask("console-invite b-1")?;
    let mut led_after_invite = String::new();
    let _ = demo::wait_for("B's LED to say invited", Duration::from_secs(5), || {
        led_after_invite = led()?;
        Ok(led_after_invite == "invited")
    });
    demo::control(sock_b, "ptt click")?;
    demo::wait_for("B on stage", Duration::from_secs(5), || {
        Ok(demo::member(&stage()?, "b-1").is_some_and(|m| m["role"] == "speaker"))
    })?;
    let forwarded = || -> Result<u64> {
        let stats = demo::admin(admin_port, &json!({"action": "stats"}))?;
        Ok(stats["media_forwarded"].as_u64().unwrap_or(0))
    };
    let window = Duration::from_millis(1500);
    demo::control(sock_b, "ptt down")?;
    demo::control(sock_b, "mic play")?;
    std::thread::sleep(Duration::from_millis(500));
    let before = forwarded()?;
    std::thread::sleep(window);
    let forwarded_while_speaking = forwarded()? - before;
    driver.ask("console-do Mute | b-1")?;
    let mut led_after_mute = String::new();
    let _ = demo::wait_for("B's LED to say muted", Duration::from_secs(5), || {
        led_after_mute = led()?;
        Ok(led_after_mute == "muted")
    });
    let before = forwarded()?;
    std::thread::sleep(window);
    let forwarded_while_muted = forwarded()? - before;
    demo::control(sock_b, "ptt up")?;
    Ok(ConsoleOutcome {
        led_after_invite,
        led_after_mute,
        forwarded_while_speaking,
        forwarded_while_muted,
    })
}

/// What the listener's page did with two speakers at once, A the priority speaker.
pub struct DuckingOutcome {
    /// The page's lines while both spoke: (speaker, volume).
    pub both_speaking: Vec<(String, f64)>,
    /// The same after the listener set A's volume to half.
    pub a_at_half: Vec<(String, f64)>,
}

/// Part 4: the console unmutes B and makes A the priority speaker; A and B speak at once.
/// The listener's page should play B ducked, and A at the volume the listener set for it.
fn priority_ducks_in_the_browser(
    driver: &mut Driver,
    sock_a: &Path,
    sock_b: &Path,
) -> Result<DuckingOutcome> {
    println!("browser test: A priority speaker, A and B speak at once; the browser ducks B");
    driver.ask("console-do Unmute | b-1")?;
    driver.ask("console-do Make priority | a-1")?;
    for sock in [sock_a, sock_b] {
        demo::control(sock, "ptt down")?;
        demo::control(sock, "mic play")?;
    }
    let volumes = |driver: &mut Driver| -> Result<Vec<(String, f64)>> {
        let v = driver.ask("volumes")?;
        let mut lines: Vec<(String, f64)> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| Some((l["speaker"].as_str()?.to_string(), l["volume"].as_f64()?)))
            .collect();
        lines.sort_by(|x, y| x.0.cmp(&y.0));
        Ok(lines)
    };
    let mut both_speaking = Vec::new();
    let _ = demo::wait_for(
        "both speakers on the page's lines",
        Duration::from_secs(8),
        || {
            both_speaking = volumes(driver)?;
            Ok(both_speaking.len() == 2 && both_speaking.iter().any(|l| l.1 < 1.0))
        },
    );
    driver.ask("set-volume a-1 50")?;
    std::thread::sleep(Duration::from_millis(500));
    let a_at_half = volumes(driver)?;
    for sock in [sock_a, sock_b] {
        demo::control(sock, "ptt up")?;
    }
    Ok(DuckingOutcome {
        both_speaking,
        a_at_half,
    })
}

/// The console's account, made with the server's own `user add`.
fn add_moderator(bin: &Path, server_cfg: &Path) -> Result<()> {
    let mut child = Command::new(bin.join("stage-server"))
        .arg("--config")
        .arg(server_cfg)
        .args(["user", "add", MODERATOR.0, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("stage-server user add")?;
    writeln!(child.stdin.take().context("stdin")?, "{}", MODERATOR.1)?;
    if !child.wait()?.success() {
        bail!("stage-server user add failed");
    }
    Ok(())
}

fn print_summary(o: &BrowserOutcome, out: &Path) {
    let r = &o.received;
    println!(
        "browser test: station → Chromium: PESQ {:.2}, correlation {:.3}, mouth to ear {:.0} ms \
         (to the page's WebAudio); {} of {} packets received, {} lost, {} samples concealed of \
         {} ({} of them silent, Chromium's own counts: {:.2} % of speech concealed), jitter \
         buffer {:.0} ms",
        o.station_to_browser.pesq,
        o.station_to_browser.correlation,
        o.station_to_browser_ms,
        r["packets_received"],
        o.frames_sent,
        r["packets_lost"],
        r["concealed_samples"],
        r["samples_received"],
        r["silent_concealed_samples"],
        speech_concealed_share(r) * 100.0,
        r["jitter_buffer_delay_ms"].as_f64().unwrap_or(0.0),
    );
    println!(
        "browser test: Chromium → station: PESQ {:.2}, correlation {:.3}, mouth to ear {} \
         (from the page's microphone track to B's loudspeaker); screenshots in {}",
        o.browser_to_station.pesq,
        o.browser_to_station.correlation,
        o.browser_to_station_ms
            .map_or("not measured".to_string(), |ms| format!("{ms:.0} ms")),
        out.display()
    );
    let n = &o.network_change;
    println!(
        "browser test: network change: back on the stage after {} ms as the same participant \
         ({}), media from local port {} to {} after {} ms; then {} of A's {} packets received",
        n.page["back_on_stage_ms"],
        n.same_participant,
        n.page["port_before"],
        n.page["port_after"],
        n.page["new_path_ms"],
        n.received,
        n.sent
    );
    println!("browser test: link statistics in the console: {}", o.links);
    println!(
        "browser test: soundboard: a {}-frame clip, station B played {} frames meanwhile",
        o.soundboard.clip_frames, o.soundboard.b_played
    );
    println!(
        "browser test: the page's lines (speaker, volume) with A priority and both speaking: \
         {:?}; with A's slider at 50 %: {:?}",
        o.ducking.both_speaking, o.ducking.a_at_half
    );
    let c = &o.console;
    println!(
        "browser test: console → station B: LED {} after the invitation, {} after the mute; \
         the server forwarded {} packets in 1.5 s of B speaking, {} in 1.5 s of B muted",
        c.led_after_invite, c.led_after_mute, c.forwarded_while_speaking, c.forwarded_while_muted
    );
}

fn write_server_config(out: &Path, gateway: u16, media: u16, admin_port: u16) -> Result<PathBuf> {
    let path = out.join("server.toml");
    std::fs::write(
        &path,
        format!(
            r#"[listen]
gateway = "127.0.0.1:{gateway}"
media = "127.0.0.1:{media}"
admin = "127.0.0.1:{admin_port}"

[tls]
cert = "{dir}/cert.pem"
key = "{dir}/key.pem"

[admin]
token = "{token}"

[console]
accounts = "{dir}/console-accounts.json"
clips = "{dir}/clips"

[[stage]]
id = "townhall"
link = "{LINK}"

[[station]]
id = "a-1"
token = "token-a-1-demo"
role = "moderator"

[[station]]
id = "b-1"
token = "token-b-1-demo"
"#,
            dir = out.display(),
            token = demo::ADMIN_TOKEN,
        ),
    )?;
    Ok(path)
}

/// The wall clock, Unix milliseconds (the pages' `Date.now()`).
fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// The gain of everyone but the priority speaker while it speaks, on stations
/// (`stagebox_audio::mixer::DUCK_GAIN`) and in the listener page (`DUCK_GAIN` in listen.js).
const DUCK_GAIN: f64 = 0.25;

/// The least wideband PESQ each way.
#[derive(Debug, Clone, Copy)]
pub struct MinPesq {
    /// What a browser listener plays of a station.
    pub to_browser: f64,
    /// What a station plays of a person speaking in a browser.
    pub to_station: f64,
}

/// Fails unless the outcome is what a venue's audience should get.
pub fn check(o: &BrowserOutcome, min_pesq: MinPesq) -> Result<()> {
    for (what, heard, least) in [
        (
            "station → Chromium",
            &o.station_to_browser,
            min_pesq.to_browser,
        ),
        (
            "Chromium → station",
            &o.browser_to_station,
            min_pesq.to_station,
        ),
    ] {
        if heard.pesq < least {
            bail!("{what}: PESQ {:.2} < {least}", heard.pesq);
        }
        let least = demo::least_match_correlation(false);
        if heard.correlation < least {
            bail!(
                "{what}: what was played does not match the speech (correlation {:.3} < {least})",
                heard.correlation
            );
        }
    }
    // One 20 ms frame and Opus's look-ahead at least, each way.
    let floor = 20.0 + demo::OPUS_LOOKAHEAD_MS;
    for (what, ms) in [
        ("station → Chromium", Some(o.station_to_browser_ms)),
        ("Chromium → station", o.browser_to_station_ms),
    ] {
        let Some(ms) = ms else {
            bail!(
                "{what}: mouth to ear not measured (the round B played is not in the page's track)"
            );
        };
        if ms < floor {
            bail!(
                "{what}: mouth to ear {ms:.1} ms is below the physical floor of {floor} ms: the \
                 measurement is wrong"
            );
        }
    }
    for (who, station) in [("a-1", true), ("b-1", true), (LISTENER_NAME, false)] {
        let link = &o.links[who];
        let played = link["played_frames"].as_u64().unwrap_or(0);
        let complete = if station {
            link["led"].is_string() && link["rtt_ms"].is_u64()
        } else {
            link["jitter_ms"].is_u64()
        };
        if played == 0 || !complete {
            bail!("the console has no link statistics from {who}: {link}");
        }
    }
    let n = &o.network_change;
    let moved = n.page["port_before"].is_u64()
        && n.page["port_after"].is_u64()
        && n.page["port_before"] != n.page["port_after"];
    // A few packets may go to the old path while the new one is being chosen.
    let reconnects = o.links[LISTENER_NAME]["reconnects"].as_u64().unwrap_or(0);
    if !n.same_participant || !moved || n.sent < 100 || n.received + 5 < n.sent || reconnects == 0 {
        bail!(
            "after a network change the listener did not take its place back and hear on a \
             new path: same participant {}, {}, {} of {} packets received, {reconnects} \
             reconnects in the console",
            n.same_participant,
            n.page,
            n.received,
            n.sent
        );
    }
    let sb = &o.soundboard;
    if sb.b_played < sb.clip_frames || sb.b_played > sb.clip_frames + 5 {
        bail!(
            "the soundboard's {}-frame clip: station B played {} frames",
            sb.clip_frames,
            sb.b_played
        );
    }
    let d = &o.ducking;
    let pair = |a: f64, b: f64| vec![("a-1".to_string(), a), ("b-1".to_string(), b)];
    let near = |got: &[(String, f64)], want: &[(String, f64)]| {
        got.len() == want.len()
            && got
                .iter()
                .zip(want)
                .all(|(g, w)| g.0 == w.0 && (g.1 - w.1).abs() < 0.01)
    };
    if !near(&d.both_speaking, &pair(1.0, DUCK_GAIN)) || !near(&d.a_at_half, &pair(0.5, DUCK_GAIN))
    {
        bail!(
            "the page did not duck B under the priority speaker A or did not take A's volume: \
             {:?}, then {:?}",
            d.both_speaking,
            d.a_at_half
        );
    }
    let c = &o.console;
    if c.led_after_invite != "invited" || c.led_after_mute != "muted" {
        bail!(
            "the console's invitation and mute did not reach station B's LED: {} and {}",
            c.led_after_invite,
            c.led_after_mute
        );
    }
    if c.forwarded_while_speaking == 0 || c.forwarded_while_muted != 0 {
        bail!(
            "muting from the console: the server forwarded {} packets while B spoke and {} \
             while it was muted (some, then none)",
            c.forwarded_while_speaking,
            c.forwarded_while_muted
        );
    }
    let received = o.received["packets_received"].as_u64().unwrap_or(0);
    let lost = o.received["packets_lost"].as_i64().unwrap_or(i64::MAX);
    if o.frames_sent < 100 || received != o.frames_sent || lost != 0 {
        bail!(
            "station A sent {} packets; Chromium received {received} and counted {lost} lost",
            o.frames_sent
        );
    }
    // What the listener got, not only what the wire carried: Chromium's concealment outside
    // silence (late packets its ~20 ms buffer gave up on), at most a small share.
    let share = speech_concealed_share(&o.received);
    if share > MAX_BROWSER_CONCEALED {
        bail!(
            "Chromium concealed {:.2} % of the speech it played (at most {:.0} %)",
            share * 100.0,
            MAX_BROWSER_CONCEALED * 100.0
        );
    }
    Ok(())
}

/// The most of its samples the listener page may conceal outside silence.
const MAX_BROWSER_CONCEALED: f64 = 0.02;

/// The share of the samples Chromium played that it concealed outside silence.
fn speech_concealed_share(received: &Value) -> f64 {
    let n = |k: &str| received[k].as_f64().unwrap_or(0.0);
    let samples = n("samples_received");
    if samples <= 0.0 {
        return 1.0;
    }
    (n("concealed_samples") - n("silent_concealed_samples")).max(0.0) / samples
}
