//! The server's state: connections, sessions and stages, and the outputs waiting for the
//! plumbing. The behaviour lives in `signal.rs` (ops), `media.rs` (forwarding) and `admin.rs`
//! (moderator actions); this file holds what they share.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use stagebox_proto::media::{KEY_LEN, MediaKey, Opener, Sealer};
use stagebox_proto::signal::{Member, Role, ServerMsg, StageSnapshot};

use crate::browser::BrowserLink;
use crate::config::{Entropy, ServerConfig};

/// Identifies one signaling connection on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// What the plumbing must do on a signaling connection.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerTransmit {
    /// Send a text frame.
    Text { conn: ConnId, msg: ServerMsg },
    /// Close with a code (after sending what is queued before it).
    Close { conn: ConnId, code: u16 },
}

/// Counters for metrics, the admin interface and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServerStats {
    pub connections: u64,
    pub identified: u64,
    pub resumed: u64,
    pub auth_failures: u64,
    pub protocol_errors: u64,
    pub media_received: u64,
    pub media_forwarded: u64,
    pub keepalives: u64,
    pub dropped_malformed: u64,
    pub dropped_unknown_ssrc: u64,
    pub dropped_unauthenticated: u64,
    pub dropped_replayed: u64,
    pub dropped_not_allowed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    AwaitingAuth,
    Authed { session: u64 },
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub state: ConnState,
    pub opened: Instant,
    pub last_seen: Instant,
}

/// The media half of a session.
pub(crate) struct MediaState {
    pub opener: Opener,
    pub sealer: Sealer,
    /// Learned from the first authenticated packet.
    pub addr: Option<SocketAddr>,
    /// Highest counter accepted from the station, for address changes.
    pub highest_counter: Option<u32>,
    /// Next outgoing sequence number per source SSRC forwarded to this receiver.
    pub out_seq: BTreeMap<u32, u16>,
    /// The station negotiated redundant audio: it may send it and is sent it.
    pub red: bool,
}

/// How a session's audio travels: a station's AEAD RTP, or a browser's WebRTC peer (none
/// until its first offer).
pub(crate) enum MediaLink {
    Station(MediaState),
    Browser(Option<Box<BrowserLink>>),
}

pub(crate) struct SessionRec {
    pub id: String,
    /// The station's id, or a browser's participant id.
    pub station_id: String,
    pub stage: String,
    pub ssrc: u32,
    pub conn: Option<ConnId>,
    pub detached_at: Option<Instant>,
    pub media: MediaLink,
    /// The name a person in a browser gave; `None` for a station.
    pub name: Option<String>,
    /// What the member last said of its link and playout (`link_stats`).
    pub link: Option<stagebox_proto::signal::LinkStats>,
}

#[derive(Debug, Clone)]
pub(crate) struct MemberRec {
    pub role: Role,
    /// Set while the hand is up: the order it was raised in, and when (for the moderator's
    /// queue: how long it has waited).
    pub hand_raised: Option<(u64, Instant)>,
    /// What the member last said of its own voice (`speaking`), while it may speak.
    pub speaking: bool,
    pub invited: bool,
    pub server_muted: bool,
    /// Internal key of the member's session.
    pub session: u64,
    /// The loss this member last reported hearing, percent.
    pub reported_loss: u8,
    /// The loss feedback last sent to this member (as a speaker), percent.
    pub loss_feedback: Option<u8>,
}

#[derive(Debug, Default)]
pub(crate) struct StageRec {
    pub members: BTreeMap<String, MemberRec>,
    pub priority: Option<String>,
}

/// The reference stage server, sans-IO.
pub struct StageServer {
    pub(crate) cfg: ServerConfig,
    pub(crate) entropy: Box<dyn Entropy>,
    pub(crate) conns: BTreeMap<ConnId, Conn>,
    /// Internal session key → session.
    pub(crate) sessions: BTreeMap<u64, SessionRec>,
    pub(crate) next_session: u64,
    /// Next hand-raise order number.
    pub(crate) next_hand: u64,
    pub(crate) by_ssrc: BTreeMap<u32, u64>,
    pub(crate) stages: BTreeMap<String, StageRec>,
    pub(crate) transmits: VecDeque<ServerTransmit>,
    pub(crate) outbox: crate::outbox::Outbox,
    pub(crate) stats: ServerStats,
    /// Station id → its latest firmware report (only configured stations log in, so this
    /// holds at most one entry per configured station).
    pub(crate) firmware: BTreeMap<String, stagebox_proto::signal::FirmwareStatus>,
    /// A browser's address (once its ICE check came from it) → its session.
    pub(crate) browser_addrs: BTreeMap<SocketAddr, u64>,
    /// Each stage's soundboard source (once a clip was played there).
    pub(crate) clip_players: BTreeMap<String, crate::soundboard::ClipPlayer>,
}

