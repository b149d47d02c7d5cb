//! A virtual-time network between station cores and a server core.
//!
//! Signaling frames travel as JSON text with a seeded latency (and optional jitter); links can
//! be black-holed (frames vanish, nothing closes, as when a cable is pulled or a NAT forgets
//! us) and the server can be killed and restarted (its sessions are lost, as with a real
//! process). [`Net::run_until`] always jumps to the earliest deadline of any peer or packet,
//! so hours of reconnect storms run in milliseconds and every run with a seed is the same.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::{Duration, Instant};

use stagebox_core::{ConnId, ConnectFailure, LedState, Station, StationConfig, StationEvent};
use stagebox_server_core::{
    ConnId as ServerConnId, SeededEntropy, ServerConfig, ServerTransmit, StageServer,
};

/// Index of a station in the net.
pub type StationIdx = usize;

#[derive(Debug, Clone)]
enum Delivery {
    /// The server accepted a connection.
    Opened {
        station: StationIdx,
        conn: ConnId,
    },
    /// The connection attempt failed: nobody listening, or a server the station does not
    /// trust.
    Failed {
        station: StationIdx,
        conn: ConnId,
        failure: ConnectFailure,
    },
    ToServer {
        server_conn: ServerConnId,
        text: String,
    },
    /// A UDP datagram from a station reaches the server.
    DatagramToServer {
        station: StationIdx,
        bytes: Vec<u8>,
    },
    /// A UDP datagram from the server reaches a station.
    DatagramToStation {
        station: StationIdx,
        bytes: Vec<u8>,
    },
    ToStation {
        station: StationIdx,
        conn: ConnId,
        text: String,
    },
    ServerSeesClose {
        server_conn: ServerConnId,
    },
    StationSeesClose {
        station: StationIdx,
        conn: ConnId,
        code: Option<u16>,
    },
}

#[derive(Debug, Clone, Copy)]
struct Link {
    station: StationIdx,
    conn: ConnId,
    server_conn: ServerConnId,
    blackholed: bool,
    /// Server generation the link belongs to; links die with their server.
    generation: u64,
}

/// Everything a station did that a test may want to look at.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub at: Instant,
    pub event: StationEvent,
}

pub struct SimStation {
    pub core: Station,
    pub observed: Vec<Observed>,
    /// Datagrams the server sent to this station that survived the link.
    pub inbox: Vec<Vec<u8>>,
}

pub struct Net {
    pub now: Instant,
    pub start: Instant,
    server_cfg: ServerConfig,
    server: Option<StageServer>,
    generation: u64,
    seed: u64,
    pub stations: Vec<SimStation>,
    links: Vec<Link>,
    next_server_conn: u64,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    deliveries: BTreeMap<u64, Delivery>,
    next_delivery: u64,
    rng: fastrand::Rng,
    pub latency: Duration,
    pub jitter: Duration,
    /// Probability that a UDP datagram is lost, each way (signaling rides TCP: never lost).
    pub datagram_loss: f64,
    pub datagrams_lost: u64,
    /// The gateway's address answers with a certificate the stations do not trust (a
    /// re-keyed server, a captive portal, an attacker): every new connection fails its TLS
    /// check.
    pub impostor: bool,
    /// Gateway URLs nobody answers at (a server may move stations to one).
    pub dead_gateways: Vec<String>,
}

impl Net {
    pub fn new(start: Instant, server_cfg: ServerConfig, seed: u64) -> Net {
        let server = StageServer::new(server_cfg.clone(), Box::new(SeededEntropy::new(seed)));
        Net {
            now: start,
            start,
            server_cfg,
            server: Some(server),
            generation: 1,
            seed,
            stations: Vec::new(),
            links: Vec::new(),
            next_server_conn: 1,
            queue: BinaryHeap::new(),
            deliveries: BTreeMap::new(),
            next_delivery: 0,
            rng: fastrand::Rng::with_seed(seed ^ 0x5eed),
            latency: Duration::from_millis(5),
            jitter: Duration::ZERO,
            datagram_loss: 0.0,
            datagrams_lost: 0,
            impostor: false,
            dead_gateways: Vec::new(),
        }
    }

    pub fn add_station(&mut self, cfg: StationConfig) -> StationIdx {
        let core = Station::new(self.now, cfg);
        self.stations.push(SimStation {
            core,
            observed: Vec::new(),
            inbox: Vec::new(),
        });
        let idx = self.stations.len() - 1;
        self.pump_station(idx);
        idx
    }

    pub fn server(&mut self) -> Option<&mut StageServer> {
        self.server.as_mut()
    }

    /// Kills the server process: every connection drops, all its state is gone.
    pub fn kill_server(&mut self) {
        self.server = None;
        let links: Vec<Link> = self.links.drain(..).collect();
        for l in links {
            self.schedule(Delivery::StationSeesClose {
                station: l.station,
                conn: l.conn,
                code: None,
            });
        }
    }

    /// Starts a fresh server process with the same configuration.
    pub fn start_server(&mut self) {
        self.generation += 1;
        self.seed = self.seed.wrapping_add(1);
        self.server = Some(StageServer::new(
            self.server_cfg.clone(),
            Box::new(SeededEntropy::new(self.seed)),
        ));
    }

