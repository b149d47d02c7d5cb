//! What each console command does on the station. Every answer is text for a person (the
//! host tool shows the same text, or reads the JSON some answers are); whatever cannot be
//! reached — the daemon, RAUC, the network — is said, never waited on past a limit.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use stagebox_console::command::{Command, Secret};
use stagebox_console::session::Reply;

use crate::brought_bundle::{self, UpdateFiles};
use crate::system;
use crate::transfer::Spool;
use stagebox_core::update::BroughtBundle;

/// How long a quick tool may take.
const QUICK: Duration = Duration::from_secs(10);
/// How often a live view redraws.
const VIEW_PERIOD: Duration = Duration::from_millis(500);
/// How long `net` watches the media counters.
const VOICE_WINDOW: Duration = Duration::from_secs(6);
/// The log's last lines that `logs` shows.
const LOG_LINES: usize = 40;
/// Keys whose values never leave the station.
const SECRET_KEYS: &[&str] = &["token", "password", "psk"];

/// The station as the console's commands see it.
#[derive(Debug, Clone)]
pub struct Station {
    /// The station's configuration file.
    pub config: PathBuf,
    /// The daemon's control socket.
    pub control: PathBuf,
    /// Where pushed and fetched files are kept.
    pub spool: PathBuf,
    /// The station's log, when it is a file rather than the journal.
    pub log_file: Option<PathBuf>,
    pub apply_command: String,
    pub reboot_command: String,
    pub factory_reset_command: String,
}

/// A running command's way back to the session: live pictures, and whether it was stopped.
#[derive(Clone)]
pub struct Live {
    pub ticket: u64,
    pub replies: async_channel::Sender<(u64, Reply)>,
    pub stop: Arc<AtomicBool>,
}

impl Live {
    fn picture(&self, text: String) {
        // A view that outruns the line loses pictures, never blocks.
        let _ = self.replies.try_send((self.ticket, Reply::Progress(text)));
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Waits one view period; false once stopped.
    async fn next_frame(&self) -> bool {
        smol::Timer::after(VIEW_PERIOD).await;
        !self.stopped()
    }

    async fn until_stopped(&self) {
        while !self.stopped() {
            smol::Timer::after(Duration::from_millis(100)).await;
        }
    }
}

impl Station {
    fn spool(&self) -> Spool {
        Spool::new(&self.spool)
    }

    /// Carries out `command`; live views send pictures through `live` until stopped.
    pub async fn execute(&self, command: Command, live: &Live) -> Result<String, String> {
        match command {
            Command::Help(_) | Command::Login | Command::Logout => Ok(String::new()),
            Command::Status => Ok(self.status().await),
            Command::Net => Ok(self.net().await),
            Command::AudioLevels => self.view(live, levels_picture).await,
            Command::Buttons => self.view(live, buttons_picture).await,
            Command::AudioTone => self.tone().await,
            Command::Leds => self.led_tour(live).await,
            Command::AudioChirp => self.chirp().await,
            Command::Logs { follow, filter } => self.logs(follow, filter, live).await,
            Command::ConfigGet(key) => self.config_get(key.as_deref()),
            Command::ConfigSet { key, value } => {
                self.config_edit(&[(key.as_str(), Some(value.as_str()))])
                    .await
            }
            Command::ConfigValidate => self.config_check(&self.config).await,
            Command::WifiScan => wifi_scan().await,
            Command::WifiJoin { name, password } => self.wifi_join(&name, &password).await,
            Command::UpdateStatus => Ok(self.update_status().await),
            Command::UpdateCheck => self.control("update check").await,
            Command::UpdateInstall { downgrade_to } => {
                self.update_install(downgrade_to.as_deref(), live).await
            }
            Command::UpdateMarkGood => system::run("rauc", &["status", "mark-good"], QUICK)
                .await
                .map(|t| format!("this system is marked good\n{}", t.trim())),
            Command::UpdateRollback => {
                system::run("rauc", &["status", "mark-active", "other"], QUICK)
                    .await
                    .map(|t| {
                        format!(
                            "the other system starts at the next boot (reboot to use it)\n{}",
                            t.trim()
                        )
                    })
            }
            Command::Reboot => system::run_line(&self.reboot_command, QUICK)
                .await
                .map(|_| "restarting".into()),
            Command::FactoryReset => system::run_line(&self.factory_reset_command, QUICK)
                .await
                .map(|_| "settings and data erased; restarting".into()),
            Command::SupportBundle => self.support_bundle().await,
            Command::Push(chunk) => {
                let spool = self.spool();
                smol::unblock(move || spool.push(&chunk)).await
            }
            Command::Fetch { offset, len } => {
                let spool = self.spool();
                smol::unblock(move || spool.fetch(offset, len)).await
            }
        }
    }

