//! The one place the server core lives: every input goes through [`Hub::with_core`], which
//! then carries out what the core asks — frames to connections, datagrams to stations.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use stagebox_server_core::{ConnId, ServerTransmit, StageServer};

/// What a connection task sends to its peer.
#[derive(Debug)]
pub enum Out {
    Text(String),
    Close(u16),
}

pub struct Hub {
    core: Mutex<StageServer>,
    conns: Mutex<HashMap<ConnId, async_channel::Sender<Out>>>,
    udp: std::net::UdpSocket,
}

impl Hub {
    pub fn new(core: StageServer, udp: std::net::UdpSocket) -> Hub {
        Hub {
            core: Mutex::new(core),
            conns: Mutex::new(HashMap::new()),
            udp,
        }
    }

    pub fn register(&self, conn: ConnId, tx: async_channel::Sender<Out>) {
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
        let (result, transmits, datagrams) = {
            let Ok(mut core) = self.core.lock() else {
                // A poisoned lock means a panic elsewhere; the process is going down.
                std::process::abort();
            };
            let r = f(&mut core, now);
            let mut t = Vec::new();
            while let Some(x) = core.poll_transmit() {
                t.push(x);
            }
            let mut d: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
            while let Some(x) = core.poll_datagram() {
                d.push(x);
            }
            (r, t, d)
        };
        for (addr, bytes) in datagrams {
            // Non-blocking: a full socket buffer drops the packet, as the network would.
            if let Err(e) = self.udp.send_to(&bytes, addr) {
                log::debug!("UDP send to {addr}: {e}");
            }
        }
        if let Ok(conns) = self.conns.lock() {
            for t in transmits {
                match t {
                    ServerTransmit::Text { conn, msg } => {
                        if let Some(tx) = conns.get(&conn) {
                            let _ = tx.try_send(Out::Text(msg.to_json()));
                        }
                    }
                    ServerTransmit::Close { conn, code } => {
                        if let Some(tx) = conns.get(&conn) {
                            let _ = tx.try_send(Out::Close(code));
                        }
                    }
                }
            }
        }
        result
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.core.lock().ok().and_then(|c| c.poll_timeout())
    }
}
