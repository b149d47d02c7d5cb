//! The station's configuration file (TOML), e.g. `/boot/firmware/stagebox.toml` on an SD
//! card or `/etc/stagebox/station.toml` from the package. Every problem is reported with the
//! file, the line and the field, and the daemon exits with code 2.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: String,
        line: usize,
        message: String,
    },
}

/// A gateway URL: `wss://host[:port]/path`. Plain `ws://` is refused: signaling carries the
/// station's token and the media keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayUrl(pub String);

impl<'de> Deserialize<'de> for GatewayUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let rest = s.strip_prefix("wss://").ok_or_else(|| {
            serde::de::Error::custom(format!("gateway must be a wss:// URL, got {s:?}"))
        })?;
        if rest.is_empty() || rest.starts_with('/') || rest.starts_with(':') {
            return Err(serde::de::Error::custom(format!(
                "gateway {s:?} has no host"
            )));
        }
        Ok(GatewayUrl(s))
    }
}

/// A SHA-256 certificate fingerprint: 64 hex digits, colons allowed.
#[derive(Clone, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let clean: String = s.chars().filter(|c| *c != ':').collect();
        let mut out = [0u8; 32];
        hex::decode_to_slice(&clean, &mut out).map_err(|_| {
            serde::de::Error::custom(
                "pin_sha256 must be 64 hex digits (the SHA-256 of the server certificate)",
            )
        })?;
        Ok(Fingerprint(out))
    }
}

/// A non-empty identifier of at most 128 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident(pub String);

