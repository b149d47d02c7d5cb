//! The update agent, sans-IO: when to look for an update, whether a manifest may be trusted,
//! what to download and install, and when the station may reboot into it — never while it is
//! live or invited. The plumbing fetches, downloads, hashes and drives RAUC; every decision is
//! here, and every refusal has a reason a person can read.
//!
//! A **manifest** is JSON: `{"payload": "<JSON text>", "signature": "<128 hex digits>"}`. The
//! signature is Ed25519 over the payload's exact bytes (so no JSON canonicalisation is needed),
//! made with the venue's release key; the payload is
//! `{"board", "version": "MAJOR.MINOR.PATCH", "bundle_url", "bundle_sha256", "bundle_size",
//! "issued", "expires"}` (`issued` and `expires` in Unix seconds). The agent refuses, as TUF
//! asks:
//! - a manifest whose signature no trusted key made (arbitrary installation);
//! - an older or equal version (rollback);
//! - an expired manifest, or one signed before a manifest already seen (freeze: an attacker
//!   replaying an old but once valid manifest);
//! - a manifest for another board, or a bundle whose hash differs (mix-and-match);
//! - a manifest or a bundle larger than allowed (endless data).
//!
//! **Freshness without a clock.** A Raspberry Pi has no real-time clock, and until it
//! synchronizes its clock says 1970 or the time it last saved. Expiry is therefore judged
//! against [`TimeFloor`]: no earlier time than the newest of the build time, the last
//! synchronized time seen and the signing time of the newest manifest accepted can be now.
//! The plumbing keeps the floor on the data partition and hands in the wall clock and whether
//! it is synchronized; a clock behind the floor is not believed.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Deserialize;
use thiserror::Error;

/// The largest manifest read.
pub const MAX_MANIFEST_LEN: usize = 64 * 1024;
/// The largest bundle accepted, whatever a manifest says.
pub const MAX_BUNDLE_LEN: u64 = 2 * 1024 * 1024 * 1024;

/// A version, `MAJOR.MINOR.PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        let mut parts = s.split('.').map(|p| {
            (!p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse::<u32>().ok())
                .flatten()
        });
        let v = Version(parts.next()??, parts.next()??, parts.next()??);
        parts.next().is_none().then_some(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// An update the agent accepted: what to download and check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub version: Version,
    pub bundle_url: String,
    pub bundle_sha256: [u8; 32],
    pub bundle_size: u64,
    pub issued_unix: u64,
    pub expires_unix: u64,
}

/// Why a manifest or a bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    #[error("the manifest is larger than {MAX_MANIFEST_LEN} bytes")]
    ManifestTooLarge,
    #[error("the manifest is not valid: {0}")]
    Malformed(String),
    #[error("no trusted key signed the manifest")]
    BadSignature,
    #[error("the manifest is for board {0:?}, not this one")]
    OtherBoard(String),
    #[error("version {offered} is not newer than the running {running}")]
    NotNewer { offered: Version, running: Version },
    #[error("the manifest expired (at {0} s after the epoch)")]
    Expired(u64),
    #[error(
        "the manifest was signed at {issued} s after the epoch, before one already seen ({newest} s): a replay"
    )]
    Replayed { issued: u64, newest: u64 },
    #[error("the bundle would be {0} bytes, more than allowed")]
    BundleTooLarge(u64),
    #[error("the bundle URL must be https://")]
    NotHttps,
    #[error("the bundle's SHA-256 is not the manifest's")]
    HashMismatch,
    #[error("the bundle is {got} bytes, the manifest says {want}")]
    SizeMismatch { got: u64, want: u64 },
    #[error("version {0} already failed its trial on this station")]
    FailedBefore(Version),
    #[error("the bundle is version {offered}, not the {named} that was named")]
    NotTheNamedVersion { offered: Version, named: Version },
}

/// How a bundle brought by hand (pushed over the technician's console) may be installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroughtBundle {
    /// Newer than the running version, and not one that failed here: as the agent would.
    Newer,
    /// Older, the same, or one that failed its trial here — installed only because the
    /// technician named this very version (the console logs it).
    NamedDowngrade,
}

/// The agent's version rule, for an offer and a bundle brought by hand alike: `offered` must
/// be newer than `running`, and newer than the version that `failed` its trial here.
pub fn check_version(
    offered: Version,
    running: Version,
    failed: Option<Version>,
) -> Result<(), Refusal> {
    if offered <= running {
        return Err(Refusal::NotNewer { offered, running });
    }
    match failed {
        Some(f) if offered <= f => Err(Refusal::FailedBefore(f)),
        _ => Ok(()),
    }
}