    /// One command line to the daemon's control socket, one line back.
    pub async fn control(&self, line: &str) -> Result<String, String> {
        let path = self.control.clone();
        let line = line.to_string();
        smol::unblock(move || {
            let mut s = UnixStream::connect(&path)
                .map_err(|e| format!("the station daemon is not answering ({e})"))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| e.to_string())?;
            s.set_write_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| e.to_string())?;
            s.write_all(format!("{line}\n").as_bytes())
                .map_err(|e| format!("the station daemon: {e}"))?;
            let mut answer = String::new();
            BufReader::new(s)
                .take(1 << 20)
                .read_line(&mut answer)
                .map_err(|e| format!("the station daemon gave no answer ({e})"))?;
            Ok(answer.trim_end().to_string())
        })
        .await
    }

    /// A control command whose answer is JSON with `"ok"`.
    async fn control_json(&self, line: &str) -> Result<Value, String> {
        let text = self.control(line).await?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("the daemon's answer: {e}"))?;
        if v["ok"] == true {
            Ok(v)
        } else {
            Err(v["error"]
                .as_str()
                .unwrap_or("the daemon refused")
                .to_string())
        }
    }

    async fn tone(&self) -> Result<String, String> {
        let v = self.control_json("tone").await?;
        Ok(format!(
            "a {} Hz tone at {} dBFS plays on the loudspeaker for {} s: listen for it",
            v["hz"], v["dbfs"], v["seconds"]
        ))
    }

    /// A sweep on the speaker; what the microphones heard of it, and the echo canceller's
    /// measurement of the speaker-to-microphone path (its delay and echo return loss).
    async fn chirp(&self) -> Result<String, String> {
        let before = self.stats().await?;
        let v = self.control_json("chirp").await?;
        let seconds = v["seconds"].as_u64().unwrap_or(2);
        // Measured near the sweep's end, when the canceller has converged on it.
        smol::Timer::after(Duration::from_millis(seconds * 1000 - 300)).await;
        let during = self.stats().await?;
        let mics = |s: &Value| -> Vec<Option<f64>> {
            s["capture"]["mic_levels_dbfs"]
                .as_array()
                .map(|a| a.iter().map(Value::as_f64).collect())
                .unwrap_or_default()
        };
        let mut text = format!(
            "a sweep from 300 Hz to 4 kHz at -12 dBFS played for {seconds} s\nmicrophones, before → during:\n"
        );
        for (i, (b, d)) in mics(&before).iter().zip(mics(&during)).enumerate() {
            if let (Some(b), Some(d)) = (b, d) {
                text.push_str(&format!("  channel {i}  {b:6.1} → {d:6.1} dBFS\n"));
            }
        }
        let capture = &during["capture"];
        match (
            capture["echo_delay_ms"].as_f64(),
            capture["echo_return_loss_db"].as_f64(),
        ) {
            (Some(delay), Some(erl)) => text.push_str(&format!(
                "speaker → microphones (the echo canceller's measure): delay {delay:.0} ms, echo \
                 {erl:.1} dB below what the speaker played"
            )),
            _ => text.push_str(
                "the echo canceller found no echo of the sweep: the microphones did not hear the \
                 speaker (is it connected and turned up?)",
            ),
        }
        Ok(text)
    }

    /// The daemon shows every LED state in turn; the console says which is on.
    async fn led_tour(&self, live: &Live) -> Result<String, String> {
        let v = self.control_json("leds tour").await?;
        let names: Vec<String> = v["states"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect();
        let step = Duration::from_millis(v["step_ms"].as_u64().unwrap_or(1500));
        for (i, name) in names.iter().enumerate() {
            live.picture(format!(
                "LED: {name} ({} of {}) — compare with the LED table (docs/leds.md)",
                i + 1,
                names.len()
            ));
            smol::Timer::after(step).await;
            if live.stopped() {
                return Ok("stopped watching (the station finishes the tour by itself)".into());
            }
        }
        Ok(format!(
            "showed all {} states; the LEDs are the station's own again",
            names.len()
        ))
    }

    async fn stats(&self) -> Result<Value, String> {
        let text = self.control("stats").await?;
        serde_json::from_str(&text).map_err(|e| format!("the daemon's figures: {e}"))
    }

    /// The configuration as a TOML document (comments kept), or why not.
    fn document(&self) -> Result<toml_edit::DocumentMut, String> {
        let text = std::fs::read_to_string(&self.config)
            .map_err(|e| format!("{}: {e}", self.config.display()))?;
        text.parse::<toml_edit::DocumentMut>()
            .map_err(|e| format!("{}: {e}", self.config.display()))
    }

    async fn status(&self) -> String {
        let mut rows: Vec<(&str, String)> = Vec::new();
        let doc = self.document();
        let get = |path: &str| {
            doc.as_ref()
                .ok()
                .and_then(|d| lookup(d, path))
                .and_then(|i| i.as_str().map(str::to_string))
                .unwrap_or_else(|| "?".into())
        };
        rows.push((
            "station",
            format!("{} on stage {}", get("station.id"), get("server.stage")),
        ));
        rows.push(("server", get("server.gateway")));
        match self.stats().await {
            Ok(s) => {
                let session = &s["session"];
                rows.push((
                    "daemon",
                    format!(
                        "running: {}, {} (LED {}); sessions {}, lost {}",
                        s["connection"].as_str().unwrap_or("?"),
                        s["role"].as_str().unwrap_or("?"),
                        s["led"].as_str().unwrap_or("?"),
                        session["established"],
                        session["lost"]
                    ),
                ));
                rows.push((
                    "audio",
                    format!(
                        "device {}, faults {}, reopened {}",
                        s["audio"]["device"].as_str().unwrap_or("?"),
                        s["audio"]["device_faults"],
                        s["audio"]["device_reopened"]
                    ),
                ));
                rows.push((
                    "heard",
                    format!(
                        "{} frames played, {} concealed, {} late",
                        s["playout"]["frames_played"],
                        s["playout"]["frames_concealed"],
                        s["playout"]["frames_late"]
                    ),
                ));
            }
            Err(e) => {
                let unit = system::run(
                    "systemctl",
                    &["is-active", "stagebox-stationd.service"],
                    QUICK,
                )
                .await
                .unwrap_or_else(|e| e);
                let unit = unit.lines().next().unwrap_or("").trim().to_string();
                rows.push(("daemon", format!("{e}; systemd says: {unit}")));
            }
        }
        let version = system::run("stationd", &["--version"], QUICK)
            .await
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|e| e);
        rows.push(("version", version));
        rows.push(("system", slot_summary().await));
        rows.push(("uptime", uptime()));
        let errors = self.last_errors().await;
        let mut text = table(&rows);
        text.push_str("last errors:\n");
        if errors.is_empty() {
            text.push_str("  none\n");
        }
        for e in errors {
            text.push_str(&format!("  {e}\n"));
        }
        text
    }

    async fn last_errors(&self) -> Vec<String> {
        let lines = match &self.log_file {
            Some(path) => tail_file(path, 2000, None),
            None => system::run(
                "journalctl",
                &[
                    "-p",
                    "err",
                    "-n",
                    "5",
                    "-o",
                    "short-iso",
                    "--no-pager",
                    "-q",
                ],
                QUICK,
            )
            .await
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_else(|e| vec![e]),
        };
        let mut errors: Vec<String> = lines
            .into_iter()
            .filter(|l| self.log_file.is_none() || l.contains("ERROR"))
            .collect();
        let keep = errors.len().saturating_sub(5);
        errors.drain(..keep);
        errors
    }

    async fn net(&self) -> String {
        let mut text = String::new();
        let addresses = system::run("ip", &["-brief", "address"], QUICK)
            .await
            .unwrap_or_else(|e| e);
        text.push_str("addresses:\n");
        for l in addresses.lines() {
            text.push_str(&format!("  {l}\n"));
        }
        let route = system::run("ip", &["route", "show", "default"], QUICK)
            .await
            .unwrap_or_default();
        let gateway = route
            .split_whitespace()
            .skip_while(|w| *w != "via")
            .nth(1)
            .map(str::to_string);
        let mut rows: Vec<(&str, String)> = Vec::new();
        match &gateway {
            Some(gw) => {
                let ping = system::run("ping", &["-c", "3", "-W", "1", "-q", gw], QUICK).await;
                let rtt = match ping {
                    Ok(out) => out
                        .lines()
                        .find(|l| l.contains("min/avg/max"))
                        .and_then(|l| l.split(" = ").nth(1))
                        .and_then(|v| v.split('/').nth(1))
                        .map(|avg| format!("round trip {avg} ms"))
                        .unwrap_or_else(|| "answers".into()),
                    Err(_) => "does not answer ping".into(),
                };
                rows.push(("gateway", format!("{gw}: {rtt}")));
            }
            None => rows.push(("gateway", "none (no default route)".into())),
        }
        rows.push(("wi-fi", wifi_signal()));
        let doc = self.document().ok();
        let gateway_url = doc
            .as_ref()
            .and_then(|d| lookup(d, "server.gateway"))
            .and_then(|i| i.as_str().map(str::to_string));
        let pinned = doc
            .as_ref()
            .and_then(|d| lookup(d, "server.pin_sha256"))
            .and_then(|i| i.as_str().map(|s| s.to_ascii_lowercase().replace(':', "")));
        match gateway_url
            .as_deref()
            .and_then(crate::probe::gateway_address)
        {
            Some((host, port)) => {
                let seen =
                    smol::unblock(move || crate::probe::server_fingerprint(&host, port)).await;
                let line = match (seen, pinned) {
                    (Ok(seen), Some(pin)) if hex::encode(seen) == pin => {
                        format!("{} (matches the pinned one)", hex::encode(seen))
                    }
                    (Ok(seen), Some(pin)) => format!(
                        "{} DIFFERS from the pinned {pin}: the station will not trust it",
                        hex::encode(seen)
                    ),
                    (Ok(seen), None) => format!("{} (the station trusts a CA)", hex::encode(seen)),
                    (Err(e), _) => format!("not reached: {e}"),
                };
                rows.push(("server cert", line));
            }
            None => rows.push(("server cert", "no gateway in the configuration".into())),
        }
        rows.push(("voice node", self.voice_node().await));
        text.push_str(&table(&rows));
        text
    }

    /// Whether media flows to and from the voice node: the daemon's counters
    /// [`VOICE_WINDOW`] apart.
    async fn voice_node(&self) -> String {
        let Ok(before) = self.stats().await else {
            return "unknown: the station daemon is not answering".into();
        };
        let Some(dest) = before["media"]["destination"].as_str().map(str::to_string) else {
            return "none yet (the station has not joined a stage)".into();
        };
        // Keepalives go out every few seconds even when nobody speaks.
        smol::Timer::after(VOICE_WINDOW).await;
        let Ok(after) = self.stats().await else {
            return format!("{dest}: the daemon stopped answering");
        };
        let count = |v: &Value, key: &str| v["media"][key].as_u64().unwrap_or(0);
        let delta = |key: &str| count(&after, key).saturating_sub(count(&before, key));
        let sent = delta("rtp_sent") + delta("keepalives_sent");
        let received = delta("rtp_received");
        let verdict = if received > 0 {
            "reachable both ways"
        } else if sent > 0 {
            "packets go out, none came back (nobody speaking, or UDP blocked on the way back)"
        } else {
            "nothing went out (the station is not sending: is its session up?)"
        };
        format!(
            "{dest}: {sent} packets out, {received} in over {} s — {verdict}",
            VOICE_WINDOW.as_secs()
        )
    }

    async fn view(&self, live: &Live, draw: fn(&Value) -> String) -> Result<String, String> {
        loop {
            let picture = match self.stats().await {
                Ok(s) => draw(&s),
                Err(e) => e,
            };
            live.picture(picture);
            if !live.next_frame().await {
                return Ok(String::new());
            }
        }
    }

    async fn logs(
        &self,
        follow: bool,
        filter: Option<String>,
        live: &Live,
    ) -> Result<String, String> {
        if let Some(path) = &self.log_file {
            let mut shown = tail_file(path, LOG_LINES, filter.as_deref());
            if !follow {
                return Ok(shown.join("\n"));
            }
            loop {
                live.picture(shown.join("\n"));
                if !live.next_frame().await {
                    return Ok(String::new());
                }
                shown = tail_file(path, 20, filter.as_deref());
            }
        }
        let lines = LOG_LINES.to_string();
        let mut args = vec![
            "-u",
            "stagebox-stationd.service",
            "-u",
            "stagebox-console@*",
            "-u",
            "rauc.service",
            "-o",
            "short-iso",
            "--no-pager",
            "-q",
            "-n",
            &lines,
        ];
        if let Some(f) = &filter {
            args.extend(["-g", f.as_str()]);
        }
        if !follow {
            return system::run("journalctl", &args, QUICK).await;
        }
        args.push("-f");
        let mut shown: Vec<String> = Vec::new();
        system::follow(
            "journalctl",
            &args,
            |line| {
                shown.push(line);
                let keep = shown.len().saturating_sub(20);
                shown.drain(..keep);
                live.picture(shown.join("\n"));
                true
            },
            live.until_stopped(),
        )
        .await?;
        Ok(String::new())
    }

    fn config_get(&self, key: Option<&str>) -> Result<String, String> {
        let doc = self.document()?;
        match key {
            None => {
                let mut doc = doc;
                redact(doc.as_item_mut());
                Ok(doc.to_string())
            }
            Some(path) => {
                let item =
                    lookup(&doc, path).ok_or_else(|| format!("no {path} in the configuration"))?;
                let last = path.rsplit('.').next().unwrap_or(path);
                if SECRET_KEYS.contains(&last) {
                    return Ok(format!("{path} = (set, not shown)"));
                }
                let mut item = item.clone();
                redact(&mut item);
                if item.is_table_like() {
                    return Ok(format!("[{path}]\n{}", item.to_string().trim()));
                }
                Ok(format!("{path} = {}", item.to_string().trim()))
            }
        }
    }

    /// Changes keys (`None` removes one), checks the result as the daemon would, and only
    /// then puts it in place and applies it.
    async fn config_edit(&self, edits: &[(&str, Option<&str>)]) -> Result<String, String> {
        let mut doc = self.document()?;
        for (path, value) in edits {
            set(&mut doc, path, *value)?;
        }
        let candidate = self.config.with_extension("console-new");
        std::fs::write(&candidate, doc.to_string())
            .map_err(|e| format!("{}: {e}", candidate.display()))?;
        if let Err(e) = self.config_check(&candidate).await {
            let _ = std::fs::remove_file(&candidate);
            return Err(format!(
                "not changed: {}",
                e.replace(
                    &candidate.display().to_string(),
                    &self.config.display().to_string()
                )
            ));
        }
        std::fs::rename(&candidate, &self.config)
            .map_err(|e| format!("{}: {e}", self.config.display()))?;
        let applied = match system::run_line(&self.apply_command, Duration::from_secs(30)).await {
            Ok(_) => "applied (the station's services restarted)".to_string(),
            Err(e) => format!("saved, but applying it failed: {e}"),
        };
        let names: Vec<&str> = edits.iter().map(|(k, _)| *k).collect();
        Ok(format!("{} changed; {applied}", names.join(", ")))
    }

    async fn config_check(&self, path: &std::path::Path) -> Result<String, String> {
        let path = path.display().to_string();
        system::run("stationd", &["--check-config", &path], QUICK)
            .await
            .map(|t| t.trim().to_string())
    }

    async fn wifi_join(&self, name: &str, password: &Secret) -> Result<String, String> {
        let has_country = self
            .document()
            .ok()
            .is_some_and(|d| lookup(&d, "wifi.country").is_some());
        if !has_country {
            // The radio's channels follow the country: it is the owner's to say.
            return Err(
                "say the Wi-Fi country first (config set wifi.country ES, two letters)".into(),
            );
        }
        let password = (!password.0.is_empty()).then_some(password.0.as_str());
        self.config_edit(&[("wifi.ssid", Some(name)), ("wifi.password", password)])
            .await
    }

    async fn update_status(&self) -> String {
        let mut text = match system::run(
            "rauc",
            &["status", "--detailed", "--output-format=json"],
            QUICK,
        )
        .await
        {
            Ok(json) => rauc_summary(&json),
            Err(e) => format!("A/B updates: {e}\n"),
        };
        if let Some(p) = self.spool().pushed_bundle() {
            let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            text.push_str(&format!(
                "pushed bundle: {size} bytes, waiting for `update install`\n"
            ));
        }
        text
    }

    async fn update_install(
        &self,
        downgrade_to: Option<&str>,
        live: &Live,
    ) -> Result<String, String> {
        let Some(bundle) = self.spool().pushed_bundle() else {
            if downgrade_to.is_some() {
                return Err("no bundle pushed over this line to install".into());
            }
            return self.control("update check").await.map(|t| {
                format!("no bundle pushed over this line; asked the station to look for one: {t}")
            });
        };
        let files = UpdateFiles::from_config(self.document().ok().as_ref());
        let allowed = match brought_bundle::vet(&bundle, &files, downgrade_to).await {
            Ok(a) => a,
            Err(why) => {
                log::warn!("console: pushed bundle not installed: {why}");
                return Err(why);
            }
        };
        match allowed.kind {
            BroughtBundle::Newer => log::info!(
                "console: installing pushed version {} over {}",
                allowed.version,
                allowed.running
            ),
            BroughtBundle::NamedDowngrade => log::warn!(
                "console: installing pushed version {} over {}: a downgrade, asked for by name",
                allowed.version,
                allowed.running
            ),
        }
        let path = bundle.display().to_string();
        let mut last = String::new();
        let done = system::follow(
            "rauc",
            &["install", &path],
            |line| {
                live.picture(line.clone());
                last = line;
                true
            },
            live.until_stopped(),
        )
        .await?;
        let _ = std::fs::remove_file(&bundle);
        if done {
            Ok(format!(
                "installed version {} into the other slot: it starts at the next reboot ({last})",
                allowed.version
            ))
        } else {
            Err(format!("the installation did not finish: {last}"))
        }
    }

    async fn support_bundle(&self) -> Result<String, String> {
        let spool = self.spool();
        let dir = self.spool.join("support-bundle");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let secrets = self.secret_values();
        let put = |name: &str, text: String| {
            let mut text = text;
            for s in &secrets {
                text = text.replace(s.as_str(), "(secret)");
            }
            std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))
        };
        put("status.txt", self.status().await)?;
        put(
            "stats.json",
            self.control("stats").await.unwrap_or_else(|e| e),
        )?;
        put("config.toml", self.config_get(None).unwrap_or_else(|e| e))?;
        put("update.txt", self.update_status().await)?;
        let net = system::run("ip", &["address"], QUICK)
            .await
            .unwrap_or_else(|e| e)
            + &system::run("ip", &["route"], QUICK)
                .await
                .unwrap_or_else(|e| e);
        put("net.txt", net)?;
        let log = match &self.log_file {
            Some(p) => tail_file(p, 5000, None).join("\n"),
            None => system::run(
                "journalctl",
                &["-b", "-n", "5000", "-o", "short-iso", "--no-pager", "-q"],
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|e| e),
        };
        put("log.txt", log)?;
        let out = spool.support_bundle();
        let spool_dir = self.spool.display().to_string();
        let out_s = out.display().to_string();
        system::run(
            "tar",
            &["-czf", &out_s, "-C", &spool_dir, "support-bundle"],
            Duration::from_secs(60),
        )
        .await?;
        let _ = std::fs::remove_dir_all(&dir);
        let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        let sha = smol::unblock(move || crate::transfer::sha256_of(&out)).await?;
        Ok(format!(
            "support bundle ready: {size} bytes, sha256 {sha}\n\
             (logs, configuration and figures, secrets removed; `stagebox-diag support-bundle FILE` fetches it)"
        ))
    }

    /// The secret values in the configuration, to scrub from everything exported.
    fn secret_values(&self) -> Vec<String> {
        let mut found = Vec::new();
        if let Ok(doc) = self.document() {
            collect_secrets(doc.as_item(), &mut found);
        }
        found.retain(|s| s.len() >= 4);
        found
    }
}

