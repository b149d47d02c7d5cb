//! What a server core is configured with, and where its randomness comes from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use stagebox_proto::signal::Role;

/// One station allowed on this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationCredential {
    pub token: String,
    /// Role it joins with: `Moderator` or `Audience` (speakers are made by invitation).
    pub role: Role,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Stages that exist on this server.
    pub stages: Vec<String>,
    /// Station id → credential.
    pub stations: BTreeMap<String, StationCredential>,
    pub heartbeat_interval: Duration,
    pub resume_window: Duration,
    /// How long a connection may stay unauthenticated.
    pub auth_timeout: Duration,
    /// UDP address advertised to stations in `ready`.
    pub media_host: String,
    pub media_port: u16,
    /// Stage → its link token: a browser with the link joins that stage as audience.
    pub stage_links: BTreeMap<String, String>,
    /// Where browsers reach the media socket (their ICE host candidates; IPv4 and IPv6).
    pub browser_addresses: Vec<SocketAddr>,
}

impl ServerConfig {
    pub fn new(media_host: &str, media_port: u16) -> ServerConfig {
        ServerConfig {
            stages: Vec::new(),
            stations: BTreeMap::new(),
            heartbeat_interval: Duration::from_secs(2),
            resume_window: Duration::from_secs(30),
            auth_timeout: Duration::from_secs(10),
            media_host: media_host.into(),
            media_port,
            stage_links: BTreeMap::new(),
            browser_addresses: media_host
                .parse::<std::net::IpAddr>()
                .map(|ip| vec![SocketAddr::new(ip, media_port)])
                .unwrap_or_default(),
        }
    }
}

/// Source of session ids, SSRCs and media keys. The server binary fills it from the operating
/// system's generator; tests use a seeded one.
pub trait Entropy: Send {
    fn fill(&mut self, buf: &mut [u8]);
}

/// Deterministic entropy for tests and simulations. Never for a real server.
pub struct SeededEntropy(pub fastrand::Rng);

impl SeededEntropy {
    pub fn new(seed: u64) -> SeededEntropy {
        SeededEntropy(fastrand::Rng::with_seed(seed))
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        self.0.fill(buf);
    }
}

/// Compares two secrets in time that depends only on their lengths.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