/// [`check_version`] for a bundle brought by hand, whose signature RAUC has checked — unless
/// the technician `named` exactly `offered` (an explicit, logged downgrade). A named version
/// that is not the bundle's is refused, newer or not.
pub fn check_brought_bundle(
    offered: Version,
    running: Version,
    failed: Option<Version>,
    named: Option<Version>,
) -> Result<BroughtBundle, Refusal> {
    let rule = check_version(offered, running, failed);
    match named {
        Some(named) if named != offered => Err(Refusal::NotTheNamedVersion { offered, named }),
        Some(_) if rule.is_err() => Ok(BroughtBundle::NamedDowngrade),
        _ => rule.map(|()| BroughtBundle::Newer),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    payload: String,
    signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    board: String,
    version: String,
    bundle_url: String,
    bundle_sha256: String,
    bundle_size: u64,
    issued: u64,
    expires: u64,
}

/// What the station knows of the time without trusting its clock (Unix seconds), kept by the
/// plumbing on the data partition across boots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeFloor {
    /// No earlier time can be now: the newest of the build time, the last synchronized time
    /// seen and the newest accepted manifest's signing time.
    pub floor_unix: u64,
    /// The signing time of the newest manifest accepted: an earlier one is a replay.
    pub newest_issued_unix: u64,
}

impl TimeFloor {
    /// The time to judge expiry by: the wall clock, unless it is behind the floor.
    pub fn trusted_now(&self, wall_unix: u64) -> u64 {
        wall_unix.max(self.floor_unix)
    }

    /// The wall clock, if it is synchronized, moves the floor up.
    pub fn handle_clock(&mut self, clock: WallClock) {
        if clock.synchronized {
            self.floor_unix = self.floor_unix.max(clock.unix);
        }
    }

    /// A manifest signed at `issued` by the release key was accepted: nothing signed earlier is
    /// taken from now on, and no earlier time can be now.
    pub fn handle_signed(&mut self, issued: u64) {
        self.newest_issued_unix = self.newest_issued_unix.max(issued);
        self.floor_unix = self.floor_unix.max(issued);
    }
}

/// The wall clock as the plumbing reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    pub unix: u64,
    /// The system says its clock is synchronized (NTP); an unsynchronized clock is only
    /// believed where it is ahead of the floor.
    pub synchronized: bool,
}

/// A manifest a trusted key signed for this board, fresh by the [`TimeFloor`]: its version is
/// yet to be compared with the running one ([`Manifest::offer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub version: Version,
    payload: Payload,
}

/// Checks a manifest's signature, board and freshness: signed by one of `keys` for `board`,
/// not signed before the newest manifest already seen, not expired by the floor or the wall
/// clock `wall_unix`, whichever is later.
pub fn verify_manifest(
    bytes: &[u8],
    keys: &[[u8; 32]],
    board: &str,
    floor: TimeFloor,
    wall_unix: u64,
) -> Result<Manifest, Refusal> {
    if bytes.len() > MAX_MANIFEST_LEN {
        return Err(Refusal::ManifestTooLarge);
    }
    let envelope: Envelope =
        serde_json::from_slice(bytes).map_err(|e| Refusal::Malformed(e.to_string()))?;
    let mut signature = [0u8; 64];
    hex::decode_to_slice(&envelope.signature, &mut signature)
        .map_err(|_| Refusal::Malformed("the signature is not 128 hex digits".into()))?;
    let signed = keys.iter().any(|key| {
        aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, key)
            .verify(envelope.payload.as_bytes(), &signature)
            .is_ok()
    });
    if !signed {
        return Err(Refusal::BadSignature);
    }
    let p: Payload = serde_json::from_str(&envelope.payload)
        .map_err(|e| Refusal::Malformed(format!("payload: {e}")))?;
    if p.board != board {
        return Err(Refusal::OtherBoard(p.board.chars().take(64).collect()));
    }
    let version = Version::parse(&p.version)
        .ok_or_else(|| Refusal::Malformed("version is not MAJOR.MINOR.PATCH".into()))?;
    if p.issued < floor.newest_issued_unix {
        return Err(Refusal::Replayed {
            issued: p.issued,
            newest: floor.newest_issued_unix,
        });
    }
    // It was signed, so now is no earlier than its signing time either.
    if p.expires <= floor.trusted_now(wall_unix).max(p.issued) {
        return Err(Refusal::Expired(p.expires));
    }
    Ok(Manifest {
        version,
        payload: p,
    })
}

impl Manifest {
    /// When it was signed (Unix seconds): the floor rises to it once it is accepted.
    pub fn issued_unix(&self) -> u64 {
        self.payload.issued
    }

    /// What it offers a station running `running`: a newer version, a bundle of a sane size
    /// over HTTPS.
    pub fn offer(self, running: Version) -> Result<Offer, Refusal> {
        let (version, p) = (self.version, self.payload);
        check_version(version, running, None)?;
        if p.bundle_size == 0 || p.bundle_size > MAX_BUNDLE_LEN {
            return Err(Refusal::BundleTooLarge(p.bundle_size));
        }
        if !p.bundle_url.starts_with("https://") || p.bundle_url.len() > 2048 {
            return Err(Refusal::NotHttps);
        }
        let mut bundle_sha256 = [0u8; 32];
        hex::decode_to_slice(&p.bundle_sha256, &mut bundle_sha256)
            .map_err(|_| Refusal::Malformed("bundle_sha256 is not 64 hex digits".into()))?;
        Ok(Offer {
            version,
            bundle_url: p.bundle_url,
            bundle_sha256,
            bundle_size: p.bundle_size,
            issued_unix: p.issued,
            expires_unix: p.expires,
        })
    }
}