fn table(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:width$}  {v}\n"))
        .collect()
}

fn meter(dbfs: f64) -> String {
    // -60 dBFS .. 0 dBFS over 30 cells.
    let cells = (((dbfs + 60.0) / 2.0).clamp(0.0, 30.0)) as usize;
    format!("[{}{}]", "#".repeat(cells), ".".repeat(30 - cells))
}

fn levels_picture(s: &Value) -> String {
    let level = s["capture"]["input_level_dbfs"].as_f64();
    let echo = s["capture"]["echo_return_loss_enhancement_db"].as_f64();
    let mut text = String::new();
    for (i, mic) in s["capture"]["mic_levels_dbfs"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(db) = mic.as_f64() {
            text.push_str(&format!("channel {i}    {} {db:6.1} dBFS\n", meter(db)));
        }
    }
    text.push_str(&match level {
        Some(db) => format!("processed    {} {db:6.1} dBFS", meter(db)),
        None => "processed    no level yet (the capture has not started)".into(),
    });
    if let Some(e) = echo {
        text.push_str(&format!("\necho removed {e:.1} dB"));
    }
    text.push_str("\n(a key stops)");
    text
}

fn buttons_picture(s: &Value) -> String {
    let state = |v: &Value| {
        if v.as_bool() == Some(true) {
            "DOWN"
        } else {
            "up  "
        }
    };
    format!(
        "PTT {}   hand {}   presses {}   LED {}\n(press the buttons; a key here stops)",
        state(&s["buttons"]["ptt"]),
        state(&s["buttons"]["hand"]),
        s["buttons"]["presses"],
        s["led"].as_str().unwrap_or("?")
    )
}

