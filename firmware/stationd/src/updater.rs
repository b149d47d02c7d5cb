//! The update agent's and the boot health check's plumbing: fetches the manifest, downloads
//! the bundle (resuming), runs RAUC, marks the slot good, reboots — each as a job beside the
//! network loop whose result comes back as an [`Input::Update`]. Every decision (trust, when
//! to download, when a reboot would cut nobody off, when a slot is healthy) is made by
//! `stagebox_core::update` and `stagebox_core::health`.
//!
//! On the data partition (`[update] dir`):
//! - `bundle.part`: the download so far (resumed from its length after a break);
//! - `bundle.raucb`: the download while RAUC installs it (removed after, and at start);
//! - `trial.json`: written after an install — the version on trial, the version it replaces
//!   and the boot it was installed in. The next boot of that version is a trial; a later boot
//!   of another version means the trial failed and U-Boot fell back;
//! - `failed-version`: the last version that failed its trial (offered again, not installed);
//! - `time-floor`: no earlier time than this can be now, and the newest manifest's signing
//!   time ([`crate::time_floor`]): expiry holds on a station whose clock is wrong.
//!
//! `marked_file` (on a tmpfs, so once per boot) says this boot's mark-good is done.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use serde::{Deserialize, Serialize};
use stagebox_core::Station;
use stagebox_core::health::{HealthCheck, HealthEvent};
use stagebox_core::update::{
    FAILED_VERSION_FILE, MAX_MANIFEST_LEN, Offer, UpdateAgent, UpdateConfig, UpdateEvent,
    UpdateState, Version,
};
use stagebox_logging::Untrusted;
use stagebox_proto::signal::{FirmwareStatus, MAX_DETAIL_LEN};

use crate::https::{Body, HttpError};
use crate::input::Input;
use crate::time_floor::{self, FloorFile};

/// The wall clock is looked at this often (to raise the time floor once it is synchronized,
/// and to say whether it is).
const CLOCK_RECHECK: Duration = Duration::from_secs(60);
/// Download progress is reported at most this often (in bytes).
const PROGRESS_STEP: u64 = 256 * 1024;
/// The longest RAUC may take to install a bundle.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The longest mark-good or the reboot command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// What the daemon's `[update]` section says, resolved.
#[derive(Debug, Clone)]
pub struct UpdateSettings {
    /// The agent's settings, when an update source is configured (without one the station
    /// never looks for updates, but still marks its slot good after each healthy boot).
    pub agent: Option<(String, UpdateConfig)>,
    pub running: Version,
    pub dir: PathBuf,
    pub marked_file: PathBuf,
    pub health_within: Duration,
    pub install: Vec<String>,
    pub mark_good: Vec<String>,
    /// Makes the running slot the first to boot (after a fallback: the failed slot stays
    /// out of the way even when this one's tries run out).
    pub mark_active: Vec<String>,
    pub reboot: Vec<String>,
    /// This boot's id (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
}

