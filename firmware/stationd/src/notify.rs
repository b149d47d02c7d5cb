//! systemd's notify protocol: `READY=1` once the station runs, `WATCHDOG=1` from the network
//! loop at half the unit's `WatchdogSec`, so a wedged loop gets the daemon restarted. Without
//! `NOTIFY_SOCKET` (not under systemd) it does nothing.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

pub struct Watchdog {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    interval: Option<Duration>,
    ready_sent: bool,
    last: Option<Instant>,
}

fn target(path: &str) -> Option<std::os::unix::net::SocketAddr> {
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name).ok()
    } else {
        std::os::unix::net::SocketAddr::from_pathname(path).ok()
    }
}

impl Watchdog {
    pub fn from_env() -> Watchdog {
        let socket = std::env::var("NOTIFY_SOCKET")
            .ok()
            .and_then(|p| Some((UnixDatagram::unbound().ok()?, target(&p)?)));
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let interval = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|_| for_us && socket.is_some())
            .map(|us| Duration::from_micros(us / 2));
        Watchdog {
            socket,
            interval,
            ready_sent: false,
            last: None,
        }
    }

    fn send(&self, message: &str) {
        if let Some((sock, addr)) = &self.socket
            && let Err(e) = sock.send_to_addr(message.as_bytes(), addr)
        {
            log::warn!("systemd notify: {e}");
        }
    }

    /// Called on every turn of the network loop.
    pub fn pet(&mut self, now: Instant) {
        if !self.ready_sent {
            self.ready_sent = true;
            self.send("READY=1\nSTATUS=running");
        }
        if let Some(interval) = self.interval
            && self
                .last
                .is_none_or(|l| now.saturating_duration_since(l) >= interval)
        {
            self.last = Some(now);
            self.send("WATCHDOG=1");
        }
    }

    /// The loop's next wake-up, early enough for the next pet.
    pub fn next(&self, deadline: Instant) -> Instant {
        match (self.interval, self.last) {
            (Some(i), Some(l)) => deadline.min(l + i),
            _ => deadline,
        }
    }
}