/// `a.b.c` in a TOML document.
fn lookup<'a>(doc: &'a toml_edit::DocumentMut, path: &str) -> Option<&'a toml_edit::Item> {
    let mut item = doc.as_item();
    for part in path.split('.') {
        item = item.get(part)?;
    }
    Some(item)
}

/// Sets (or with `None` removes) `a.b.c`; a value that reads as TOML (a number, true, an
/// array) is taken as such, anything else as a string.
fn set(doc: &mut toml_edit::DocumentMut, path: &str, value: Option<&str>) -> Result<(), String> {
    let parts: Vec<&str> = path.split('.').collect();
    let Some((last, tables)) = parts.split_last() else {
        return Err("no key".into());
    };
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("{path:?} is not a key (say section.key)"));
    }
    let mut table = doc.as_table_mut();
    for t in tables {
        if !table.contains_key(t) {
            if value.is_none() {
                return Ok(());
            }
            table.insert(t, toml_edit::Item::Table(toml_edit::Table::new()));
        }
        table = table
            .get_mut(t)
            .and_then(|i| i.as_table_mut())
            .ok_or_else(|| format!("{t} is not a section"))?;
    }
    match value {
        None => {
            table.remove(last);
        }
        Some(v) => {
            let parsed = v
                .parse::<toml_edit::Value>()
                .ok()
                .filter(|p| !p.is_str() || v.starts_with('"'))
                .unwrap_or_else(|| toml_edit::Value::from(v));
            table.insert(last, toml_edit::Item::Value(parsed));
        }
    }
    Ok(())
}