impl<'de> Deserialize<'de> for Ident {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.len() > 128 {
            return Err(serde::de::Error::custom("must be 1 to 128 bytes"));
        }
        Ok(Ident(s))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationSection {
    pub id: Ident,
    pub token: Ident,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub gateway: GatewayUrl,
    pub stage: Ident,
    /// Trust the server whose certificate has this SHA-256 (self-signed servers).
    pub pin_sha256: Option<Fingerprint>,
    /// Or trust certificates issued by this CA (PEM).
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardSection {
    pub profile: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMs(pub u32);

impl<'de> Deserialize<'de> for FrameMs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u32::deserialize(d)? {
            v @ (10 | 20) => Ok(FrameMs(v)),
            v => Err(serde::de::Error::custom(format!(
                "frame_ms must be 10 or 20, got {v}"
            ))),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioSection {
    #[serde(default = "default_frame")]
    pub frame_ms: FrameMs,
    /// The least a listener buffers, in frames: the jitter buffer adapts its delay to the
    /// measured arrival jitter, and never goes below `jitter_frames − 1` frames beyond the
    /// fastest packet (1, the default, leaves it all to the measurement).
    #[serde(default = "default_jitter")]
    pub jitter_frames: u16,
    /// Opus bitrate of the microphone stream, 8 to 128 kbit/s.
    #[serde(default = "default_bitrate")]
    pub bitrate_kbps: u16,
    /// The least loss the microphone stream is protected against, percent (0 to 50). The
    /// listeners report what they lose and the protection follows the worst of them; set
    /// this only where the venue's network is known to lose packets from the start.
    #[serde(default)]
    pub expected_loss_percent: u8,
    /// How loss is met: `redundancy` (the default: each packet also carries the frame before
    /// it, and up to three as the listeners' loss asks — twice to four times the bandwidth,
    /// and while frames are lost a frame more of listener delay per copy), `fec` (Opus
    /// in-band FEC only: no extra bandwidth or delay, coarser repair) or `off`.
    #[serde(default)]
    pub loss_protection: LossProtectionMode,
    /// Remove the station's own loudspeaker from its microphones.
    #[serde(default = "yes")]
    pub echo_cancellation: bool,
    /// off, low (the default: light on speech), moderate, high or very-high (noisy halls).
    #[serde(default)]
    pub noise_suppression: NoiseSuppressionLevel,
    /// Bring quiet and loud talkers to one level (with a limiter).
    #[serde(default = "yes")]
    pub gain_control: bool,
    /// Remove rumble and hum below about 80 Hz.
    #[serde(default = "yes")]
    pub high_pass: bool,
    /// ALSA devices, overriding the board profile's.
    pub capture_device: Option<String>,
    pub playback_device: Option<String>,
}

fn default_frame() -> FrameMs {
    FrameMs(20)
}

fn default_jitter() -> u16 {
    1
}

fn default_bitrate() -> u16 {
    32
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossProtectionMode {
    #[default]
    Redundancy,
    Fec,
    Off,
}

impl From<LossProtectionMode> for stagebox_core::redundancy::ProtectionMode {
    fn from(m: LossProtectionMode) -> Self {
        match m {
            LossProtectionMode::Redundancy => Self::Redundancy,
            LossProtectionMode::Fec => Self::Fec,
            LossProtectionMode::Off => Self::Off,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoiseSuppressionLevel {
    Off,
    #[default]
    Low,
    Moderate,
    High,
    VeryHigh,
}

impl AudioSection {
    /// The capture chain's processing, as configured.
    pub fn processing(&self) -> stagebox_audio::ApmConfig {
        use stagebox_audio::NoiseSuppression as Ns;
        stagebox_audio::ApmConfig {
            echo_cancellation: self.echo_cancellation,
            noise_suppression: match self.noise_suppression {
                NoiseSuppressionLevel::Off => Ns::Off,
                NoiseSuppressionLevel::Low => Ns::Low,
                NoiseSuppressionLevel::Moderate => Ns::Moderate,
                NoiseSuppressionLevel::High => Ns::High,
                NoiseSuppressionLevel::VeryHigh => Ns::VeryHigh,
            },
            agc_target_dbfs: self.gain_control.then_some(3),
            high_pass: self.high_pass,
            ..stagebox_audio::ApmConfig::default()
        }
    }
}

impl Default for AudioSection {
    fn default() -> Self {
        AudioSection {
            frame_ms: default_frame(),
            jitter_frames: default_jitter(),
            bitrate_kbps: default_bitrate(),
            expected_loss_percent: 0,
            loss_protection: LossProtectionMode::default(),
            echo_cancellation: true,
            noise_suppression: NoiseSuppressionLevel::default(),
            gain_control: true,
            high_pass: true,
            capture_device: None,
            playback_device: None,
        }
    }
}

/// Settings of the sim board.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimSection {
    /// What the sim microphone hears when told to play (`mic play`), 48 kHz 16-bit WAV.
    pub mic_wav: Option<PathBuf>,
    /// Play `mic_wav` once from the start, without being told.
    #[serde(default)]
    pub mic_autoplay: bool,
    /// Record what the microphone captured.
    pub record_mic: Option<PathBuf>,
    /// Where the sim loudspeaker writes (a WAV); nowhere if unset.
    pub speaker_wav: Option<PathBuf>,
    /// Unix socket for button presses and diagnostics.
    pub control_socket: Option<PathBuf>,
    /// Read the same commands from standard input (keyboard).
    #[serde(default)]
    pub keyboard: bool,
    /// Use ALSA devices for audio instead of WAV files (a laptop's own sound card).
    #[serde(default)]
    pub alsa_audio: bool,
    /// Draw LED changes in the terminal.
    #[serde(default = "yes")]
    pub draw_leds: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ButtonsSection {
    /// Double-press on PTT latches live until the next press.
    #[serde(default = "yes")]
    pub ptt_latch: bool,
    /// A button held longer than this many seconds is taken for stuck: PTT stops
    /// transmitting and the LEDs show the fault until it is released.
    #[serde(default = "default_stuck_after")]
    pub stuck_after_s: StuckAfter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StuckAfter(pub u32);

impl<'de> Deserialize<'de> for StuckAfter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u32::deserialize(d)? {
            v @ 5..=3600 => Ok(StuckAfter(v)),
            v => Err(serde::de::Error::custom(format!(
                "stuck_after_s must be 5 to 3600 seconds, got {v}"
            ))),
        }
    }
}

fn default_stuck_after() -> StuckAfter {
    StuckAfter(300)
}

impl Default for ButtonsSection {
    fn default() -> Self {
        ButtonsSection {
            ptt_latch: true,
            stuck_after_s: default_stuck_after(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    #[serde(default)]
    pub format: LogFormat,
    #[serde(default)]
    pub level: LogLevel,
}

/// Updates over the air and the boot health check (see docs/updates.md). Without this
/// section the station neither looks for updates nor marks a boot slot good (a station
/// installed from the package on an ordinary system has no slots).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSection {
    /// Where the signed manifest is fetched (`https://`), trusted as the gateway is (its pin
    /// or CA). Without it the station never looks for updates, but still marks its slot good
    /// after each healthy boot.
    pub manifest_url: Option<String>,
    /// The release keys' Ed25519 public keys (64 hex digits each), as `stagebox-release
    /// public-key` prints them. Required with `manifest_url`.
    #[serde(default)]
    pub keys: Vec<String>,
    /// How often to look for an update, in seconds (60 to 604800).
    #[serde(default = "default_check_every")]
    pub check_every_s: u64,
    /// A failed manifest fetch or a broken download is tried again after this many seconds
    /// (10 to 3600; a download resumes where it broke off).
    #[serde(default = "default_retry_after")]
    pub retry_after_s: u64,
    /// Reboot into an installed update only inside this daily window, local time
    /// (`"02:00-05:00"`), and still only when the station is neither live nor invited.
    pub maintenance_window: Option<String>,
    /// A new version must join a stage with its audio open within this many seconds of
    /// booting, or the station reboots and, after the boot loader's last try, goes back to the
    /// previous version (30 to 3600).
    #[serde(default = "default_health_within")]
    pub health_within_s: u64,
    /// Downloads and update state (on the data partition).
    #[serde(default = "default_update_dir")]
    pub dir: PathBuf,
    /// The running version is read from this file (`MAJOR.MINOR.PATCH`); the daemon's own
    /// version where it does not exist.
    #[serde(default = "default_version_file")]
    pub version_file: PathBuf,
    /// The image's board (`qemu`, `pi4`: what a manifest's `board` names) is read from
    /// this file, which the image build writes; the board profile's name where it does not
    /// exist (a station installed from the package).
    #[serde(default = "default_board_file")]
    pub board_file: PathBuf,
    /// Marks this boot's mark-good as done; on a tmpfs, so once per boot.
    #[serde(default = "default_marked_file")]
    pub marked_file: PathBuf,
    /// Installs a bundle (its path is appended).
    #[serde(default = "default_install")]
    pub install_command: Vec<String>,
    /// Marks the running slot good.
    #[serde(default = "default_mark_good")]
    pub mark_good_command: Vec<String>,
    /// Makes the running slot the first to boot; run after mark-good when the station came
    /// back from a version that failed its trial.
    #[serde(default = "default_mark_active")]
    pub mark_active_command: Vec<String>,
    /// Reboots the station. The daemon runs unprivileged: by default it asks systemd by
    /// creating /run/stagebox/reboot, which the image's `stagebox-reboot.path` watches.
    #[serde(default = "default_reboot")]
    pub reboot_command: Vec<String>,
}

fn default_check_every() -> u64 {
    3600
}
fn default_retry_after() -> u64 {
    60
}
fn default_health_within() -> u64 {
    300
}
pub(crate) fn default_update_dir() -> PathBuf {
    PathBuf::from(stagebox_core::update::DEFAULT_UPDATE_DIR)
}
pub(crate) fn default_version_file() -> PathBuf {
    PathBuf::from(stagebox_core::update::DEFAULT_VERSION_FILE)
}
fn default_board_file() -> PathBuf {
    PathBuf::from("/etc/stagebox/board")
}
fn default_marked_file() -> PathBuf {
    PathBuf::from("/run/stagebox/marked-good")
}
fn default_install() -> Vec<String> {
    vec!["rauc".into(), "install".into()]
}
fn default_mark_good() -> Vec<String> {
    vec!["rauc".into(), "status".into(), "mark-good".into()]
}
fn default_mark_active() -> Vec<String> {
    vec![
        "rauc".into(),
        "status".into(),
        "mark-active".into(),
        "booted".into(),
    ]
}
fn default_reboot() -> Vec<String> {
    vec!["touch".into(), "/run/stagebox/reboot".into()]
}

impl UpdateSection {
    /// The release keys, decoded (`parse` has checked them).
    pub fn public_keys(&self) -> Vec<[u8; 32]> {
        self.keys
            .iter()
            .filter_map(|k| {
                let mut out = [0u8; 32];
                hex::decode_to_slice(k.trim(), &mut out).ok().map(|()| out)
            })
            .collect()
    }

    fn check(&self) -> Result<(), String> {
        if let Some(url) = &self.manifest_url {
            stagebox_core::gateway::https_target(url)
                .map_err(|e| format!("field `update.manifest_url`: {e}"))?;
            if self.keys.is_empty() {
                return Err(
                    "field `update.keys`: list the release key (stagebox-release public-key) \
                     so the station can check what it installs"
                        .into(),
                );
            }
        }
        if self.public_keys().len() != self.keys.len() {
            return Err("field `update.keys`: each key is 64 hex digits".into());
        }
        if !(60..=604_800).contains(&self.check_every_s) {
            return Err("field `update.check_every_s`: must be 60 to 604800".into());
        }
        if !(10..=3600).contains(&self.retry_after_s) {
            return Err("field `update.retry_after_s`: must be 10 to 3600".into());
        }
        if !(30..=3600).contains(&self.health_within_s) {
            return Err("field `update.health_within_s`: must be 30 to 3600".into());
        }
        if let Some(w) = &self.maintenance_window
            && stagebox_core::update::MaintenanceWindow::parse(w).is_none()
        {
            return Err(
                "field `update.maintenance_window`: write it as \"HH:MM-HH:MM\" (local time)"
                    .into(),
            );
        }
        for (name, argv) in [
            ("install_command", &self.install_command),
            ("mark_good_command", &self.mark_good_command),
            ("mark_active_command", &self.mark_active_command),
            ("reboot_command", &self.reboot_command),
        ] {
            if argv.first().is_none_or(|p| p.is_empty()) {
                return Err(format!("field `update.{name}`: name a program"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub station: StationSection,
    pub server: ServerSection,
    pub board: BoardSection,
    #[serde(default)]
    pub audio: AudioSection,
    #[serde(default)]
    pub sim: SimSection,
    #[serde(default)]
    pub buttons: ButtonsSection,
    #[serde(default)]
    pub log: LogSection,
    pub update: Option<UpdateSection>,
    /// The Wi-Fi network (applied at boot by the appliance's root helper).
    pub wifi: Option<crate::system_settings::WifiSection>,
    /// The time zone (applied at boot by the appliance's root helper).
    pub time: Option<crate::system_settings::TimeSection>,
    /// The technician's serial console (read by `stagebox-console`).
    #[serde(default)]
    pub console: ConsoleSection,
}

/// The technician's serial console.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSection {
    /// Reading commands (`status`, `net`, `logs`, …) run without the station's console PIN;
    /// changes always need it. Off unless the owner turns it on.
    #[serde(default)]
    pub read_without_pin: bool,
}

/// How the station trusts its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    Pin(Fingerprint),
    Ca(PathBuf),
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            });
            ConfigError::Invalid {
                path: path.display().to_string(),
                line,
                message: e.message().trim().to_string(),
            }
        })?;
        // Cross-field rules, reported at the section's line.
        let section_line = |name: &str| {
            text.lines()
                .position(|l| l.trim() == format!("[{name}]"))
                .map_or(0, |i| i + 1)
        };
        let invalid = |section: &str, message: &str| ConfigError::Invalid {
            path: path.display().to_string(),
            line: section_line(section),
            message: message.into(),
        };
        match (&cfg.server.pin_sha256, &cfg.server.ca_file) {
            (None, None) => {
                return Err(invalid(
                    "server",
                    "field `server`: set `pin_sha256` (the fingerprint the server prints) or `ca_file`",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "server",
                    "field `server`: set only one of `pin_sha256` and `ca_file`",
                ));
            }
            _ => {}
        }
        if cfg.audio.jitter_frames == 0 || cfg.audio.jitter_frames > 10 {
            return Err(invalid(
                "audio",
                "field `audio.jitter_frames`: must be 1 to 10",
            ));
        }
        if cfg.audio.expected_loss_percent > 50 {
            return Err(invalid(
                "audio",
                "field `audio.expected_loss_percent`: must be 0 to 50",
            ));
        }
        if !(8..=128).contains(&cfg.audio.bitrate_kbps) {
            return Err(invalid(
                "audio",
                "field `audio.bitrate_kbps`: must be 8 to 128",
            ));
        }
        if let Some(u) = &cfg.update {
            u.check().map_err(|m| invalid("update", &m))?;
        }
        Ok(cfg)
    }

    pub fn trust(&self) -> Trust {
        match (&self.server.pin_sha256, &self.server.ca_file) {
            (Some(pin), _) => Trust::Pin(pin.clone()),
            (None, Some(ca)) => Trust::Ca(ca.clone()),
            // parse() refuses a config with neither.
            (None, None) => Trust::Pin(Fingerprint([0; 32])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[station]
id = "podium-1"
token = "secret"

[server]
gateway = "wss://127.0.0.1:8443/signal"
stage = "townhall"
pin_sha256 = "AB:CD:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd"

[board]
profile = "sim"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("station.toml"))
    }

    #[test]
    fn good_config_with_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.station.id.0, "podium-1");
        assert_eq!(c.audio.frame_ms, FrameMs(20));
        assert!(c.buttons.ptt_latch);
        assert!(matches!(c.trust(), Trust::Pin(f) if f.0[0] == 0xab));
        assert_eq!(c.audio.loss_protection, LossProtectionMode::Redundancy);
        let fec = parse(&format!("{GOOD}\n[audio]\nloss_protection = \"fec\"\n")).unwrap();
        assert_eq!(fec.audio.loss_protection, LossProtectionMode::Fec);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let cases = [
            (GOOD.replace("wss://127", "ws://127"), 7, "wss://"),
            (GOOD.replace("\"podium-1\"", "\"\""), 3, "1 to 128"),
            (GOOD.replace("AB:CD", "XY"), 9, "pin_sha256"),
            (
                GOOD.replace("[board]", "[board]\ncolour = \"red\""),
                12,
                "colour",
            ),
            (format!("{GOOD}\n[audio]\nframe_ms = 30\n"), 15, "10 or 20"),
            (
                format!("{GOOD}\n[audio]\nloss_protection = \"more\"\n"),
                15,
                "redundancy",
            ),
            (
                format!("{GOOD}\n[audio]\nbitrate_kbps = 4\n"),
                14,
                "bitrate_kbps",
            ),
            (GOOD.replace("pin_sha256", "# pin_sha256"), 6, "pin_sha256"),
            (GOOD.replace("token = \"secret\"\n", ""), 2, "token"),
        ];
        for (text, line, needle) in cases {
            let err = parse(&text).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with(&format!("station.toml:{line}:")), "{msg}");
            assert!(msg.contains(needle), "{msg}");
        }
    }

    #[test]
    fn the_update_section_is_checked_field_by_field() {
        let key = "ab".repeat(32);
        let good = format!(
            "{GOOD}\n[update]\nmanifest_url = \"https://updates.example/pi4.json\"\n\
             keys = [\"{key}\"]\nmaintenance_window = \"02:00-05:00\"\n"
        );
        let c = parse(&good).unwrap();
        let u = c.update.unwrap();
        assert_eq!(u.public_keys(), vec![[0xab; 32]]);
        assert_eq!(u.install_command, ["rauc", "install"]);
        assert_eq!(u.health_within_s, 300);
        for (text, needle) in [
            (good.replace("https://", "http://"), "manifest_url"),
            (good.replace(&key, "abc"), "64 hex digits"),
            (good.replace(&format!("\"{key}\""), ""), "release key"),
            (good.replace("02:00-05:00", "2am"), "HH:MM-HH:MM"),
            (format!("{good}check_every_s = 5\n"), "check_every_s"),
            (format!("{good}reboot_command = []\n"), "reboot_command"),
        ] {
            let msg = parse(&text).unwrap_err().to_string();
            assert!(msg.starts_with("station.toml:14:"), "{msg}");
            assert!(msg.contains(needle), "{msg}");
        }
        // Only the health check (no source): fine.
        assert!(
            parse(&format!("{GOOD}\n[update]\n"))
                .unwrap()
                .update
                .is_some()
        );
    }

    #[test]
    fn unreadable_file_is_named() {
        let err = Config::load(Path::new("/nonexistent/station.toml")).unwrap_err();
        assert!(err.to_string().starts_with("/nonexistent/station.toml:"));
    }
}
