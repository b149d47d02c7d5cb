//! The one place the server core lives: every input goes through [`Hub::with_core`], which
//! then carries out what the core asks — frames to connections, datagrams to stations.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use stagebox_server_core::{ConnId, ServerTransmit, StageServer};
use stagebox_ws_link::{LinkSender, Outgoing};

/// Frames queued for one connection at most. A station that has not read this many is not
/// reading (a stall, or an attack holding the server's memory): it is hung up on, and its
/// session waits for a resume like after any lost connection.
pub const SEND_QUEUE: usize = 256;

pub struct Hub {
    core: Mutex<StageServer>,
    conns: Mutex<HashMap<ConnId, LinkSender>>,
    udp: std::net::UdpSocket,
    /// Connections hung up on for not reading, for the log's rate limit.
    slow_readers: Mutex<stagebox_logging::Throttle>,
}

impl Hub {
    pub fn new(core: StageServer, udp: std::net::UdpSocket) -> Hub {
        Hub {
            core: Mutex::new(core),
            conns: Mutex::new(HashMap::new()),
            udp,
            slow_readers: Mutex::new(stagebox_logging::Throttle::per_second()),
        }
    }

    pub fn register(&self, conn: ConnId, tx: LinkSender) {
        if let Ok(mut c) = self.conns.lock() {
            c.insert(conn, tx);
        }
    }

    pub fn unregister(&self, conn: ConnId) {
        if let Ok(mut c) = self.conns.lock() {
            c.remove(&conn);
        }
    }

    /// Runs `f` on the core at `now`, then dispatches its outputs.
    pub fn with_core<R>(&self, f: impl FnOnce(&mut StageServer, Instant) -> R) -> R {
        let now = Instant::now();
        let (result, transmits) = {
            let Ok(mut core) = self.core.lock() else {
                // A poisoned lock means a panic elsewhere; the process is going down.
                std::process::abort();
            };
            let r = f(&mut core, now);
            let mut t = Vec::new();
            while let Some(x) = core.poll_transmit() {
                t.push(x);
            }
            // Sent from the core's own buffers, before they are reused. Non-blocking: a full
            // socket buffer drops the packet, as the network would.
            while let Some((addr, bytes)) = core.poll_datagram() {
                if let Err(e) = self.udp.send_to(bytes, addr) {
                    log::debug!("UDP send to {addr}: {e}");
                }
            }
            (r, t)
        };
        if let Ok(mut conns) = self.conns.lock() {
            for t in transmits {
                let (conn, frame) = match t {
                    ServerTransmit::Text { conn, msg } => (conn, Outgoing::Text(msg.to_json())),
                    ServerTransmit::Close { conn, code } => (conn, Outgoing::Close(code)),
                };
                let Some(tx) = conns.get(&conn) else {
                    continue;
                };
                if tx.send(frame).is_err() {
                    tx.hang_up();
                    conns.remove(&conn);
                    self.log_slow_reader(now, conn);
                }
            }
        }
        result
    }

    fn log_slow_reader(&self, now: Instant, conn: ConnId) {
        let allowed = self.slow_readers.lock().ok().and_then(|mut t| t.allow(now));
        if let Some(suppressed) = allowed {
            log::warn!(
                "connection {} does not read ({SEND_QUEUE} frames waiting): dropped{}",
                conn.0,
                stagebox_logging::Throttle::and_more(suppressed)
            );
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.core.lock().ok().and_then(|c| c.poll_timeout())
    }
}
