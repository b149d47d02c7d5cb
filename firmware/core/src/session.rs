//! The station's signaling session: connect, hello, identify or resume, heartbeats, and the
//! reconnect policy. Sans-IO: the plumbing opens and closes connections when told to
//! ([`SessionEvent::Connect`], [`SessionEvent::Close`]), feeds what happens back in through
//! `handle_*`, and sends what [`Session::poll_transmit`] yields.
//!
//! Every connection attempt has its own [`ConnId`]; input about any other connection is
//! ignored, so a late close of an old socket cannot disturb a new session.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use stagebox_proto::close::{AfterClose, CloseCode, after_close};
use stagebox_proto::media::MEDIA_MODE;
use stagebox_proto::signal::{AUDIO_FORMAT_RED, ClientMsg, PROTOCOL_VERSION, ServerMsg};

use crate::backoff::{Backoff, BackoffConfig};
use crate::gateway::host_port;
use crate::media::{MediaOffer, MediaOfferError};

/// Identifies one signaling connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// What the session needs to know about its station and its server.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub station_id: String,
    pub token: String,
    pub stage: String,
    /// Gateway URL, e.g. `wss://127.0.0.1:8443/signal`.
    pub gateway: String,
    pub backoff: BackoffConfig,
    /// Seed of the reconnect jitter (a station derives it from its id and boot entropy).
    pub seed: u64,
    /// Longest wait for the transport, for `hello`, and for `ready`/`resumed`.
    pub step_timeout: Duration,
}

impl SessionConfig {
    pub fn new(station_id: &str, token: &str, stage: &str, gateway: &str) -> SessionConfig {
        SessionConfig {
            station_id: station_id.into(),
            token: token.into(),
            stage: stage.into(),
            gateway: gateway.into(),
            backoff: BackoffConfig::default(),
            seed: 0,
            step_timeout: Duration::from_secs(5),
        }
    }
}

/// What the session tells the plumbing and the rest of the station.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// Open a signaling connection to `url` and report on it with `conn`.
    Connect { conn: ConnId, url: String },
    /// Close connection `conn` with `code` (the session already considers it gone).
    Close { conn: ConnId, code: CloseCode },
    /// A session is up. `media` is `Some` for a new session (new keys and SSRC) and `None`
    /// when an existing one was resumed (media goes on unchanged).
    Established {
        resumed: bool,
        media: Option<MediaOffer>,
    },
    /// The server's media offer cannot be used: the session was refused with the offer's
    /// close code and is sought afresh (identify, through the backoff).
    MediaRefused(MediaOfferError),
    /// A message about the stage, for the stage view.
    Stage(ServerMsg),
    /// The most this station's listeners lose now, percent: for its audio's FEC.
    LossFeedback { loss_percent: u8 },
    /// The connection was lost; the next attempt is at `retry_at`.
    Lost {
        retry_at: Instant,
        after: AfterClose,
        code: Option<u16>,
    },
}

/// Why a signaling connection could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    /// No answer, refused, reset or timed out: the network or the server is down. Retried
    /// with the usual backoff.
    Unreachable,
    /// The server answered but is not the one configured: its certificate matches neither
    /// the pinned fingerprint nor the trusted CA. Waiting will not fix that, a person must
    /// (the station's configuration or the server's certificate): shown as an error and
    /// retried at the slowest backoff, like a refused login.
    ServerNotTrusted,
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting to start the next attempt at `at`.
    Waiting { at: Instant },
    /// Transport being opened.
    Connecting { conn: ConnId, deadline: Instant },
    /// Transport open, waiting for `hello`.
    AwaitHello { conn: ConnId, deadline: Instant },
    /// `identify` or `resume` sent; `interval` is the heartbeat interval from `hello`.
    Authenticating {
        conn: ConnId,
        deadline: Instant,
        resuming: bool,
        interval: Duration,
    },
    /// Session up.
    Established {
        conn: ConnId,
        since: Instant,
        interval: Duration,
        next_heartbeat: Instant,
        unacked: Option<u64>,
    },
}

/// Figures for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub attempts: u64,
    pub established: u64,
    pub resumed: u64,
    pub lost: u64,
}

