//! The server's configuration file (TOML): where to listen, the TLS certificate, the admin
//! token, timings, the stages and the stations allowed on them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use stagebox_proto::signal::Role;
use stagebox_server_core::{ServerConfig, StationCredential};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub gateway: SocketAddr,
    pub media: SocketAddr,
    pub admin: SocketAddr,
    /// Media address advertised to stations (default: the media listen IP).
    pub media_public_host: Option<String>,
    /// Media port advertised to stations (default: the media listen port), for a server
    /// behind a port forward or an impairment relay.
    pub media_public_port: Option<u16>,
    /// Where browsers reach the media socket: IP addresses and ports, IPv4 and IPv6, as
    /// browsers see them (default: the advertised media host and port, if it is an address,
    /// else the media listen address unless it is a wildcard).
    #[serde(default)]
    pub browser_addresses: Vec<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate and key; a self-signed pair is created on first run if both are
    /// missing.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Names and addresses the generated certificate is valid for.
    #[serde(default = "default_names")]
    pub names: Vec<String>,
}

fn default_names() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Bearer token the admin interface requires.
    pub token: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    #[serde(default = "hb")]
    pub heartbeat_ms: u64,
    #[serde(default = "resume")]
    pub resume_window_ms: u64,
}

fn hb() -> u64 {
    2000
}

fn resume() -> u64 {
    30_000
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat_ms: hb(),
            resume_window_ms: resume(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageEntry {
    pub id: String,
    /// The stage's link token: a person with `https://GATEWAY/listen#stage=ID&link=TOKEN`
    /// joins from a browser (at least 16 characters; change it to revoke the link). Without
    /// one, browsers cannot join this stage.
    pub link: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationEntry {
    pub id: String,
    pub token: String,
    #[serde(default = "audience")]
    pub role: Role,
}

fn audience() -> Role {
    Role::Audience
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: Listen,
    pub tls: Tls,
    pub admin: Admin,
    #[serde(default)]
    pub timing: Timing,
    #[serde(rename = "stage")]
    pub stages: Vec<StageEntry>,
    #[serde(rename = "station", default)]
    pub stations: Vec<StationEntry>,
    #[serde(default)]
    pub log_json: bool,
    /// Update files (bundles, manifests) served at `https://GATEWAY/updates/NAME`.
    pub updates: Option<Updates>,
    #[serde(default)]
    pub console: ConsoleSection,
}

/// The moderators' web console at `https://GATEWAY/console`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSection {
    /// The moderators' accounts (`stage-server user add` writes it).
    #[serde(default = "default_accounts")]
    pub accounts: PathBuf,
    /// The soundboard's clips (uploads and their index).
    #[serde(default = "default_clips")]
    pub clips: PathBuf,
}

fn default_accounts() -> PathBuf {
    PathBuf::from("/var/lib/stagebox/console-accounts.json")
}

fn default_clips() -> PathBuf {
    PathBuf::from("/var/lib/stagebox/clips")
}

impl Default for ConsoleSection {
    fn default() -> Self {
        ConsoleSection {
            accounts: default_accounts(),
            clips: default_clips(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Updates {
    /// The directory whose plain files are served.
    pub dir: PathBuf,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        let cfg: Config = toml::from_str(&text).map_err(|e| {
            let line = e.span().map_or(0, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            });
            anyhow::anyhow!("{}:{line}: {}", path.display(), e.message().trim())
        })?;
        if cfg.admin.token.len() < 16 {
            bail!(
                "{}: admin.token must be at least 16 characters",
                path.display()
            );
        }
        for stage in &cfg.stages {
            if stage.link.as_ref().is_some_and(|l| l.len() < 16) {
                bail!(
                    "{}: stage {}: link must be at least 16 characters",
                    path.display(),
                    stage.id
                );
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &cfg.stations {
            if s.role == Role::Speaker {
                bail!(
                    "{}: station {}: role must be moderator or audience (speakers are invited)",
                    path.display(),
                    s.id
                );
            }
            if s.token.len() < 8 {
                bail!(
                    "{}: station {}: token must be at least 8 characters",
                    path.display(),
                    s.id
                );
            }
            if !seen.insert(&s.id) {
                bail!("{}: station {} is listed twice", path.display(), s.id);
            }
        }
        Ok(cfg)
    }

    /// The core's configuration.
    pub fn server_config(&self) -> ServerConfig {
        let host = self
            .listen
            .media_public_host
            .clone()
            .unwrap_or_else(|| self.listen.media.ip().to_string());
        let port = self
            .listen
            .media_public_port
            .unwrap_or(self.listen.media.port());
        let mut cfg = ServerConfig::new(&host, port);
        cfg.stages = self.stages.iter().map(|s| s.id.clone()).collect();
        cfg.stations = self
            .stations
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    StationCredential {
                        token: s.token.clone(),
                        role: s.role,
                    },
                )
            })
            .collect::<BTreeMap<_, _>>();
        cfg.stage_links = self
            .stages
            .iter()
            .filter_map(|s| Some((s.id.clone(), s.link.clone()?)))
            .collect();
        if !self.listen.browser_addresses.is_empty() {
            cfg.browser_addresses = self.listen.browser_addresses.clone();
        } else if cfg.browser_addresses.is_empty() && !self.listen.media.ip().is_unspecified() {
            cfg.browser_addresses = vec![SocketAddr::new(self.listen.media.ip(), port)];
        }
        cfg.heartbeat_interval = Duration::from_millis(self.timing.heartbeat_ms);
        cfg.resume_window = Duration::from_millis(self.timing.resume_window_ms);
        cfg
    }
}
