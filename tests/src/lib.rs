//! # stagebox-tests — scenarios across crates
//!
//! [`netsim`] connects station cores and a server core in virtual time; the scenarios under
//! `tests/` drive them (session, reconnect, stage flows, media under loss), and the system
//! tests run the real binaries over loopback. Audio is judged with
//! `stagebox-judge`.

pub mod netsim;

use std::time::{Duration, Instant};

use stagebox_core::{SessionConfig, StationConfig};
use stagebox_proto::signal::Role;
use stagebox_server_core::{ServerConfig, StationCredential};

/// The one place a virtual-time test reads the real clock: to get an origin.
#[allow(clippy::disallowed_methods)]
pub fn origin() -> Instant {
    Instant::now()
}

/// A server with stage `townhall`, moderator `mod-1` and audience stations `a-1`…`a-4`.
pub fn server_config() -> ServerConfig {
    let mut cfg = ServerConfig::new("127.0.0.1", 50000);
    cfg.stages.push("townhall".into());
    cfg.stations.insert(
        "mod-1".into(),
        StationCredential {
            token: "token-mod-1".into(),
            role: Role::Moderator,
        },
    );
    for i in 1..=4 {
        cfg.stations.insert(
            format!("a-{i}"),
            StationCredential {
                token: format!("token-a-{i}"),
                role: Role::Audience,
            },
        );
    }
    cfg
}

/// A station config matching [`server_config`], with a seed of its own.
pub fn station_config(station_id: &str, seed: u64) -> StationConfig {
    let mut session = SessionConfig::new(
        station_id,
        &format!("token-{station_id}"),
        "townhall",
        "wss://127.0.0.1:8443/signal",
    );
    session.seed = seed;
    StationConfig::new(session)
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
