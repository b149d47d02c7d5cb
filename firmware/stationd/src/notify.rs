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
    /// Sending fails (logged once per streak).
    failing: bool,
    /// What `systemctl status` shows beside the unit once it is ready.
    status: String,
}

fn target(path: &str) -> Option<std::os::unix::net::SocketAddr> {
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name).ok()
    } else {
        std::os::unix::net::SocketAddr::from_pathname(path).ok()
    }
}

/// The notify socket at `path`, non-blocking: the network loop sends from here, and a socket
/// nobody reads (a full queue) must cost a ping, never the loop.
fn open(path: &str) -> Option<(UnixDatagram, std::os::unix::net::SocketAddr)> {
    let sock = UnixDatagram::unbound().ok()?;
    sock.set_nonblocking(true).ok()?;
    Some((sock, target(path)?))
}

impl Watchdog {
    pub fn from_env() -> Watchdog {
        let socket = std::env::var("NOTIFY_SOCKET").ok().and_then(|p| open(&p));
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
            failing: false,
            status: "running".into(),
        }
    }

    #[cfg(test)]
    fn to(path: &str, interval: Duration) -> Watchdog {
        Watchdog {
            socket: open(path),
            interval: Some(interval),
            ready_sent: false,
            last: None,
            failing: false,
            status: "running".into(),
        }
    }

    /// The status line sent with `READY=1` (one line, at most 200 bytes), instead of
    /// `running`.
    pub fn with_status(mut self, status: &str) -> Watchdog {
        let mut line: String = status
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if line.len() > 200 {
            let mut end = 200;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
        }
        self.status = line;
        self
    }

    fn send(&mut self, message: &str) {
        let Some((sock, addr)) = &self.socket else {
            return;
        };
        match sock.send_to_addr(message.as_bytes(), addr) {
            Ok(_) => self.failing = false,
            Err(e) if !self.failing => {
                self.failing = true;
                log::warn!("systemd notify: {e}");
            }
            Err(_) => {}
        }
    }

    /// Called on every turn of the network loop.
    pub fn pet(&mut self, now: Instant) {
        if !self.ready_sent {
            self.ready_sent = true;
            let ready = format!("READY=1\nSTATUS={}", self.status);
            self.send(&ready);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notify_socket_nobody_reads_never_blocks_the_loop() {
        let dir = std::env::temp_dir().join(format!("stagebox-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let mut watchdog = Watchdog::to(path.to_str().unwrap(), Duration::from_millis(1));
        // The pets run on a thread of their own: a blocking send would hang there, and the
        // test says so instead of hanging.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            for ms in 0..1000 {
                watchdog.pet(t0 + Duration::from_millis(ms));
            }
            let _ = done_tx.send(watchdog.failing);
        });
        let failing = done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a full notify queue blocked the loop");
        assert!(
            failing,
            "the queue filled: later pings were dropped, not waited for"
        );
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"READY=1"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