/// [`verify_manifest`], then [`Manifest::offer`].
pub fn check_manifest(
    bytes: &[u8],
    keys: &[[u8; 32]],
    board: &str,
    running: Version,
    floor: TimeFloor,
    wall_unix: u64,
) -> Result<Offer, Refusal> {
    verify_manifest(bytes, keys, board, floor, wall_unix)?.offer(running)
}

/// How the agent behaves.
#[derive(Debug, Clone)]
pub struct UpdateConfig {
    pub board: String,
    pub running: Version,
    /// Trusted Ed25519 public keys.
    pub keys: Vec<[u8; 32]>,
    /// How often to look for an update.
    pub poll_every: Duration,
    /// A failed fetch or download is retried after this long.
    pub retry_after: Duration,
    /// If set, an installed update reboots only inside this daily window (local time), and
    /// still only when the stage allows it.
    pub window: Option<MaintenanceWindow>,
    /// A version that already failed its trial on this station (it rolled back): offered
    /// again, it is not installed again — only a newer one is.
    pub failed: Option<Version>,
}

/// A daily window, in minutes after local midnight; `start > end` spans midnight
/// (`23:00-02:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceWindow {
    pub start: u16,
    pub end: u16,
}

impl MaintenanceWindow {
    /// `HH:MM-HH:MM`.
    pub fn parse(s: &str) -> Option<MaintenanceWindow> {
        fn minute(hm: &str) -> Option<u16> {
            let (h, m) = hm.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60 && hm.trim().len() == 5).then_some(h * 60 + m)
        }
        let (a, b) = s.split_once('-')?;
        let w = MaintenanceWindow {
            start: minute(a)?,
            end: minute(b)?,
        };
        (w.start != w.end).then_some(w)
    }

    pub fn contains(&self, minute_of_day: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute_of_day)
        } else {
            minute_of_day >= self.start || minute_of_day < self.end
        }
    }
}

/// Where a station keeps its update state unless its configuration says otherwise (the daemon
/// and the technician's console read the same files).
pub const DEFAULT_UPDATE_DIR: &str = "/var/lib/stagebox/update";
/// The running version's file (`MAJOR.MINOR.PATCH`), unless the configuration says otherwise.
pub const DEFAULT_VERSION_FILE: &str = "/etc/stagebox/version";
/// In the update directory: the last version that failed its trial here.
pub const FAILED_VERSION_FILE: &str = "failed-version";

/// While a reboot waits for a maintenance window, the local time is asked for this often.
pub const WINDOW_RECHECK: Duration = Duration::from_secs(60);

/// What the agent asks of the plumbing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum UpdateEvent {
    /// Fetch the manifest (at most [`MAX_MANIFEST_LEN`] bytes); answer with
    /// [`UpdateAgent::handle_manifest`].
    FetchManifest,
    /// Download the bundle, resuming after `resume_from` bytes already kept; report with
    /// [`UpdateAgent::handle_download_progress`] and [`UpdateAgent::handle_downloaded`].
    Download {
        offer: Offer,
        resume_from: u64,
    },
    /// Install the downloaded bundle into the other slot (RAUC); answer with
    /// [`UpdateAgent::handle_installed`].
    Install {
        version: Version,
    },
    /// Reboot into the new slot now.
    Reboot,
    /// Something was refused or failed: say so (logs, the admin view).
    Refused(Refusal),
    Failed(String),
}

/// Where the agent is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateState {
    /// Waiting until `next` to look for an update.
    Idle {
        next: Instant,
    },
    /// Manifest requested.
    Checking,
    /// Downloading `offer`; `have` bytes kept so far; after a broken download, resumed at
    /// `retry_at`.
    Downloading {
        offer: Offer,
        have: u64,
        retry_at: Option<Instant>,
    },
    Installing {
        version: Version,
    },
    /// Installed; reboots when the stage allows it.
    AwaitingReboot {
        version: Version,
    },
    Rebooting {
        version: Version,
    },
}

/// The update agent (see the module docs).
#[derive(Debug)]
pub struct UpdateAgent {
    cfg: UpdateConfig,
    state: UpdateState,
    /// The station may be rebooted now (not live, not invited).
    may_reboot: bool,
    /// Inside the maintenance window (always, without one).
    in_window: bool,
    /// What the station knows of the time (kept by the plumbing across boots).
    floor: TimeFloor,
    events: Vec<UpdateEvent>,
}