impl StageServer {
    pub fn new(cfg: ServerConfig, entropy: Box<dyn Entropy>) -> StageServer {
        let stages = cfg
            .stages
            .iter()
            .map(|s| (s.clone(), StageRec::default()))
            .collect();
        StageServer {
            cfg,
            entropy,
            conns: BTreeMap::new(),
            sessions: BTreeMap::new(),
            next_session: 1,
            next_hand: 1,
            by_ssrc: BTreeMap::new(),
            stages,
            transmits: VecDeque::new(),
            outbox: crate::outbox::Outbox::default(),
            stats: ServerStats::default(),
            firmware: BTreeMap::new(),
            browser_addrs: BTreeMap::new(),
            clip_players: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &ServerConfig {
        &self.cfg
    }

    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    pub fn poll_transmit(&mut self) -> Option<ServerTransmit> {
        self.transmits.pop_front()
    }

    /// A sealed datagram to send, and where. Send it before polling again: the buffer is the
    /// core's, reused for the next packet once all are taken (nothing is allocated per
    /// datagram).
    #[must_use]
    pub fn poll_datagram(&mut self) -> Option<(SocketAddr, &[u8])> {
        self.outbox.pop()
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = self.cfg.heartbeat_interval * 2;
        let conn_deadlines = self.conns.values().map(|c| match c.state {
            ConnState::AwaitingAuth => c.opened + self.cfg.auth_timeout,
            ConnState::Authed { .. } => c.last_seen + idle,
        });
        let session_deadlines = self
            .sessions
            .values()
            .filter_map(|s| s.detached_at.map(|t| t + self.cfg.resume_window));
        let browser_deadlines = self.sessions.values().filter_map(|s| match &s.media {
            MediaLink::Browser(Some(link)) => link.poll_timeout(),
            _ => None,
        });
        conn_deadlines
            .chain(session_deadlines)
            .chain(browser_deadlines)
            .chain(self.soundboard_deadline())
            .min()
    }

    /// The stage as members see it.
    pub fn snapshot(&self, stage: &str) -> Option<StageSnapshot> {
        let rec = self.stages.get(stage)?;
        let members = rec
            .members
            .iter()
            .filter_map(|(id, m)| self.member_view(id, m))
            .collect();
        let priority_ssrc = rec.priority.as_ref().and_then(|id| {
            let m = rec.members.get(id)?;
            Some(self.sessions.get(&m.session)?.ssrc)
        });
        Some(StageSnapshot {
            stage: stage.into(),
            members,
            priority_ssrc,
        })
    }

    pub(crate) fn member_view(&self, station_id: &str, m: &MemberRec) -> Option<Member> {
        let s = self.sessions.get(&m.session)?;
        Some(Member {
            station_id: station_id.into(),
            role: m.role,
            hand_raised: m.hand_raised.is_some(),
            hand_order: m.hand_raised.map(|(order, _)| order),
            invited: m.invited,
            server_muted: m.server_muted,
            ssrc: s.ssrc,
            connected: s.conn.is_some(),
            name: s.name.clone(),
        })
    }

    pub(crate) fn send(&mut self, conn: ConnId, msg: ServerMsg) {
        self.transmits.push_back(ServerTransmit::Text { conn, msg });
    }

    /// Sends `msg` to every connected member of `stage` except `except`.
    pub(crate) fn broadcast(&mut self, stage: &str, except: Option<&str>, msg: &ServerMsg) {
        let Some(rec) = self.stages.get(stage) else {
            return;
        };
        let conns: Vec<ConnId> = rec
            .members
            .iter()
            .filter(|(id, _)| Some(id.as_str()) != except)
            .filter_map(|(_, m)| self.sessions.get(&m.session)?.conn)
            .collect();
        for conn in conns {
            self.send(conn, msg.clone());
        }
    }

    /// Tells every member (including itself) how `station_id` now looks.
    pub(crate) fn announce_member(&mut self, stage: &str, station_id: &str) {
        let view = self
            .stages
            .get(stage)
            .and_then(|r| r.members.get(station_id))
            .and_then(|m| self.member_view(station_id, m));
        if let Some(member) = view {
            self.broadcast(stage, None, &ServerMsg::MemberUpdate(member));
        }
    }

    pub(crate) fn random_key(&mut self) -> MediaKey {
        let mut k = [0u8; KEY_LEN];
        self.entropy.fill(&mut k);
        MediaKey(k)
    }

    pub(crate) fn random_hex(&mut self, bytes: usize) -> String {
        let mut b = vec![0u8; bytes];
        self.entropy.fill(&mut b);
        hex::encode(b)
    }

    /// A fresh non-zero SSRC not used by any session.
    pub(crate) fn random_ssrc(&mut self) -> u32 {
        loop {
            let mut b = [0u8; 4];
            self.entropy.fill(&mut b);
            let ssrc = u32::from_be_bytes(b);
            let clip = self.clip_players.values().any(|p| p.ssrc == ssrc);
            if ssrc != 0 && !self.by_ssrc.contains_key(&ssrc) && !clip {
                return ssrc;
            }
        }
    }
}