/// The signaling session state machine.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    phase: Phase,
    backoff: Backoff,
    session_id: Option<String>,
    /// Gateway named by a server-initiated move; used instead of the configured one.
    moved_to: Option<String>,
    /// Attempts at `moved_to` that did not establish a session.
    move_failures: u32,
    /// Code of an `error` op, for when the transport closes without a code.
    last_error: Option<u16>,
    next_conn: u64,
    next_nonce: u64,
    transmits: VecDeque<(ConnId, ClientMsg)>,
    events: VecDeque<SessionEvent>,
    stats: SessionStats,
    /// When the unanswered heartbeat went out.
    heartbeat_sent_at: Option<Instant>,
    /// The last heartbeat's round trip.
    round_trip: Option<Duration>,
}

const MIN_HEARTBEAT: Duration = Duration::from_millis(100);
/// Attempts at a gateway a server moved the station to before it returns to its own.
pub const MAX_MOVE_ATTEMPTS: u32 = 3;
const MAX_HEARTBEAT: Duration = Duration::from_secs(60);

impl Session {
    /// A session that makes its first attempt at `now`.
    pub fn new(now: Instant, cfg: SessionConfig) -> Session {
        let backoff = Backoff::new(cfg.backoff, cfg.seed);
        Session {
            cfg,
            phase: Phase::Waiting { at: now },
            backoff,
            session_id: None,
            moved_to: None,
            move_failures: 0,
            last_error: None,
            next_conn: 1,
            next_nonce: 1,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: SessionStats::default(),
            heartbeat_sent_at: None,
            round_trip: None,
        }
    }