impl UpdateAgent {
    /// An agent that first looks for an update at `first_check`, knowing the time no earlier
    /// than `floor` (as kept from before, with this build's time in it).
    pub fn new(cfg: UpdateConfig, first_check: Instant, floor: TimeFloor) -> UpdateAgent {
        UpdateAgent {
            state: UpdateState::Idle { next: first_check },
            may_reboot: false,
            in_window: cfg.window.is_none(),
            cfg,
            floor,
            events: Vec::new(),
        }
    }

    /// The time floor as it stands, for the plumbing to keep when it changes.
    pub fn time_floor(&self) -> TimeFloor {
        self.floor
    }

    /// The wall clock: a synchronized one moves the floor up.
    pub fn handle_clock(&mut self, clock: WallClock) {
        self.floor.handle_clock(clock);
    }

    pub fn state(&self) -> &UpdateState {
        &self.state
    }

    /// Whether the LEDs should say `updating` ("do not unplug"): an install is under way or
    /// the station is about to reboot. A download runs quietly beside the stage.
    pub fn is_updating(&self) -> bool {
        matches!(
            self.state,
            UpdateState::Installing { .. } | UpdateState::Rebooting { .. }
        )
    }

    /// Whether the stage allows a reboot now: the station is neither live nor invited (the
    /// station core says). A reboot waiting for this happens as soon as it turns true.
    pub fn handle_stage(&mut self, now: Instant, may_reboot: bool) {
        self.may_reboot = may_reboot;
        self.reboot_if_allowed(now);
    }

    /// Look for an update now (a technician asked), instead of at the next scheduled check.
    /// Ignored while an update is already under way.
    pub fn handle_check_now(&mut self, now: Instant) {
        if let UpdateState::Idle { next } = &mut self.state {
            *next = now;
        }
        self.handle_timeout(now);
    }

    /// The local time, in minutes after midnight (asked for at least every
    /// [`WINDOW_RECHECK`] while a reboot waits for the maintenance window).
    pub fn handle_local_time(&mut self, now: Instant, minute_of_day: u16) {
        self.in_window = self.cfg.window.is_none_or(|w| w.contains(minute_of_day));
        self.reboot_if_allowed(now);
    }

    /// Whether the plumbing should tell the local time now: a reboot waits for the window.
    pub fn wants_local_time(&self) -> bool {
        self.cfg.window.is_some() && matches!(self.state, UpdateState::AwaitingReboot { .. })
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.state {
            UpdateState::Idle { next } if now >= *next => {
                self.state = UpdateState::Checking;
                self.events.push(UpdateEvent::FetchManifest);
            }
            UpdateState::Downloading {
                offer,
                have,
                retry_at,
            } if retry_at.is_some_and(|t| now >= t) => {
                *retry_at = None;
                self.events.push(UpdateEvent::Download {
                    offer: offer.clone(),
                    resume_from: *have,
                });
            }
            _ => {}
        }
    }

    /// The manifest, or why it could not be fetched.
    pub fn handle_manifest(
        &mut self,
        now: Instant,
        clock: WallClock,
        fetched: Result<&[u8], String>,
    ) {
        self.floor.handle_clock(clock);
        if self.state != UpdateState::Checking {
            return;
        }
        let bytes = match fetched {
            Ok(b) => b,
            Err(e) => return self.fail(now, e, self.cfg.retry_after),
        };
        let c = &self.cfg;
        let verified = verify_manifest(bytes, &c.keys, &c.board, self.floor, clock.unix);
        if let Ok(m) = &verified {
            self.floor.handle_signed(m.issued_unix());
        }
        match verified.and_then(|m| m.offer(c.running)) {
            Ok(offer) if check_version(offer.version, c.running, c.failed).is_err() => {
                self.idle(now, self.cfg.poll_every);
            }
            Ok(offer) => {
                self.events.push(UpdateEvent::Download {
                    offer: offer.clone(),
                    resume_from: 0,
                });
                self.state = UpdateState::Downloading {
                    offer,
                    have: 0,
                    retry_at: None,
                };
            }
            // The running version is the usual answer: no noise, look again later. An older
            // one is a downgrade (a replayed manifest, or a publishing mistake): refused
            // aloud, so the venue sees it.
            Err(Refusal::NotNewer { offered, running }) if offered == running => {
                self.idle(now, self.cfg.poll_every)
            }
            Err(r) => {
                self.events.push(UpdateEvent::Refused(r));
                self.idle(now, self.cfg.poll_every);
            }
        }
    }

    /// `have` bytes of the bundle are kept so far. More than the manifest said is refused
    /// at once (an endless download).
    pub fn handle_download_progress(&mut self, now: Instant, have: u64) {
        let UpdateState::Downloading { offer, .. } = &self.state else {
            return;
        };
        if have > offer.bundle_size {
            let r = Refusal::SizeMismatch {
                got: have,
                want: offer.bundle_size,
            };
            self.events.push(UpdateEvent::Refused(r));
            return self.idle(now, self.cfg.poll_every);
        }
        if let UpdateState::Downloading { have: kept, .. } = &mut self.state {
            *kept = have;
        }
    }