/// Hides the secret keys' values under `item`.
fn redact(item: &mut toml_edit::Item) {
    if let Some(t) = item.as_table_like_mut() {
        for (k, v) in t.iter_mut() {
            if SECRET_KEYS.contains(&k.get()) {
                *v = toml_edit::value("(secret)");
            } else {
                redact(v);
            }
        }
    }
}

fn collect_secrets(item: &toml_edit::Item, out: &mut Vec<String>) {
    if let Some(t) = item.as_table_like() {
        for (k, v) in t.iter() {
            if SECRET_KEYS.contains(&k) {
                if let Some(s) = v.as_str() {
                    out.push(s.to_string());
                }
            } else {
                collect_secrets(v, out);
            }
        }
    }
}

/// The last `n` lines of a file (those containing `filter`).
fn tail_file(path: &std::path::Path, n: usize, filter: Option<&str>) -> Vec<String> {
    let Ok(text) = std::fs::read(path) else {
        return vec![format!("{}: cannot be read", path.display())];
    };
    // The last 1 MiB is plenty for a tail.
    let start = text.len().saturating_sub(1 << 20);
    let text = String::from_utf8_lossy(&text[start..]);
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| filter.is_none_or(|f| l.contains(f)))
        .map(str::to_string)
        .collect();
    let keep = lines.len().saturating_sub(n);
    lines.drain(..keep);
    lines
}