/// Results of the jobs, back to the network loop.
#[derive(Debug)]
pub enum UpdateInput {
    Manifest(Result<Vec<u8>, String>),
    Progress(u64),
    Downloaded(Result<(u64, [u8; 32]), String>),
    Installed(Result<(), String>),
    Marked(Result<(), String>),
    /// The reboot command ran (the system is going down) or failed.
    Rebooted(Result<(), String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Trial {
    version: String,
    from: String,
    boot_id: String,
}

pub struct Updater {
    settings: UpdateSettings,
    agent: Option<UpdateAgent>,
    manifest_url: String,
    health: HealthCheck,
    tls: Arc<ClientConfig>,
    inputs: async_channel::Sender<Input>,
    last_problem: Option<String>,
    /// This boot came back from a version that failed its trial.
    fell_back: bool,
    /// While a reboot waits for the maintenance window: when to look at the clock again.
    next_clock_check: Instant,
    /// The time floor on the data partition.
    floor_file: FloorFile,
    /// The system's clock is synchronized (as last seen).
    clock_synchronized: bool,
    /// When to look at the wall clock again.
    next_wall_check: Instant,
}

impl Updater {
    pub fn new(
        now: Instant,
        mut settings: UpdateSettings,
        tls: Arc<ClientConfig>,
        inputs: async_channel::Sender<Input>,
    ) -> Updater {
        if let Err(e) = std::fs::create_dir_all(&settings.dir) {
            log::error!("update directory {}: {e}", settings.dir.display());
        }
        // A bundle left by an install the power cut short: RAUC starts again from a fresh
        // download, and the space is the card's.
        let _ = std::fs::remove_file(settings.dir.join("bundle.raucb"));
        let mut last_problem = None;
        let mut fell_back = false;
        let trial = match read_trial(&settings.dir) {
            Some(t) if Version::parse(&t.version) == Some(settings.running) => {
                log::info!(
                    "version {} is on trial (installed over {}): it must join a stage within {} s",
                    settings.running,
                    Untrusted(&t.from),
                    settings.health_within.as_secs()
                );
                true
            }
            Some(t) if t.boot_id == settings.boot_id => false, // installed this boot
            Some(t) => {
                let problem = format!(
                    "version {} did not prove itself and the station went back to {}",
                    Untrusted(&t.version),
                    settings.running
                );
                log::error!("{problem}");
                last_problem = Some(problem);
                fell_back = true;
                if let Some(v) = Version::parse(&t.version) {
                    write_quietly(
                        &settings.dir.join(FAILED_VERSION_FILE),
                        v.to_string().as_bytes(),
                    );
                }
                let _ = std::fs::remove_file(settings.dir.join("trial.json"));
                false
            }
            None => false,
        };
        let failed = std::fs::read_to_string(settings.dir.join(FAILED_VERSION_FILE))
            .ok()
            .and_then(|s| Version::parse(s.trim()));
        let (floor_file, floor) = FloorFile::load(settings.dir.join("time-floor"));
        let clock = time_floor::wall_clock();
        if !clock.synchronized {
            log::warn!(
                "the clock is not synchronized (it says {} s after the epoch): update manifests \
                 are judged against no earlier than {} s",
                clock.unix,
                floor.trusted_now(clock.unix)
            );
        }
        let (manifest_url, agent) = match settings.agent.take() {
            Some((url, mut cfg)) => {
                cfg.failed = failed;
                // The first look a little after start, when the station has settled.
                let first = now + Duration::from_secs(5);
                (url, Some(UpdateAgent::new(cfg, first, floor)))
            }
            None => (String::new(), None),
        };
        let already_marked = settings.marked_file.exists();
        Updater {
            health: HealthCheck::new(now, settings.health_within, trial, already_marked),
            settings,
            agent,
            manifest_url,
            tls,
            inputs,
            last_problem,
            fell_back,
            next_clock_check: now,
            floor_file,
            clock_synchronized: clock.synchronized,
            next_wall_check: now + CLOCK_RECHECK,
        }
    }

    /// Runs with every turn of the network loop: feeds the agent and the check what the
    /// station core says, carries out what they ask, and tells the core what to show and send.
    pub fn tick(&mut self, now: Instant, station: &mut Station) {
        if station.is_joined() {
            self.health.handle_joined(now);
        }
        self.health.handle_timeout(now);
        while let Some(ev) = self.health.poll_event() {
            self.apply_health(ev);
        }
        if now >= self.next_wall_check {
            self.next_wall_check = now + CLOCK_RECHECK;
            let clock = read_clock(&mut self.clock_synchronized);
            if let Some(agent) = &mut self.agent {
                agent.handle_clock(clock);
                self.floor_file.keep(agent.time_floor());
            }
        }
        if let Some(agent) = &mut self.agent {
            agent.handle_stage(now, station.may_reboot());
            if agent.wants_local_time() && now >= self.next_clock_check {
                agent.handle_local_time(now, local_minute_of_day());
                self.next_clock_check = now + stagebox_core::update::WINDOW_RECHECK;
            }
            agent.handle_timeout(now);
        }
        while let Some(ev) = self.agent.as_mut().and_then(UpdateAgent::poll_event) {
            self.apply_update(ev);
        }
        let updating = self.agent.as_ref().is_some_and(UpdateAgent::is_updating);
        station.handle_updating(now, updating);
        station.handle_firmware(now, self.status());
    }

    /// Look for an update now (the control socket's `update check`).
    pub fn check_now(&mut self, now: Instant) {
        if let Some(agent) = &mut self.agent {
            agent.handle_check_now(now);
        }
    }

    pub fn handle_audio_open(&mut self, now: Instant) {
        self.health.handle_audio_open(now);
    }

    pub fn handle_input(&mut self, now: Instant, input: UpdateInput) {
        match input {
            UpdateInput::Marked(result) => {
                match &result {
                    Ok(()) => {
                        log::info!("slot marked good (version {})", self.settings.running);
                        if let Some(dir) = self.settings.marked_file.parent() {
                            let _ = std::fs::create_dir_all(dir);
                        }
                        write_quietly(&self.settings.marked_file, b"");
                        let _ = std::fs::remove_file(self.settings.dir.join("trial.json"));
                    }
                    Err(e) => log::error!("marking the slot good failed (tried again): {e}"),
                }
                self.health.handle_marked(now, result);
            }
            UpdateInput::Rebooted(Ok(())) => log::info!("the system is rebooting"),
            UpdateInput::Rebooted(Err(e)) => self.problem(format!("reboot: {e}")),
            other => {
                let Some(agent) = &mut self.agent else {
                    return;
                };
                match other {
                    UpdateInput::Manifest(r) => {
                        let clock = read_clock(&mut self.clock_synchronized);
                        agent.handle_manifest(now, clock, r.as_deref().map_err(Clone::clone));
                        self.floor_file.keep(agent.time_floor());
                    }
                    UpdateInput::Progress(have) => agent.handle_download_progress(now, have),
                    UpdateInput::Downloaded(r) => agent.handle_downloaded(now, r),
                    UpdateInput::Installed(r) => {
                        if let (Ok(()), UpdateState::Installing { version }) = (&r, agent.state()) {
                            let trial = Trial {
                                version: version.to_string(),
                                from: self.settings.running.to_string(),
                                boot_id: self.settings.boot_id.clone(),
                            };
                            let json = serde_json::to_vec(&trial).unwrap_or_default();
                            write_quietly(&self.settings.dir.join("trial.json"), &json);
                        }
                        agent.handle_installed(now, r);
                    }
                    UpdateInput::Marked(_) | UpdateInput::Rebooted(_) => {}
                }
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let window_recheck = self
            .agent
            .as_ref()
            .filter(|a| a.wants_local_time())
            .map(|_| self.next_clock_check);
        [
            self.health.poll_timeout(),
            self.agent.as_ref().and_then(UpdateAgent::poll_timeout),
            window_recheck,
            self.agent.as_ref().map(|_| self.next_wall_check),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// What the station runs and where the agent is, for the server's admin view.
    pub fn status(&self) -> FirmwareStatus {
        let (update, target, percent) = match self.agent.as_ref().map(UpdateAgent::state) {
            None | Some(UpdateState::Idle { .. }) => ("idle", None, None),
            Some(UpdateState::Checking) => ("checking", None, None),
            Some(UpdateState::Downloading { offer, have, .. }) => (
                "downloading",
                Some(offer.version),
                Some(
                    u8::try_from(have.saturating_mul(100) / offer.bundle_size.max(1))
                        .unwrap_or(100),
                ),
            ),
            Some(UpdateState::Installing { version }) => ("installing", Some(*version), None),
            Some(UpdateState::AwaitingReboot { version }) => {
                ("awaiting_reboot", Some(*version), None)
            }
            Some(UpdateState::Rebooting { version }) => ("rebooting", Some(*version), None),
        };
        FirmwareStatus {
            running: self.settings.running.to_string(),
            update: update.into(),
            target: target.map(|v| v.to_string()),
            percent,
            last_problem: self.last_problem.clone(),
            clock_unsynchronized: !self.clock_synchronized,
        }
    }

    fn problem(&mut self, text: String) {
        log::warn!("update: {text}");
        let mut cut = text;
        if cut.len() > MAX_DETAIL_LEN {
            let mut end = MAX_DETAIL_LEN;
            while !cut.is_char_boundary(end) {
                end -= 1;
            }
            cut.truncate(end);
        }
        self.last_problem = Some(cut);
    }

    fn apply_health(&mut self, ev: HealthEvent) {
        match ev {
            HealthEvent::MarkGood => {
                let good = self.settings.mark_good.clone();
                let active = self.fell_back.then(|| self.settings.mark_active.clone());
                self.job(move || {
                    let marked = run(&good, &[], COMMAND_TIMEOUT).and_then(|()| match &active {
                        Some(argv) => run(argv, &[], COMMAND_TIMEOUT),
                        None => Ok(()),
                    });
                    UpdateInput::Marked(marked)
                });
            }
            HealthEvent::Reboot(why) => {
                log::error!(
                    "version {} failed its trial: {why}; rebooting (the boot loader goes back \
                     to the previous version after its last try)",
                    self.settings.running
                );
                self.reboot();
            }
        }
    }

    fn apply_update(&mut self, ev: UpdateEvent) {
        match ev {
            UpdateEvent::FetchManifest => {
                let (url, tls, inputs) = (
                    self.manifest_url.clone(),
                    self.tls.clone(),
                    self.inputs.clone(),
                );
                smol::spawn(async move {
                    let fetched = async {
                        Body::open(&url, tls, 0)
                            .await?
                            .read_all(MAX_MANIFEST_LEN)
                            .await
                    }
                    .await
                    .map_err(|e: HttpError| format!("manifest {}: {e}", Untrusted(&url)));
                    let _ = inputs
                        .send(Input::Update(UpdateInput::Manifest(fetched)))
                        .await;
                })
                .detach();
            }
            UpdateEvent::Download { offer, resume_from } => {
                log::info!(
                    "downloading version {} ({} bytes{})",
                    offer.version,
                    offer.bundle_size,
                    if resume_from > 0 {
                        format!(", resuming at {resume_from}")
                    } else {
                        String::new()
                    }
                );
                let (dir, tls, inputs) = (
                    self.settings.dir.clone(),
                    self.tls.clone(),
                    self.inputs.clone(),
                );
                self.job(move || {
                    let r = smol::block_on(download(&dir, &offer, resume_from, tls, &inputs));
                    UpdateInput::Downloaded(r)
                });
            }
            UpdateEvent::Install { version } => {
                log::info!("installing version {version}");
                let (dir, argv) = (self.settings.dir.clone(), self.settings.install.clone());
                self.job(move || {
                    let part = dir.join("bundle.part");
                    let bundle = dir.join("bundle.raucb");
                    let r = std::fs::rename(&part, &bundle)
                        .map_err(|e| format!("{}: {e}", part.display()))
                        .and_then(|()| run(&argv, &[bundle.as_os_str()], INSTALL_TIMEOUT));
                    // Whatever RAUC said, the bundle has served: free the space.
                    let _ = std::fs::remove_file(&bundle);
                    UpdateInput::Installed(r)
                });
            }
            UpdateEvent::Reboot => {
                log::info!("rebooting into the new version: nobody is live or invited");
                self.reboot();
            }
            UpdateEvent::Refused(r) => self.problem(format!("refused: {r}")),
            UpdateEvent::Failed(e) => self.problem(e),
        }
    }

    fn reboot(&mut self) {
        let argv = self.settings.reboot.clone();
        self.job(move || UpdateInput::Rebooted(run(&argv, &[], COMMAND_TIMEOUT)));
    }

    /// Runs `f` on its own thread (commands and file I/O never hold the network loop) and
    /// hands its result to the loop.
    fn job(&self, f: impl FnOnce() -> UpdateInput + Send + 'static) {
        let inputs = self.inputs.clone();
        let spawned = std::thread::Builder::new()
            .name("update-job".into())
            .spawn(move || {
                let _ = inputs.send_blocking(Input::Update(f()));
            });
        if let Err(e) = spawned {
            log::error!("cannot start an update job: {e}");
        }
    }
}

/// Downloads `offer`'s bundle into `dir/bundle.part`, resuming after `resume_from` bytes
/// kept; returns the length and SHA-256 of the whole file. Stops writing at one byte past the
/// announced size (the agent refuses what is longer).
async fn download(
    dir: &Path,
    offer: &Offer,
    resume_from: u64,
    tls: Arc<ClientConfig>,
    inputs: &async_channel::Sender<Input>,
) -> Result<(u64, [u8; 32]), String> {
    let path = dir.join("bundle.part");
    let named = |e: std::io::Error| format!("{}: {}", path.display(), explain_io(&e));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(named)?;
    let kept = file.metadata().map_err(named)?.len();
    let mut from = if resume_from > 0 && kept >= resume_from {
        resume_from
    } else {
        0
    };
    let mut body = Body::open(&offer.bundle_url, tls, from)
        .await
        .map_err(|e| format!("bundle: {e}"))?;
    if body.starts_at != from {
        from = 0; // the source does not resume: start again
    }
    file.set_len(from).map_err(named)?;
    let mut hash = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    // The kept part is hashed again from the file: what counts is what is on the card.
    file.rewind().map_err(named)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = from;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let chunk = buf.get_mut(..want).unwrap_or_default();
        file.read_exact(chunk).map_err(named)?;
        hash.update(chunk);
        left -= want as u64;
    }
    let mut have = from;
    let mut reported = from;
    let limit = offer.bundle_size + 1;
    loop {
        let piece = match body.next(&mut buf).await {
            Ok(Some(piece)) => piece,
            Ok(None) => break,
            Err(e) => {
                // What was kept is said before the failure, so the retry resumes after it.
                let _ = file.sync_all();
                let _ = inputs
                    .send(Input::Update(UpdateInput::Progress(have)))
                    .await;
                return Err(format!("bundle: {e}"));
            }
        };
        let take = usize::try_from((limit - have).min(piece.len() as u64)).unwrap_or(0);
        let piece = piece.get(..take).unwrap_or_default();
        file.write_all(piece).map_err(named)?;
        hash.update(piece);
        have += piece.len() as u64;
        if have - reported >= PROGRESS_STEP || have >= limit {
            reported = have;
            let _ = inputs.try_send(Input::Update(UpdateInput::Progress(have)));
        }
        if have >= limit {
            break;
        }
    }
    file.sync_all().map_err(named)?;
    let mut digest = [0u8; 32];
    digest.copy_from_slice(hash.finish().as_ref());
    Ok((have, digest))
}

/// A full card is said plainly: it is the venue's to fix, not a bug.
fn explain_io(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::StorageFull {
        "the data partition is full".into()
    } else {
        e.to_string()
    }
}

/// The line of a failed command's output that says why: RAUC's `LastError:` when it gave
/// one (its last line only says that the installation failed), else the last line with an
/// error in it, else the last line.
fn reason(output: &str) -> &str {
    let lines = || output.lines().map(str::trim).filter(|l| !l.is_empty());
    lines()
        .find_map(|l| l.strip_prefix("LastError:"))
        .map(str::trim)
        .or_else(|| lines().rfind(|l| l.to_ascii_lowercase().contains("error")))
        .or_else(|| lines().next_back())
        .unwrap_or("")
}

/// Runs `argv` + `extra`, waiting at most `limit`; its output (RAUC says why on standard
/// output and that it failed on standard error) gives the reason of a failure.
fn run(argv: &[String], extra: &[&std::ffi::OsStr], limit: Duration) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("no command configured")?;
    let mut child = Command::new(program)
        .args(args)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let bounded = |stream: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut s) = stream {
                // The first 64 KiB are kept; the rest is read and dropped, so a talkative
                // command never blocks on a full pipe.
                let _ = s.by_ref().take(64 * 1024).read_to_string(&mut text);
                let _ = std::io::copy(&mut s, &mut std::io::sink());
            }
            text
        })
    };
    let stdout = bounded(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let stderr = bounded(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} took longer than {} s", limit.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("{program}: {e}")),
        }
    };
    let text = stdout.join().unwrap_or_default() + &stderr.join().unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        let last = reason(&text);
        Err(format!("{program} failed ({status}): {}", Untrusted(last)))
    }
}