    /// The download ended: the bundle's length and SHA-256, or why it broke off (a broken
    /// download resumes later from what was kept).
    pub fn handle_downloaded(&mut self, now: Instant, result: Result<(u64, [u8; 32]), String>) {
        let UpdateState::Downloading { offer, .. } = &self.state else {
            return;
        };
        let offer = offer.clone();
        match result {
            Err(e) => {
                self.events
                    .push(UpdateEvent::Failed(format!("download: {e}")));
                // Resumed from what was kept, after the retry delay.
                if let UpdateState::Downloading { retry_at, .. } = &mut self.state {
                    *retry_at = Some(now + self.cfg.retry_after);
                }
            }
            Ok((len, _)) if len != offer.bundle_size => {
                let r = Refusal::SizeMismatch {
                    got: len,
                    want: offer.bundle_size,
                };
                self.events.push(UpdateEvent::Refused(r));
                self.idle(now, self.cfg.poll_every);
            }
            Ok((_, hash)) if hash != offer.bundle_sha256 => {
                self.events
                    .push(UpdateEvent::Refused(Refusal::HashMismatch));
                self.idle(now, self.cfg.poll_every);
            }
            Ok(_) => {
                self.events.push(UpdateEvent::Install {
                    version: offer.version,
                });
                self.state = UpdateState::Installing {
                    version: offer.version,
                };
            }
        }
    }

    /// RAUC finished installing (or refused the bundle: its own signature check).
    pub fn handle_installed(&mut self, now: Instant, result: Result<(), String>) {
        let UpdateState::Installing { version } = self.state else {
            return;
        };
        match result {
            Ok(()) => {
                self.state = UpdateState::AwaitingReboot { version };
                self.reboot_if_allowed(now);
            }
            Err(e) => self.fail(now, format!("install: {e}"), self.cfg.poll_every),
        }
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<UpdateEvent> {
        if self.events.is_empty() {
            None
        } else {
            Some(self.events.remove(0))
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            UpdateState::Idle { next } => Some(*next),
            UpdateState::Downloading { retry_at, .. } => *retry_at,
            _ => None,
        }
    }

    fn reboot_if_allowed(&mut self, _now: Instant) {
        if let UpdateState::AwaitingReboot { version } = self.state
            && self.may_reboot
            && self.in_window
        {
            self.state = UpdateState::Rebooting { version };
            self.events.push(UpdateEvent::Reboot);
        }
    }

    fn fail(&mut self, now: Instant, why: String, again_after: Duration) {
        self.events.push(UpdateEvent::Failed(why));
        self.idle(now, again_after);
    }

    fn idle(&mut self, now: Instant, after: Duration) {
        self.state = UpdateState::Idle { next: now + after };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};

    const BOARD: &str = "qemu";
    const NOW: u64 = 1_800_000_000;

    fn key(seed: u8) -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap()
    }

    fn public(k: &Ed25519KeyPair) -> [u8; 32] {
        k.public_key().as_ref().try_into().unwrap()
    }

    fn payload(board: &str, version: &str, expires: u64) -> String {
        signed_at(board, version, NOW - 60, expires)
    }

    fn signed_at(board: &str, version: &str, issued: u64, expires: u64) -> String {
        format!(
            r#"{{"board":"{board}","version":"{version}","bundle_url":"https://updates.example/b.raucb","bundle_sha256":"{}","bundle_size":1000,"issued":{issued},"expires":{expires}}}"#,
            "ab".repeat(32)
        )
    }

    /// The wall clock at `unix`, as NTP has set it.
    fn synced(unix: u64) -> WallClock {
        WallClock {
            unix,
            synchronized: true,
        }
    }

    fn manifest(signer: &Ed25519KeyPair, payload: &str) -> Vec<u8> {
        let sig = signer.sign(payload.as_bytes());
        serde_json::json!({"payload": payload, "signature": hex::encode(sig.as_ref())})
            .to_string()
            .into_bytes()
    }

    fn check(bytes: &[u8]) -> Result<Offer, Refusal> {
        let floor = TimeFloor::default();
        check_manifest(
            bytes,
            &[public(&key(1))],
            BOARD,
            Version(1, 2, 0),
            floor,
            NOW,
        )
    }