fn uptime() -> String {
    let secs = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0) as u64;
    format!(
        "{} d {} h {} min",
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60
    )
}

fn wifi_signal() -> String {
    let Ok(text) = std::fs::read_to_string("/proc/net/wireless") else {
        return "no Wi-Fi interface".into();
    };
    let rows: Vec<String> = text
        .lines()
        .skip(2)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?.trim_end_matches(':').to_string();
            let _status = w.next()?;
            let _quality = w.next()?;
            let level = w.next()?.trim_end_matches('.').to_string();
            Some(format!("{name} signal {level} dBm"))
        })
        .collect();
    if rows.is_empty() {
        "no Wi-Fi interface".into()
    } else {
        rows.join(", ")
    }
}

async fn slot_summary() -> String {
    match system::run("rauc", &["status", "--output-format=json"], QUICK).await {
        Ok(json) => {
            let v: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
            format!(
                "booted slot {} ({})",
                v["booted"].as_str().unwrap_or("?"),
                v["compatible"].as_str().unwrap_or("?")
            )
        }
        Err(e) => format!("no A/B updates here: {e}"),
    }
}

fn rauc_summary(json: &str) -> String {
    let v: Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => return format!("rauc status: {e}\n"),
    };
    let mut text = format!(
        "compatible {}, booted {}, next boot {}\n",
        v["compatible"].as_str().unwrap_or("?"),
        v["booted"].as_str().unwrap_or("?"),
        v["boot_primary"].as_str().unwrap_or("?")
    );
    for slot in v["slots"].as_array().into_iter().flatten() {
        let Some((name, s)) = slot.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        if s["class"] != "rootfs" {
            continue;
        }
        text.push_str(&format!(
            "  {name}: {} {}, boot {}, bundle {}\n",
            s["state"].as_str().unwrap_or("?"),
            s["device"].as_str().unwrap_or("?"),
            s["boot_status"].as_str().unwrap_or("?"),
            s["slot_status"]["bundle"]["version"]
                .as_str()
                .unwrap_or("none")
        ));
    }
    text
}