/// The running version, if it is a new one on trial (installed, not yet proven): `dir`'s
/// trial names it and `version_file` says it is the one running.
pub fn running_on_trial(dir: &Path, version_file: &Path) -> Option<String> {
    let trial = read_trial(dir)?;
    let running = std::fs::read_to_string(version_file).ok()?;
    (Version::parse(running.trim())? == Version::parse(&trial.version)?)
        .then(|| running.trim().to_string())
}

fn read_trial(dir: &Path) -> Option<Trial> {
    let text = std::fs::read(dir.join("trial.json")).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Writes `path` whole (through a temporary file, so a power cut leaves the old or the new).
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path))
}

/// The wall clock, noting in `synchronized` whether the system says it is synchronized (for
/// the status).
fn read_clock(synchronized: &mut bool) -> stagebox_core::update::WallClock {
    let clock = time_floor::wall_clock();
    *synchronized = clock.synchronized;
    clock
}

/// [`write_file`], a failure logged.
fn write_quietly(path: &Path, bytes: &[u8]) {
    if let Err(e) = write_file(path, bytes) {
        log::error!("{}: {e}", path.display());
    }
}

/// Minutes after local midnight (the system's time zone).
fn local_minute_of_day() -> u16 {
    let now = jiff::ZonedDateTime::now();
    u16::try_from(now.hour()).unwrap_or(0) * 60 + u16::try_from(now.minute()).unwrap_or(0)
}

/// This boot's id, or an empty string where the kernel does not say.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::reason;

    #[test]
    fn a_failed_install_says_why() {
        let rauc = "installing `/data/b.raucb`: started\n\
                    LastError: Failed verifying signature: certificate not trusted\n\
                    Installing `/data/b.raucb` failed\n";
        assert_eq!(
            reason(rauc),
            "Failed verifying signature: certificate not trusted"
        );
        let verity = "installing `b`: Installation error: Failed updating slot rootfs.0: \
                      Input/output error\nInstalling `b` failed\n";
        assert!(reason(verity).contains("Input/output error"));
        assert_eq!(reason("first\nthe last word\n\n"), "the last word");
        assert_eq!(reason(""), "");
    }
}