    #[test]
    fn versions_parse_strictly_and_order_numerically() {
        assert_eq!(Version::parse("1.10.0"), Some(Version(1, 10, 0)));
        assert!(Version(1, 10, 0) > Version(1, 9, 9));
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "1.x.3",
            "-1.2.3",
            "1..3",
            "9999999999.0.0",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_good_manifest_is_accepted() {
        let m = manifest(&key(1), &payload(BOARD, "1.3.0", NOW + 3600));
        let offer = check(&m).unwrap();
        assert_eq!(offer.version, Version(1, 3, 0));
        assert_eq!(offer.bundle_size, 1000);
        assert_eq!(offer.bundle_sha256, [0xab; 32]);
    }

    #[test]
    fn every_attack_on_the_manifest_is_refused() {
        let good = payload(BOARD, "1.3.0", NOW + 3600);
        // Arbitrary installation: another key, or a payload changed after signing.
        assert_eq!(check(&manifest(&key(2), &good)), Err(Refusal::BadSignature));
        let signed = manifest(&key(1), &good);
        let tampered = String::from_utf8(signed)
            .unwrap()
            .replace("1.3.0", "9.3.0")
            .into_bytes();
        assert_eq!(check(&tampered), Err(Refusal::BadSignature));
        // Rollback: older, or the same.
        for v in ["1.1.9", "1.2.0"] {
            assert!(matches!(
                check(&manifest(&key(1), &payload(BOARD, v, NOW + 3600))),
                Err(Refusal::NotNewer { .. })
            ));
        }
        // Freeze: a once valid manifest replayed after it expired.
        assert_eq!(
            check(&manifest(&key(1), &payload(BOARD, "1.3.0", NOW))),
            Err(Refusal::Expired(NOW))
        );
        // Mix and match: a manifest for another board.
        assert_eq!(
            check(&manifest(&key(1), &payload("pi4", "1.3.0", NOW + 3600))),
            Err(Refusal::OtherBoard("pi4".into()))
        );
        // Endless data: a huge manifest, a huge bundle.
        assert_eq!(
            check(&vec![b' '; MAX_MANIFEST_LEN + 1]),
            Err(Refusal::ManifestTooLarge)
        );
        let huge = good.replace("\"bundle_size\":1000", "\"bundle_size\":99999999999999");
        assert!(matches!(
            check(&manifest(&key(1), &huge)),
            Err(Refusal::BundleTooLarge(_))
        ));
        // Plain HTTP, garbage.
        let http = good.replace("https://", "http://");
        assert_eq!(check(&manifest(&key(1), &http)), Err(Refusal::NotHttps));
        assert!(matches!(check(b"{garbage"), Err(Refusal::Malformed(_))));
    }

    #[test]
    fn expiry_holds_with_the_clock_set_back() {
        let keys = [public(&key(1))];
        let running = Version(1, 2, 0);
        // Signed two days ago, expired yesterday: replayed to a station whose clock was set
        // back (a Raspberry Pi after a power cut says 1970 until NTP answers).
        let expired = manifest(
            &key(1),
            &signed_at(BOARD, "1.3.0", NOW - 2 * 86_400, NOW - 86_400),
        );
        let kept = TimeFloor {
            floor_unix: NOW,
            newest_issued_unix: 0,
        };
        for wall in [0, NOW - 365 * 86_400] {
            assert_eq!(
                check_manifest(&expired, &keys, BOARD, running, kept, wall),
                Err(Refusal::Expired(NOW - 86_400)),
                "clock at {wall}"
            );
        }
        // The wall clock alone would have taken it: that is what the floor is for.
        assert!(check_manifest(&expired, &keys, BOARD, running, TimeFloor::default(), 0).is_ok());
        // A manifest is never valid before it was signed: one that expires when it is signed
        // is expired whatever the clock says.
        let stillborn = manifest(&key(1), &signed_at(BOARD, "1.3.0", NOW, NOW));
        let floor = TimeFloor::default();
        assert_eq!(
            check_manifest(&stillborn, &keys, BOARD, running, floor, 0),
            Err(Refusal::Expired(NOW))
        );
        // A clock ahead of the floor is believed, synchronized or not.
        let fresh = manifest(&key(1), &signed_at(BOARD, "1.3.0", NOW, NOW + 3600));
        assert_eq!(
            check_manifest(&fresh, &keys, BOARD, running, kept, NOW + 7200),
            Err(Refusal::Expired(NOW + 3600))
        );
    }

    #[test]
    fn a_manifest_signed_before_one_already_seen_is_a_replay() {
        let t = t0();
        let mut a = agent(t);
        let unsynced = WallClock {
            unix: 0,
            synchronized: false,
        };
        // The current version, signed at NOW: nothing to do, but the station has seen it.
        a.handle_timeout(t);
        let _ = drain(&mut a);
        let current = manifest(&key(1), &signed_at(BOARD, "1.2.0", NOW, NOW + 30 * 86_400));
        a.handle_manifest(t, unsynced, Ok(&current));
        assert_eq!(drain(&mut a), vec![]);
        assert_eq!(
            a.time_floor(),
            TimeFloor {
                floor_unix: NOW,
                newest_issued_unix: NOW
            }
        );
        // A newer version in a manifest signed earlier: replayed, refused aloud.
        let t = t + Duration::from_secs(3600);
        a.handle_timeout(t);
        let _ = drain(&mut a);
        let old = manifest(
            &key(1),
            &signed_at(BOARD, "1.3.0", NOW - 10, NOW + 30 * 86_400),
        );
        a.handle_manifest(t, unsynced, Ok(&old));
        assert_eq!(
            drain(&mut a),
            vec![UpdateEvent::Refused(Refusal::Replayed {
                issued: NOW - 10,
                newest: NOW
            })]
        );
        // The same manifest again (the next poll) is not a replay.
        let t = t + Duration::from_secs(3600);
        a.handle_timeout(t);
        let _ = drain(&mut a);
        a.handle_manifest(t, unsynced, Ok(&current));
        assert_eq!(drain(&mut a), vec![]);
        // A synchronized clock raises the floor; an unsynchronized one never does.
        a.handle_clock(WallClock {
            unix: NOW + 999_999,
            synchronized: false,
        });
        assert_eq!(a.time_floor().floor_unix, NOW);
        a.handle_clock(synced(NOW + 500));
        assert_eq!(a.time_floor().floor_unix, NOW + 500);
        a.handle_clock(synced(NOW + 100));
        assert_eq!(
            a.time_floor().floor_unix,
            NOW + 500,
            "the floor never goes down"
        );
    }

    #[test]
    fn a_bundle_brought_by_hand_is_held_to_the_agents_checks_unless_named() {
        let (running, failed) = (Version(1, 2, 0), Some(Version(1, 3, 0)));
        let check = |offered, named| check_brought_bundle(offered, running, failed, named);
        assert_eq!(check(Version(1, 4, 0), None), Ok(BroughtBundle::Newer));
        for older in [Version(1, 1, 9), Version(1, 2, 0)] {
            assert_eq!(
                check(older, None),
                Err(Refusal::NotNewer {
                    offered: older,
                    running
                })
            );
            assert_eq!(check(older, Some(older)), Ok(BroughtBundle::NamedDowngrade));
        }
        assert_eq!(
            check(Version(1, 3, 0), None),
            Err(Refusal::FailedBefore(Version(1, 3, 0)))
        );
        assert_eq!(
            check(Version(1, 3, 0), Some(Version(1, 3, 0))),
            Ok(BroughtBundle::NamedDowngrade)
        );
        // Naming one version does not let another one in.
        assert_eq!(
            check(Version(1, 1, 0), Some(Version(1, 1, 9))),
            Err(Refusal::NotTheNamedVersion {
                offered: Version(1, 1, 0),
                named: Version(1, 1, 9)
            })
        );
        assert_eq!(
            check(Version(1, 4, 0), Some(Version(1, 4, 0))),
            Ok(BroughtBundle::Newer)
        );
    }

    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    fn agent(t: Instant) -> UpdateAgent {
        UpdateAgent::new(
            UpdateConfig {
                board: BOARD.into(),
                running: Version(1, 2, 0),
                keys: vec![public(&key(1))],
                poll_every: Duration::from_secs(3600),
                retry_after: Duration::from_secs(60),
                window: None,
                failed: None,
            },
            t,
            TimeFloor::default(),
        )
    }

    fn drain(a: &mut UpdateAgent) -> Vec<UpdateEvent> {
        std::iter::from_fn(|| a.poll_event()).collect()
    }

    #[test]
    fn the_running_version_is_quiet_and_an_older_one_is_refused_aloud() {
        let t = t0();
        for (offered, aloud) in [("1.2.0", false), ("1.1.9", true)] {
            let mut a = agent(t);
            a.handle_timeout(t);
            assert_eq!(drain(&mut a), vec![UpdateEvent::FetchManifest]);
            let m = manifest(&key(1), &payload(BOARD, offered, NOW + 3600));
            a.handle_manifest(t, synced(NOW), Ok(&m));
            let events = drain(&mut a);
            assert_eq!(
                matches!(
                    events.as_slice(),
                    [UpdateEvent::Refused(Refusal::NotNewer { .. })]
                ),
                aloud,
                "{offered}: {events:?}"
            );
            assert!(aloud || events.is_empty(), "{offered}: {events:?}");
            assert!(!a.is_updating());
        }
    }

    #[test]
    fn an_update_never_reboots_a_live_station_and_reboots_once_released() {
        let t = t0();
        let mut a = agent(t);
        a.handle_stage(t, false); // live
        a.handle_timeout(t);
        assert_eq!(drain(&mut a), vec![UpdateEvent::FetchManifest]);
        let m = manifest(&key(1), &payload(BOARD, "1.3.0", NOW + 3600));
        a.handle_manifest(t, synced(NOW), Ok(&m));
        assert!(matches!(
            drain(&mut a).as_slice(),
            [UpdateEvent::Download { resume_from: 0, .. }]
        ));
        assert!(!a.is_updating(), "a download is quiet");
        // A broken download resumes from what was kept.
        a.handle_download_progress(t, 400);
        a.handle_downloaded(t, Err("connection reset".into()));
        assert!(matches!(drain(&mut a).as_slice(), [UpdateEvent::Failed(_)]));
        let retry = a.poll_timeout().unwrap();
        assert_eq!(retry, t + Duration::from_secs(60));
        a.handle_timeout(retry);
        assert!(matches!(
            drain(&mut a).as_slice(),
            [UpdateEvent::Download {
                resume_from: 400,
                ..
            }]
        ));
        a.handle_download_progress(t, 1000);
        a.handle_downloaded(t, Ok((1000, [0xab; 32])));
        assert_eq!(
            drain(&mut a),
            vec![UpdateEvent::Install {
                version: Version(1, 3, 0)
            }]
        );
        assert!(a.is_updating(), "installing: do not unplug");
        a.handle_installed(t, Ok(()));
        // Live: no reboot, however long.
        assert_eq!(drain(&mut a), vec![]);
        a.handle_stage(t, false);
        assert_eq!(drain(&mut a), vec![]);
        assert_eq!(
            a.state(),
            &UpdateState::AwaitingReboot {
                version: Version(1, 3, 0)
            }
        );
        // Released: reboot at once.
        a.handle_stage(t, true);
        assert_eq!(drain(&mut a), vec![UpdateEvent::Reboot]);
    }

    #[test]
    fn a_lying_source_is_refused_and_nothing_is_installed() {
        let t = t0();
        let mut a = agent(t);
        a.handle_timeout(t);
        let _ = drain(&mut a);
        let m = manifest(&key(1), &payload(BOARD, "1.3.0", NOW + 3600));
        a.handle_manifest(t, synced(NOW), Ok(&m));
        let _ = drain(&mut a);
        // More than announced: cut off.
        a.handle_download_progress(t, 5000);
        assert!(matches!(
            drain(&mut a).as_slice(),
            [UpdateEvent::Refused(Refusal::SizeMismatch { .. })]
        ));
        assert!(matches!(a.state(), UpdateState::Idle { .. }));
        // Again, with the wrong hash.
        a.handle_timeout(t + Duration::from_secs(3600));
        let _ = drain(&mut a);
        a.handle_manifest(t, synced(NOW), Ok(&m));
        let _ = drain(&mut a);
        a.handle_downloaded(t, Ok((1000, [0; 32])));
        assert_eq!(
            drain(&mut a),
            vec![UpdateEvent::Refused(Refusal::HashMismatch)]
        );
        assert!(!a.is_updating());
    }

    #[test]
    fn a_maintenance_window_holds_the_reboot_until_it_opens_and_the_stage_allows() {
        let w = MaintenanceWindow::parse("23:30-02:00").unwrap();
        assert!(w.contains(23 * 60 + 30) && w.contains(60) && !w.contains(120));
        assert!(!w.contains(12 * 60));
        for bad in [
            "",
            "02:00",
            "2:00-03:00",
            "24:00-01:00",
            "01:60-02:00",
            "03:00-03:00",
        ] {
            assert_eq!(MaintenanceWindow::parse(bad), None, "{bad:?}");
        }
        let t = t0();
        let mut a = agent(t);
        a.cfg.window = MaintenanceWindow::parse("02:00-04:00");
        a.in_window = false;
        a.handle_timeout(t);
        let _ = drain(&mut a);
        let m = manifest(&key(1), &payload(BOARD, "1.3.0", NOW + 3600));
        a.handle_manifest(t, synced(NOW), Ok(&m));
        let _ = drain(&mut a);
        a.handle_downloaded(t, Ok((1000, [0xab; 32])));
        let _ = drain(&mut a);
        a.handle_installed(t, Ok(()));
        assert!(a.wants_local_time());
        a.handle_stage(t, true);
        a.handle_local_time(t, 14 * 60);
        assert_eq!(drain(&mut a), vec![], "the afternoon is outside the window");
        a.handle_stage(t, false);
        a.handle_local_time(t, 3 * 60);
        assert_eq!(drain(&mut a), vec![], "inside the window but live");
        a.handle_stage(t, true);
        assert_eq!(drain(&mut a), vec![UpdateEvent::Reboot]);
    }

    #[test]
    fn a_version_that_rolled_back_is_not_installed_again_but_a_newer_one_is() {
        let t = t0();
        let mut a = agent(t);
        a.cfg.failed = Some(Version(1, 3, 0));
        a.handle_timeout(t);
        let _ = drain(&mut a);
        let m = manifest(&key(1), &payload(BOARD, "1.3.0", NOW + 3600));
        a.handle_manifest(t, synced(NOW), Ok(&m));
        assert_eq!(drain(&mut a), vec![]);
        assert!(matches!(a.state(), UpdateState::Idle { .. }));
        a.handle_timeout(t + Duration::from_secs(3600));
        let _ = drain(&mut a);
        let m = manifest(&key(1), &payload(BOARD, "1.3.1", NOW + 3600));
        a.handle_manifest(t, synced(NOW), Ok(&m));
        assert!(matches!(
            drain(&mut a).as_slice(),
            [UpdateEvent::Download { .. }]
        ));
    }
}