    /// Makes a station's current link drop every frame from now on, without closing.
    pub fn blackhole(&mut self, station: StationIdx) {
        for l in self.links.iter_mut().filter(|l| l.station == station) {
            l.blackholed = true;
        }
    }

    /// Every LED state station `i` has shown, in order.
    pub fn leds(&self, i: StationIdx) -> Vec<LedState> {
        self.stations[i]
            .observed
            .iter()
            .filter_map(|o| match o.event {
                StationEvent::Led(l) => Some(l),
                _ => None,
            })
            .collect()
    }

    /// The UDP address station `i` sends from.
    pub fn station_addr(i: StationIdx) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], 40_000 + i as u16))
    }

    /// Sends a datagram from a station to the server, through the lossy link.
    pub fn send_datagram(&mut self, station: StationIdx, bytes: Vec<u8>) {
        if self.lose() {
            return;
        }
        self.schedule(Delivery::DatagramToServer { station, bytes });
    }

    fn lose(&mut self) -> bool {
        let lost = self.datagram_loss > 0.0 && self.rng.f64() < self.datagram_loss;
        if lost {
            self.datagrams_lost += 1;
        }
        lost
    }

    /// Runs an admin command on the server and pumps its effects.
    pub fn admin(
        &mut self,
        cmd: stagebox_server_core::AdminCmd,
    ) -> Result<stagebox_server_core::AdminReply, stagebox_server_core::AdminError> {
        let now = self.now;
        let server = self
            .server
            .as_mut()
            .ok_or(stagebox_server_core::AdminError::NotAllowed(
                "server is down",
            ))?;
        let r = server.handle_admin(now, cmd);
        self.pump_server();
        r
    }

    /// A raw level change on a station's button, now.
    pub fn button(&mut self, station: StationIdx, button: stagebox_core::ButtonId, pressed: bool) {
        let now = self.now;
        self.stations[station]
            .core
            .handle_button(now, button, pressed);
        self.pump_station(station);
    }

    /// Presses and releases a button cleanly (past the debounce), advancing time.
    pub fn click(&mut self, station: StationIdx, button: stagebox_core::ButtonId) {
        self.button(station, button, true);
        self.run_for(Duration::from_millis(100));
        self.button(station, button, false);
        self.run_for(Duration::from_millis(100));
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Processes every deadline and delivery up to `until`, in time order.
    pub fn run_until(&mut self, until: Instant) {
        // What a test handed a core directly goes out now, as the daemon's plumbing sends
        // after every input.
        for idx in 0..self.stations.len() {
            self.pump_station(idx);
        }
        loop {
            let next_delivery = self.queue.peek().map(|Reverse((t, _))| *t);
            let next_station = self
                .stations
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.core.poll_timeout().map(|t| (t, i)))
                .min();
            let next_server = self.server.as_ref().and_then(|s| s.poll_timeout());
            let candidates = [next_delivery, next_station.map(|(t, _)| t), next_server];
            let Some(next) = candidates.into_iter().flatten().min() else {
                break;
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            let now = self.now;
            if next_delivery == Some(next) {
                if let Some(Reverse((_, id))) = self.queue.pop()
                    && let Some(d) = self.deliveries.remove(&id)
                {
                    self.deliver(d);
                }
            } else if let Some((t, i)) = next_station
                && t == next
            {
                self.stations[i].core.handle_timeout(now);
                self.pump_station(i);
            } else if let Some(server) = self.server.as_mut() {
                server.handle_timeout(now);
                self.pump_server();
            }
        }
        self.now = self.now.max(until);
    }

    fn schedule(&mut self, d: Delivery) {
        let jitter_us = u64::try_from(self.jitter.as_micros()).unwrap_or(0);
        let extra = Duration::from_micros(if jitter_us > 0 {
            self.rng.u64(0..jitter_us)
        } else {
            0
        });
        let at = self.now + self.latency + extra;
        let id = self.next_delivery;
        self.next_delivery += 1;
        self.deliveries.insert(id, d);
        self.queue.push(Reverse((at, id)));
    }

    fn link_by_station(&self, station: StationIdx, conn: ConnId) -> Option<Link> {
        self.links
            .iter()
            .copied()
            .find(|l| l.station == station && l.conn == conn && l.generation == self.generation)
    }

    fn link_by_server(&self, server_conn: ServerConnId) -> Option<Link> {
        self.links
            .iter()
            .copied()
            .find(|l| l.server_conn == server_conn && l.generation == self.generation)
    }

    fn deliver(&mut self, d: Delivery) {
        let now = self.now;
        match d {
            Delivery::Opened { station, conn } => {
                let Some(server) = self.server.as_mut() else {
                    self.schedule(Delivery::StationSeesClose {
                        station,
                        conn,
                        code: None,
                    });
                    return;
                };
                let server_conn = ServerConnId(self.next_server_conn);
                self.next_server_conn += 1;
                self.links.push(Link {
                    station,
                    conn,
                    server_conn,
                    blackholed: false,
                    generation: self.generation,
                });
                server.handle_open(now, server_conn);
                self.stations[station].core.handle_connected(now, conn);
                self.pump_station(station);
                self.pump_server();
            }
            Delivery::Failed {
                station,
                conn,
                failure,
            } => {
                self.stations[station]
                    .core
                    .handle_connect_failed(now, conn, failure);
                self.pump_station(station);
            }
            Delivery::ToServer { server_conn, text } => {
                if self
                    .link_by_server(server_conn)
                    .is_some_and(|l| !l.blackholed)
                    && let Some(server) = self.server.as_mut()
                {
                    server.handle_text(now, server_conn, &text);
                    self.pump_server();
                }
            }
            Delivery::ToStation {
                station,
                conn,
                text,
            } => {
                self.stations[station].core.handle_text(now, conn, &text);
                self.pump_station(station);
            }
            Delivery::ServerSeesClose { server_conn } => {
                if let Some(server) = self.server.as_mut() {
                    server.handle_closed(now, server_conn);
                    self.pump_server();
                }
            }
            Delivery::StationSeesClose {
                station,
                conn,
                code,
            } => {
                self.stations[station].core.handle_closed(now, conn, code);
                self.pump_station(station);
            }
            Delivery::DatagramToServer { station, mut bytes } => {
                if let Some(server) = self.server.as_mut() {
                    server.handle_datagram(now, Net::station_addr(station), &mut bytes);
                    self.pump_server();
                }
            }
            Delivery::DatagramToStation { station, bytes } => {
                self.stations[station].inbox.push(bytes)
            }
        }
    }

    fn pump_station(&mut self, idx: StationIdx) {
        let now = self.now;
        while let Some((conn, msg)) = self.stations[idx].core.poll_transmit() {
            if let Some(l) = self.link_by_station(idx, conn)
                && !l.blackholed
            {
                self.schedule(Delivery::ToServer {
                    server_conn: l.server_conn,
                    text: msg.to_json(),
                });
            }
        }
        while let Some(ev) = self.stations[idx].core.poll_event() {
            match &ev {
                StationEvent::Connect { conn, url } => {
                    let failure = if self.server.is_none() || self.dead_gateways.contains(url) {
                        Some(ConnectFailure::Unreachable)
                    } else if self.impostor {
                        Some(ConnectFailure::ServerNotTrusted)
                    } else {
                        None
                    };
                    let (station, conn) = (idx, *conn);
                    let d = match failure {
                        None => Delivery::Opened { station, conn },
                        Some(failure) => Delivery::Failed {
                            station,
                            conn,
                            failure,
                        },
                    };
                    self.schedule(d);
                }
                StationEvent::Close { conn, .. } => {
                    if let Some(l) = self.link_by_station(idx, *conn) {
                        self.links
                            .retain(|x| !(x.station == idx && x.conn == *conn));
                        if !l.blackholed {
                            self.schedule(Delivery::ServerSeesClose {
                                server_conn: l.server_conn,
                            });
                        }
                    }
                }
                _ => {}
            }
            self.stations[idx]
                .observed
                .push(Observed { at: now, event: ev });
        }
        // Keepalives, through the lossy link; the RTP clock runs at 48 kHz from the start.
        let rtp_clock = u32::try_from(
            now.saturating_duration_since(self.start).as_micros() * 48 / 1000 % (1 << 32),
        )
        .unwrap_or(0);
        let mut sealed = [0u8; stagebox_proto::media::MAX_DATAGRAM];
        while let Some(d) = self.stations[idx]
            .core
            .poll_datagram(now, rtp_clock, &mut sealed)
        {
            let bytes = sealed.get(..d.len).unwrap_or(&[]).to_vec();
            self.send_datagram(idx, bytes);
        }
    }

    fn pump_server(&mut self) {
        let Some(server) = self.server.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        while let Some(t) = server.poll_transmit() {
            out.push(t);
        }
        let mut datagrams = Vec::new();
        while let Some((addr, bytes)) = server.poll_datagram() {
            datagrams.push((addr, bytes.to_vec()));
        }
        for (addr, bytes) in datagrams {
            let station = (addr.port() as usize).checked_sub(40_000);
            if let Some(station) = station.filter(|s| *s < self.stations.len())
                && !self.lose()
            {
                self.schedule(Delivery::DatagramToStation { station, bytes });
            }
        }
        for t in out {
            match t {
                ServerTransmit::Text { conn, msg } => {
                    if let Some(l) = self.link_by_server(conn)
                        && !l.blackholed
                    {
                        self.schedule(Delivery::ToStation {
                            station: l.station,
                            conn: l.conn,
                            text: msg.to_json(),
                        });
                    }
                }
                ServerTransmit::Close { conn, code } => {
                    if let Some(l) = self.link_by_server(conn) {
                        self.links.retain(|x| x.server_conn != conn);
                        if !l.blackholed {
                            self.schedule(Delivery::StationSeesClose {
                                station: l.station,
                                conn: l.conn,
                                code: Some(code),
                            });
                        }
                    }
                }
            }
        }
    }
}