    /// The last heartbeat's round trip (to the server's answer), once one was answered.
    pub fn round_trip(&self) -> Option<Duration> {
        self.round_trip
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Established { .. })
    }

    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// The connection the session currently uses, if any.
    pub fn current_conn(&self) -> Option<ConnId> {
        match self.phase {
            Phase::Waiting { .. } => None,
            Phase::Connecting { conn, .. }
            | Phase::AwaitHello { conn, .. }
            | Phase::Authenticating { conn, .. }
            | Phase::Established { conn, .. } => Some(conn),
        }
    }

    /// Queues a stage message for the server; dropped unless the session is up (stage intents
    /// are re-derived from the snapshot after a reconnect, so nothing stale is replayed).
    pub fn send(&mut self, msg: ClientMsg) -> bool {
        if let Phase::Established { conn, .. } = self.phase {
            self.transmits.push_back((conn, msg));
            true
        } else {
            false
        }
    }

    /// The transport for `conn` is open.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId) {
        if let Phase::Connecting { conn: c, .. } = self.phase
            && c == conn
        {
            self.phase = Phase::AwaitHello {
                conn,
                deadline: now + self.cfg.step_timeout,
            };
        }
    }

    /// A text frame arrived on `conn`. Undecodable frames close the connection with the code
    /// the protocol names, and the session reconnects.
    pub fn handle_text(&mut self, now: Instant, conn: ConnId, text: &str) {
        if self.current_conn() != Some(conn) {
            return;
        }
        match ServerMsg::from_json(text) {
            Ok(msg) => self.handle_message(now, conn, msg),
            Err(e) => self.close_and_retry(now, conn, e.close_code()),
        }
    }

    /// A frame arrived on `conn` that the protocol does not allow at all (binary, or text that
    /// is not UTF-8): answered like any undecodable message.
    pub fn handle_malformed(&mut self, now: Instant, conn: ConnId) {
        if self.current_conn() == Some(conn) {
            self.close_and_retry(now, conn, CloseCode::DecodeError);
        }
    }

    /// A decoded message arrived on `conn`.
    pub fn handle_message(&mut self, now: Instant, conn: ConnId, msg: ServerMsg) {
        if self.current_conn() != Some(conn) {
            return;
        }
        match (self.phase, msg) {
            (
                Phase::AwaitHello { .. },
                ServerMsg::Hello {
                    heartbeat_interval_ms,
                    ..
                },
            ) => {
                let interval = Duration::from_millis(u64::from(heartbeat_interval_ms))
                    .clamp(MIN_HEARTBEAT, MAX_HEARTBEAT);
                self.start_auth(now, conn, interval);
            }
            (
                Phase::Authenticating {
                    resuming: false, ..
                },
                ServerMsg::Ready {
                    session_id, media, ..
                },
            ) => match MediaOffer::check(&media) {
                Ok(offer) => {
                    self.session_id = Some(session_id);
                    self.establish(now, conn, false, Some(offer));
                }
                // A session without usable media is no session: refuse it rather than sit on
                // the stage unheard, and identify afresh (a resume would bring the same offer).
                Err(e) => {
                    self.session_id = None;
                    let code = e.close_code();
                    self.events.push_back(SessionEvent::MediaRefused(e));
                    self.events.push_back(SessionEvent::Close { conn, code });
                    let after = match code.after_close() {
                        AfterClose::Fatal => AfterClose::Fatal,
                        _ => AfterClose::Reidentify,
                    };
                    self.lost(now, Some(code.as_u16()), after);
                }
            },
            (Phase::Authenticating { resuming: true, .. }, ServerMsg::Resumed {}) => {
                self.establish(now, conn, true, None);
            }
            (Phase::Established { unacked, .. }, ServerMsg::HeartbeatAck { nonce }) => {
                if unacked == Some(nonce)
                    && let Phase::Established { unacked, .. } = &mut self.phase
                {
                    *unacked = None;
                    self.round_trip = self
                        .heartbeat_sent_at
                        .take()
                        .map(|t| now.saturating_duration_since(t));
                }
            }
            (_, ServerMsg::Reconnect { gateway, .. }) => {
                // A gateway the station could not dial is ignored: it reconnects where it is.
                if let Some(url) = gateway.filter(|u| host_port(u).is_ok()) {
                    self.moved_to = Some(url);
                    self.move_failures = 0;
                }
                // Asked to move: keep the session to resume it there. The first move after a
                // stable session goes at once; a server that keeps asking meets the backoff.
                self.events.push_back(SessionEvent::Close {
                    conn,
                    code: CloseCode::Normal,
                });
                let code = Some(CloseCode::Reconnect.as_u16());
                self.lost(now, code, after_close(code));
            }
            (_, ServerMsg::Error { code, .. }) => self.last_error = Some(code),
            (
                Phase::Established { .. },
                msg @ (ServerMsg::Stage(_)
                | ServerMsg::MemberUpdate(_)
                | ServerMsg::MemberLeft { .. }
                | ServerMsg::Priority { .. }
                | ServerMsg::Speaking { .. }),
            ) => self.events.push_back(SessionEvent::Stage(msg)),
            (Phase::Established { .. }, ServerMsg::LossFeedback { loss_percent }) => {
                self.events.push_back(SessionEvent::LossFeedback {
                    loss_percent: loss_percent.min(50),
                })
            }
            // Anything else out of order is ignored: the deadlines recover a stuck exchange.
            _ => {}
        }
    }

    /// Connection `conn` closed (`code` from the close frame, `None` if it just dropped).
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId, code: Option<u16>) {
        if self.current_conn() == Some(conn) {
            let code = code.or(self.last_error);
            self.lost(now, code, after_close(code));
        }
    }

    /// Connection `conn` could not be opened at all.
    pub fn handle_connect_failed(&mut self, now: Instant, conn: ConnId, failure: ConnectFailure) {
        if self.current_conn() == Some(conn) {
            let after = match failure {
                ConnectFailure::Unreachable => after_close(None),
                ConnectFailure::ServerNotTrusted => AfterClose::Fatal,
            };
            self.lost(now, None, after);
        }
    }

    /// Drives deadlines: attempts, step timeouts and heartbeats.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Waiting { at } if now >= at => self.connect(now),
            Phase::Connecting { conn, deadline }
            | Phase::AwaitHello { conn, deadline }
            | Phase::Authenticating { conn, deadline, .. }
                if now >= deadline =>
            {
                self.close_and_retry(now, conn, CloseCode::UnknownError);
            }
            Phase::Established {
                conn,
                next_heartbeat,
                unacked,
                interval,
                ..
            } if now >= next_heartbeat => {
                if unacked.is_some() {
                    // The last heartbeat went unanswered for a whole interval: the
                    // connection is a zombie.
                    self.close_and_retry(now, conn, CloseCode::SessionTimeout);
                    return;
                }
                let nonce = self.next_nonce;
                self.next_nonce = self.next_nonce.wrapping_add(1);
                self.transmits
                    .push_back((conn, ClientMsg::Heartbeat { nonce }));
                if let Phase::Established {
                    next_heartbeat,
                    unacked,
                    ..
                } = &mut self.phase
                {
                    *next_heartbeat = now + interval;
                    *unacked = Some(nonce);
                }
                self.heartbeat_sent_at = Some(now);
            }
            _ => {}
        }
    }

    pub fn poll_transmit(&mut self) -> Option<(ConnId, ClientMsg)> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(match self.phase {
            Phase::Waiting { at } => at,
            Phase::Connecting { deadline, .. }
            | Phase::AwaitHello { deadline, .. }
            | Phase::Authenticating { deadline, .. } => deadline,
            Phase::Established { next_heartbeat, .. } => next_heartbeat,
        })
    }

    fn connect(&mut self, now: Instant) {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.last_error = None;
        self.stats.attempts += 1;
        let url = self
            .moved_to
            .clone()
            .unwrap_or_else(|| self.cfg.gateway.clone());
        self.events.push_back(SessionEvent::Connect { conn, url });
        self.phase = Phase::Connecting {
            conn,
            deadline: now + self.cfg.step_timeout,
        };
    }

    fn start_auth(&mut self, now: Instant, conn: ConnId, interval: Duration) {
        let resuming = self.session_id.is_some();
        let msg = match &self.session_id {
            Some(session_id) => ClientMsg::Resume {
                v: PROTOCOL_VERSION,
                station_id: self.cfg.station_id.clone(),
                session_id: session_id.clone(),
                token: self.cfg.token.clone(),
            },
            None => ClientMsg::Identify {
                v: PROTOCOL_VERSION,
                station_id: self.cfg.station_id.clone(),
                token: self.cfg.token.clone(),
                stage: self.cfg.stage.clone(),
                modes: vec![MEDIA_MODE.into()],
                audio_formats: vec![AUDIO_FORMAT_RED.into()],
            },
        };
        self.transmits.push_back((conn, msg));
        self.phase = Phase::Authenticating {
            conn,
            deadline: now + self.cfg.step_timeout,
            resuming,
            interval,
        };
    }

    fn establish(&mut self, now: Instant, conn: ConnId, resumed: bool, media: Option<MediaOffer>) {
        let Phase::Authenticating { interval, .. } = self.phase else {
            return;
        };
        self.phase = Phase::Established {
            conn,
            since: now,
            interval,
            next_heartbeat: now + interval,
            unacked: None,
        };
        self.stats.established += 1;
        self.move_failures = 0;
        if resumed {
            self.stats.resumed += 1;
        }
        self.events
            .push_back(SessionEvent::Established { resumed, media });
    }

    /// Closes `conn` locally and treats it as lost.
    fn close_and_retry(&mut self, now: Instant, conn: ConnId, code: CloseCode) {
        self.events.push_back(SessionEvent::Close { conn, code });
        self.lost(now, Some(code.as_u16()), code.after_close());
    }

    /// The station is shutting down: close the connection as going away (the server keeps
    /// the session for a resume, which is what a restart wants).
    pub fn handle_shutdown(&mut self, now: Instant) {
        if let Some(conn) = self.current_conn() {
            self.events.push_back(SessionEvent::Close {
                conn,
                code: CloseCode::GoingAway,
            });
            self.phase = Phase::Waiting {
                at: now + self.backoff.slowest(),
            };
        }
    }

    /// The current connection is gone: decide how and when to try again.
    fn lost(&mut self, now: Instant, code: Option<u16>, after: AfterClose) {
        let previous = self.phase;
        if self.moved_to.is_some() && !matches!(previous, Phase::Established { .. }) {
            self.move_failures += 1;
            if self.move_failures >= MAX_MOVE_ATTEMPTS {
                // The server sent us somewhere that does not answer: back home.
                self.moved_to = None;
                self.move_failures = 0;
            }
        }
        let was_resuming = matches!(previous, Phase::Authenticating { resuming: true, .. });
        if let Phase::Established { since, .. } = previous
            && now.saturating_duration_since(since) >= self.backoff.config().stable_after
        {
            self.backoff.reset();
        }
        let delay = match after {
            AfterClose::Fatal => {
                self.session_id = None;
                self.moved_to = None;
                self.backoff.slowest()
            }
            AfterClose::Reidentify => {
                self.session_id = None;
                // A refused resume is normal after a long outage: identify at once.
                if was_resuming {
                    Duration::ZERO
                } else {
                    self.backoff.next_delay()
                }
            }
            AfterClose::Resume => self.backoff.next_delay(),
        };
        if matches!(previous, Phase::Established { .. }) {
            self.stats.lost += 1;
        }
        let retry_at = now + delay;
        self.phase = Phase::Waiting { at: retry_at };
        self.events.push_back(SessionEvent::Lost {
            retry_at,
            after,
            code,
        });
    }
}