async fn wifi_scan() -> Result<String, String> {
    system::run("wpa_cli", &["-i", "wlan0", "scan"], QUICK)
        .await
        .map_err(|e| {
            format!(
                "the Wi-Fi radio is not scanning ({e}); with no network set yet, join one by \
                 name: wifi join NAME"
            )
        })?;
    smol::Timer::after(Duration::from_secs(4)).await;
    let out = system::run("wpa_cli", &["-i", "wlan0", "scan_results"], QUICK).await?;
    let mut nets: Vec<(i32, String, String)> = out
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let level = f.get(2)?.parse().ok()?;
            let security = if f.get(3)?.contains("WPA") {
                "WPA"
            } else {
                "open"
            };
            Some((
                level,
                f.get(4).unwrap_or(&"").to_string(),
                security.to_string(),
            ))
        })
        .collect();
    nets.sort_by_key(|n| std::cmp::Reverse(n.0));
    if nets.is_empty() {
        return Ok("no networks in reach".into());
    }
    Ok(nets
        .iter()
        .map(|(l, n, s)| format!("{l:4} dBm  {s:4}  {n}"))
        .collect::<Vec<_>>()
        .join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_leave_and_keys_are_set_with_comments_kept() {
        let mut doc: toml_edit::DocumentMut =
            "# the station\n[station]\nid = \"podium-1\"\ntoken = \"tok-123456\"\n\n[wifi]\nssid = \"Hall\"\npassword = \"pw-abcdef\"\n"
                .parse()
                .unwrap();
        let mut found = Vec::new();
        collect_secrets(doc.as_item(), &mut found);
        assert_eq!(
            found,
            vec!["tok-123456".to_string(), "pw-abcdef".to_string()]
        );
        set(&mut doc, "server.stage", Some("main-hall")).unwrap();
        set(&mut doc, "audio.bitrate_kbps", Some("32")).unwrap();
        set(&mut doc, "wifi.password", None).unwrap();
        let text = doc.to_string();
        assert!(text.starts_with("# the station\n"), "{text}");
        assert!(text.contains("stage = \"main-hall\""), "{text}");
        assert!(text.contains("bitrate_kbps = 32"), "{text}");
        assert!(!text.contains("pw-abcdef"), "{text}");
        let mut item = doc.as_item().clone();
        redact(&mut item);
        assert!(!item.to_string().contains("tok-123456"));
        assert!(set(&mut doc, "station.id.x", Some("1")).is_err());
        assert!(set(&mut doc, ".x", Some("1")).is_err());
    }

    #[test]
    fn rauc_status_reads_as_slots() {
        let json = r#"{"compatible":"stagebox-qemu","booted":"A","boot_primary":"rootfs.0",
            "slots":[{"rootfs.0":{"class":"rootfs","device":"/dev/vda2","state":"booted",
            "boot_status":"good","slot_status":{"bundle":{"version":"0.1.1"}}}},
            {"rootfs.1":{"class":"rootfs","device":"/dev/vda3","state":"inactive",
            "boot_status":"bad"}}]}"#;
        let text = rauc_summary(json);
        assert!(text.contains("booted A"), "{text}");
        assert!(
            text.contains("rootfs.0: booted /dev/vda2, boot good, bundle 0.1.1"),
            "{text}"
        );
        assert!(
            text.contains("rootfs.1: inactive /dev/vda3, boot bad, bundle none"),
            "{text}"
        );
    }
}
