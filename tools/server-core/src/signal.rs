//! Signaling: connections, identify/resume, heartbeats, stage ops from stations, and the
//! timers that end idle connections and expired sessions.

use std::time::Instant;

use stagebox_proto::close::CloseCode;
use stagebox_proto::media::{MEDIA_MODE, Opener, Sealer};
use stagebox_proto::signal::{
    AUDIO_FORMAT_RED, ClientMsg, MediaParams, PROTOCOL_VERSION, Role, ServerMsg,
};

use crate::config::{StationCredential, secrets_equal};
use crate::server::{
    Conn, ConnId, ConnState, MediaLink, MediaState, MemberRec, SessionRec, StageServer,
};

/// The longest message before identify or resume: what those need (ids, token, stage and
/// modes, each at most `MAX_ID_LEN`), with room to spare. A connection that has not logged in
/// cannot make the server parse more.
pub const MAX_PRE_AUTH_LEN: usize = 4096;

/// What an `identify` asks for.
struct IdentifyRequest<'a> {
    v: u32,
    station_id: &'a str,
    token: &'a str,
    stage: &'a str,
    modes: &'a [String],
    /// The station sends and receives redundant audio.
    red: bool,
}

impl StageServer {
    /// A WebSocket connection was accepted.
    pub fn handle_open(&mut self, now: Instant, conn: ConnId) {
        self.stats.connections += 1;
        self.conns.insert(
            conn,
            Conn {
                state: ConnState::AwaitingAuth,
                opened: now,
                last_seen: now,
            },
        );
        let interval = u32::try_from(self.cfg.heartbeat_interval.as_millis()).unwrap_or(u32::MAX);
        self.send(
            conn,
            ServerMsg::Hello {
                v: PROTOCOL_VERSION,
                heartbeat_interval_ms: interval,
            },
        );
    }

    /// A text frame arrived. Anything undecodable ends the connection with an `error` op and
    /// the matching close code; other connections are not affected.
    pub fn handle_text(&mut self, now: Instant, conn: ConnId, text: &str) {
        if text.len() > MAX_PRE_AUTH_LEN && !self.is_authenticated(conn) {
            self.stats.protocol_errors += 1;
            let why = format!("before login a message is at most {MAX_PRE_AUTH_LEN} bytes");
            self.refuse(now, conn, CloseCode::DecodeError, &why);
            return;
        }
        match ClientMsg::from_json(text) {
            Ok(msg) => self.handle_message(now, conn, msg),
            Err(e) => {
                self.stats.protocol_errors += 1;
                self.refuse(now, conn, e.close_code(), &e.to_string());
            }
        }
    }

    /// Whether `conn` has identified or resumed.
    pub fn is_authenticated(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| matches!(c.state, ConnState::Authed { .. }))
    }

    /// A binary frame or anything else the protocol does not allow.
    pub fn handle_protocol_violation(&mut self, now: Instant, conn: ConnId, what: &str) {
        self.stats.protocol_errors += 1;
        self.refuse(now, conn, CloseCode::DecodeError, what);
    }

    pub fn handle_message(&mut self, now: Instant, conn: ConnId, msg: ClientMsg) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.last_seen = now;
        let state = c.state;
        match (state, msg) {
            (
                ConnState::AwaitingAuth,
                ClientMsg::Identify {
                    v,
                    station_id,
                    token,
                    stage,
                    modes,
                    audio_formats,
                },
            ) => {
                let request = IdentifyRequest {
                    v,
                    station_id: &station_id,
                    token: &token,
                    stage: &stage,
                    modes: &modes,
                    red: audio_formats.iter().any(|f| f == AUDIO_FORMAT_RED),
                };
                self.identify(now, conn, request);
            }
            (
                ConnState::AwaitingAuth,
                ClientMsg::Resume {
                    v,
                    station_id,
                    session_id,
                    token,
                },
            ) => {
                self.resume(now, conn, v, &station_id, &session_id, &token);
            }
            (
                ConnState::AwaitingAuth,
                ClientMsg::JoinWeb {
                    v,
                    stage,
                    link,
                    name,
                },
            ) => self.join_web(now, conn, v, &stage, &link, &name),
            (
                ConnState::AwaitingAuth,
                ClientMsg::ResumeWeb {
                    v,
                    stage,
                    link,
                    participant_id,
                    session_id,
                },
            ) => {
                let who = crate::web::WebSession {
                    stage: &stage,
                    link: &link,
                    participant_id: &participant_id,
                    session_id: &session_id,
                };
                self.resume_web(now, conn, v, who);
            }
            (ConnState::Authed { session }, ClientMsg::WebOffer { sdp }) => {
                self.web_offer(now, conn, session, &sdp);
            }
            (
                ConnState::Authed { .. },
                ClientMsg::Identify { .. }
                | ClientMsg::Resume { .. }
                | ClientMsg::JoinWeb { .. }
                | ClientMsg::ResumeWeb { .. },
            ) => {
                self.refuse(
                    now,
                    conn,
                    CloseCode::AlreadyAuthenticated,
                    "already authenticated",
                );
            }
            (ConnState::AwaitingAuth, _) => {
                self.refuse(now, conn, CloseCode::NotAuthenticated, "identify first");
            }
            (ConnState::Authed { .. }, ClientMsg::Heartbeat { nonce }) => {
                self.send(conn, ServerMsg::HeartbeatAck { nonce });
            }
            (ConnState::Authed { session }, ClientMsg::LinkStats(link)) => {
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.link = Some(link);
                }
            }
            (ConnState::Authed { session }, ClientMsg::Firmware(status)) => {
                if let Some(s) = self.sessions.get(&session) {
                    self.firmware.insert(s.station_id.clone(), status);
                }
            }
            (ConnState::Authed { session }, msg) => self.stage_op(now, session, msg),
        }
    }

    /// The connection closed or dropped. Its session stays resumable for the resume window.
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if let ConnState::Authed { session } = c.state
            && let Some(s) = self.sessions.get_mut(&session)
            && s.conn == Some(conn)
        {
            s.conn = None;
            s.detached_at = Some(now);
            let (stage, station) = (s.stage.clone(), s.station_id.clone());
            self.announce_member(&stage, &station);
        }
    }

    /// Ends idle and unauthenticated connections and sessions past their resume window.
    pub fn handle_timeout(&mut self, now: Instant) {
        let idle = self.cfg.heartbeat_interval * 2;
        let expired: Vec<(ConnId, CloseCode)> = self
            .conns
            .iter()
            .filter_map(|(id, c)| match c.state {
                ConnState::AwaitingAuth if now >= c.opened + self.cfg.auth_timeout => {
                    Some((*id, CloseCode::NotAuthenticated))
                }
                ConnState::Authed { .. } if now >= c.last_seen + idle => {
                    Some((*id, CloseCode::SessionTimeout))
                }
                _ => None,
            })
            .collect();
        for (conn, code) in expired {
            self.refuse(now, conn, code, "timed out");
        }
        let window = self.cfg.resume_window;
        let gone: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.detached_at.is_some_and(|t| now >= t + window))
            .map(|(k, _)| *k)
            .collect();
        for key in gone {
            self.end_session(key);
        }
        self.drive_browsers(now);
        self.drive_soundboard(now);
    }

    /// Sends `error`, closes, and forgets the connection.
    pub(crate) fn refuse(&mut self, now: Instant, conn: ConnId, code: CloseCode, message: &str) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        self.send(
            conn,
            ServerMsg::Error {
                code: code.as_u16(),
                message: message.chars().take(200).collect(),
            },
        );
        self.transmits
            .push_back(crate::server::ServerTransmit::Close {
                conn,
                code: code.as_u16(),
            });
        self.handle_closed(now, conn);
    }

    /// Whether a login speaks this server's protocol version; if not, the connection is
    /// refused.
    pub(crate) fn version_accepted(&mut self, now: Instant, conn: ConnId, v: u32) -> bool {
        if v != PROTOCOL_VERSION {
            self.refuse(
                now,
                conn,
                CloseCode::UnsupportedVersion,
                "unsupported protocol version",
            );
        }
        v == PROTOCOL_VERSION
    }

    /// Checks the protocol version and the station's credentials; refuses the connection
    /// (and counts the failure) when they do not hold.
    fn authenticate(
        &mut self,
        now: Instant,
        conn: ConnId,
        v: u32,
        station_id: &str,
        token: &str,
    ) -> Option<StationCredential> {
        if !self.version_accepted(now, conn, v) {
            return None;
        }
        match self.cfg.stations.get(station_id) {
            Some(cred) if secrets_equal(&cred.token, token) => Some(cred.clone()),
            _ => {
                self.stats.auth_failures += 1;
                self.refuse(
                    now,
                    conn,
                    CloseCode::AuthenticationFailed,
                    "authentication failed",
                );
                None
            }
        }
    }

    fn identify(&mut self, now: Instant, conn: ConnId, req: IdentifyRequest<'_>) {
        let Some(cred) = self.authenticate(now, conn, req.v, req.station_id, req.token) else {
            return;
        };
        if !self.stages.contains_key(req.stage) {
            return self.refuse(now, conn, CloseCode::StageNotFound, "no such stage");
        }
        if !req.modes.iter().any(|m| m == MEDIA_MODE) {
            return self.refuse(
                now,
                conn,
                CloseCode::UnsupportedMode,
                "no supported media mode",
            );
        }
        self.replace_sessions_of(now, req.station_id);
        let (key, session_id, media) = self.open_session(conn, &req);
        let resume_window_ms = self.seat(conn, key, req.stage, req.station_id, cred.role);
        self.send(
            conn,
            ServerMsg::Ready {
                session_id,
                station_id: req.station_id.into(),
                media,
                resume_window_ms,
            },
        );
        self.send_snapshot(conn, req.stage);
        self.announce_member(req.stage, req.station_id);
    }

    /// Puts session `key` (logged in on `conn`) on `stage` as member `id` with `role`; the
    /// resume window to announce, in milliseconds.
    pub(crate) fn seat(
        &mut self,
        conn: ConnId,
        key: u64,
        stage: &str,
        id: &str,
        role: Role,
    ) -> u32 {
        if let Some(rec) = self.stages.get_mut(stage) {
            rec.members.insert(
                id.into(),
                MemberRec {
                    role,
                    hand_raised: None,
                    speaking: false,
                    invited: false,
                    server_muted: false,
                    session: key,
                    reported_loss: 0,
                    loss_feedback: None,
                },
            );
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = ConnState::Authed { session: key };
        }
        self.stats.identified += 1;
        u32::try_from(self.cfg.resume_window.as_millis()).unwrap_or(u32::MAX)
    }

    /// A station identifying afresh (it rebooted) replaces its old sessions.
    fn replace_sessions_of(&mut self, now: Instant, station_id: &str) {
        let old: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.station_id == station_id)
            .map(|(k, _)| *k)
            .collect();
        for key in old {
            if let Some(old_conn) = self.sessions.get(&key).and_then(|s| s.conn) {
                self.refuse(
                    now,
                    old_conn,
                    CloseCode::SessionInvalid,
                    "replaced by a new session",
                );
            }
            self.end_session(key);
        }
    }

    /// A new session on `conn` with fresh keys, SSRC and id: its key, its id, and the media
    /// offer for `ready`.
    fn open_session(
        &mut self,
        conn: ConnId,
        req: &IdentifyRequest<'_>,
    ) -> (u64, String, MediaParams) {
        let key = self.next_session;
        self.next_session += 1;
        let ssrc = self.random_ssrc();
        let station_key = self.random_key();
        let server_key = self.random_key();
        let id = self.random_hex(16);
        let media = MediaParams {
            host: self.cfg.media_host.clone(),
            port: self.cfg.media_port,
            mode: MEDIA_MODE.into(),
            ssrc,
            station_key: station_key.to_hex(),
            server_key: server_key.to_hex(),
            red: req.red,
        };
        self.sessions.insert(
            key,
            SessionRec {
                id: id.clone(),
                station_id: req.station_id.into(),
                stage: req.stage.into(),
                ssrc,
                conn: Some(conn),
                detached_at: None,
                media: MediaLink::Station(MediaState {
                    opener: Opener::new(&station_key),
                    sealer: Sealer::new(&server_key),
                    addr: None,
                    highest_counter: None,
                    out_seq: Default::default(),
                    red: req.red,
                }),
                name: None,
                link: None,
            },
        );
        self.by_ssrc.insert(ssrc, key);
        (key, id, media)
    }

    fn resume(
        &mut self,
        now: Instant,
        conn: ConnId,
        v: u32,
        station_id: &str,
        session_id: &str,
        token: &str,
    ) {
        if self.authenticate(now, conn, v, station_id, token).is_none() {
            return;
        }
        let found = self
            .sessions
            .iter()
            .find(|(_, s)| s.station_id == station_id && secrets_equal(&s.id, session_id))
            .map(|(k, s)| (*k, s.conn, s.stage.clone()));
        let Some((key, previous_conn, stage)) = found else {
            return self.refuse(
                now,
                conn,
                CloseCode::SessionInvalid,
                "session no longer valid",
            );
        };
        self.reattach(now, conn, key, previous_conn, &stage, station_id);
    }

    /// Puts session `key` (found for a `resume`) on connection `conn`: the connection it had
    /// is closed, and the stage hears the member is back.
    pub(crate) fn reattach(
        &mut self,
        now: Instant,
        conn: ConnId,
        key: u64,
        previous_conn: Option<ConnId>,
        stage: &str,
        member_id: &str,
    ) {
        if let Some(old) = previous_conn {
            self.refuse(now, old, CloseCode::SessionInvalid, "resumed elsewhere");
        }
        if let Some(s) = self.sessions.get_mut(&key) {
            s.conn = Some(conn);
            s.detached_at = None;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = ConnState::Authed { session: key };
        }
        self.stats.resumed += 1;
        self.send(conn, ServerMsg::Resumed {});
        self.send_snapshot(conn, stage);
        self.announce_member(stage, member_id);
    }

    fn send_snapshot(&mut self, conn: ConnId, stage: &str) {
        if let Some(snapshot) = self.snapshot(stage) {
            self.send(conn, ServerMsg::Stage(snapshot));
        }
    }

    /// Removes a session and its stage membership, telling the stage.
    pub(crate) fn end_session(&mut self, key: u64) {
        let Some(s) = self.sessions.remove(&key) else {
            return;
        };
        self.by_ssrc.remove(&s.ssrc);
        self.browser_addrs.retain(|_, k| *k != key);
        for other in self.sessions.values_mut() {
            if let MediaLink::Browser(Some(link)) = &mut other.media {
                link.forget_source(s.ssrc);
            }
        }
        let mut priority_cleared = false;
        if let Some(rec) = self.stages.get_mut(&s.stage) {
            if rec
                .members
                .get(&s.station_id)
                .is_some_and(|m| m.session == key)
            {
                rec.members.remove(&s.station_id);
            }
            if rec.priority.as_deref() == Some(s.station_id.as_str()) {
                rec.priority = None;
                priority_cleared = true;
            }
        }
        self.broadcast(
            &s.stage,
            None,
            &ServerMsg::MemberLeft {
                station_id: s.station_id.clone(),
            },
        );
        if priority_cleared {
            self.broadcast(&s.stage, None, &ServerMsg::Priority { ssrc: None });
        }
    }

    /// Whether session `key`'s member is speaking now (a station says so itself; a browser's
    /// audio levels tell): kept for the console and told to the rest of the stage when it
    /// changes. Only a member who may speak, unmuted, is ever speaking.
    pub(crate) fn set_speaking(&mut self, key: u64, speaking: bool) {
        let Some(s) = self.sessions.get(&key) else {
            return;
        };
        let (stage, station, ssrc) = (s.stage.clone(), s.station_id.clone(), s.ssrc);
        let Some(m) = self
            .stages
            .get_mut(&stage)
            .and_then(|r| r.members.get_mut(&station))
            .filter(|m| m.session == key)
        else {
            return;
        };
        let speaking = speaking && m.role.can_speak() && !m.server_muted;
        if m.speaking == speaking {
            return;
        }
        m.speaking = speaking;
        self.broadcast(
            &stage,
            Some(&station),
            &ServerMsg::Speaking {
                station_id: station.clone(),
                ssrc,
                speaking,
            },
        );
    }

    /// Stage ops a station sends about itself.
    /// Tells each member who may speak the most any other member of the stage reports
    /// losing, when that changed: their audio's FEC follows their worst listener.
    fn send_loss_feedback(&mut self, stage: &str) {
        let Some(rec) = self.stages.get_mut(stage) else {
            return;
        };
        let reports: Vec<(String, u8)> = rec
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.reported_loss))
            .collect();
        let mut sends = Vec::new();
        for (id, m) in rec.members.iter_mut() {
            if !m.role.can_speak() {
                continue;
            }
            let worst = reports
                .iter()
                .filter(|(other, _)| other != id)
                .map(|&(_, loss)| loss)
                .max()
                .unwrap_or(0);
            if m.loss_feedback != Some(worst) {
                m.loss_feedback = Some(worst);
                sends.push((m.session, worst));
            }
        }
        for (session, loss_percent) in sends {
            if let Some(conn) = self.sessions.get(&session).and_then(|s| s.conn) {
                self.send(conn, ServerMsg::LossFeedback { loss_percent });
            }
        }
    }

    fn stage_op(&mut self, now: Instant, session: u64, msg: ClientMsg) {
        if let ClientMsg::Speaking { speaking } = msg {
            return self.set_speaking(session, speaking);
        }
        let Some(s) = self.sessions.get(&session) else {
            return;
        };
        let (stage, station) = (s.stage.clone(), s.station_id.clone());
        let Some(m) = self
            .stages
            .get_mut(&stage)
            .and_then(|r| r.members.get_mut(&station))
        else {
            return;
        };
        if let ClientMsg::ReceptionReport { expected, lost } = msg {
            let percent = if expected == 0 {
                0
            } else {
                (u64::from(lost.min(expected)) * 100 / u64::from(expected)).min(50) as u8
            };
            m.reported_loss = percent;
            self.send_loss_feedback(&stage);
            return;
        }
        let changed = match msg {
            ClientMsg::RaiseHand { raised }
                if m.role == Role::Audience && m.hand_raised.is_some() != raised =>
            {
                m.hand_raised = raised.then_some((self.next_hand, now));
                self.next_hand += 1;
                true
            }
            ClientMsg::InviteResponse { accept } if m.invited => {
                m.invited = false;
                if accept {
                    m.role = Role::Speaker;
                    m.hand_raised = None;
                }
                true
            }
            ClientMsg::StepDown {} if m.role == Role::Speaker => {
                m.role = Role::Audience;
                m.speaking = false;
                true
            }
            // Not allowed in the member's current role, or no change: ignored.
            _ => false,
        };
        if changed {
            self.announce_member(&stage, &station);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use stagebox_proto::close::CloseCode;
    use stagebox_proto::signal::{ClientMsg, Role, ServerMsg};

    use crate::{
        ConnId, SeededEntropy, ServerConfig, ServerTransmit, StageServer, StationCredential,
    };

    fn server() -> StageServer {
        let mut cfg = ServerConfig::new("127.0.0.1", 50000);
        cfg.stages.push("hall".into());
        cfg.stations.insert(
            "a".into(),
            StationCredential {
                token: "token-a".into(),
                role: Role::Audience,
            },
        );
        StageServer::new(cfg, Box::new(SeededEntropy::new(1)))
    }

    fn identify(v: u32, token: &str, stage: &str, modes: &[&str]) -> ClientMsg {
        ClientMsg::Identify {
            v,
            station_id: "a".into(),
            token: token.into(),
            stage: stage.into(),
            modes: modes.iter().map(|m| m.to_string()).collect(),
            audio_formats: vec![],
        }
    }

    /// The error code and close code a connection got, if it was refused.
    fn refusal(s: &mut StageServer, conn: u64) -> Option<(u16, u16)> {
        let mut error = None;
        let mut close = None;
        while let Some(t) = s.poll_transmit() {
            match t {
                ServerTransmit::Text {
                    conn: c,
                    msg: ServerMsg::Error { code, .. },
                } if c == ConnId(conn) => error = Some(code),
                ServerTransmit::Close { conn: c, code } if c == ConnId(conn) => close = Some(code),
                _ => {}
            }
        }
        error.zip(close)
    }

    #[allow(clippy::disallowed_methods)]
    fn now() -> Instant {
        Instant::now()
    }

    #[test]
    fn refusals_carry_the_documented_codes() {
        let mode = "chacha20_poly1305_rtpsize";
        let cases = [
            (
                identify(2, "token-a", "hall", &[mode]),
                CloseCode::UnsupportedVersion,
            ),
            (
                identify(1, "token-a", "hall", &["xsalsa20"]),
                CloseCode::UnsupportedMode,
            ),
            (
                identify(1, "wrong", "hall", &[mode]),
                CloseCode::AuthenticationFailed,
            ),
            (
                identify(1, "token-a", "nowhere", &[mode]),
                CloseCode::StageNotFound,
            ),
            (
                ClientMsg::Resume {
                    v: 1,
                    station_id: "a".into(),
                    session_id: "gone".into(),
                    token: "token-a".into(),
                },
                CloseCode::SessionInvalid,
            ),
            (
                ClientMsg::Heartbeat { nonce: 1 },
                CloseCode::NotAuthenticated,
            ),
        ];
        let mut s = server();
        for (i, (msg, code)) in cases.into_iter().enumerate() {
            let conn = i as u64 + 1;
            s.handle_open(now(), ConnId(conn));
            s.handle_message(now(), ConnId(conn), msg);
            let c = code.as_u16();
            assert_eq!(refusal(&mut s, conn), Some((c, c)), "case {i}");
        }
        // Identifying twice on one connection.
        s.handle_open(now(), ConnId(99));
        s.handle_message(now(), ConnId(99), identify(1, "token-a", "hall", &[mode]));
        assert_eq!(refusal(&mut s, 99), None);
        s.handle_message(now(), ConnId(99), identify(1, "token-a", "hall", &[mode]));
        let c = CloseCode::AlreadyAuthenticated.as_u16();
        assert_eq!(refusal(&mut s, 99), Some((c, c)));
        assert_eq!(s.stats().auth_failures, 1);
    }

    #[test]
    fn the_admin_view_shows_each_stations_firmware_as_last_reported() {
        use crate::admin::{AdminCmd, AdminReply};
        use stagebox_proto::signal::FirmwareStatus;
        let mut s = server();
        let t = now();
        let stations = |s: &mut StageServer| match s.handle_admin(t, AdminCmd::Stations) {
            Ok(AdminReply::Stations { stations }) => stations,
            other => panic!("{other:?}"),
        };
        let view = stations(&mut s);
        assert_eq!(view.len(), 1);
        assert!(!view[0].connected && view[0].firmware.is_none());
        // Before login a report is refused like any other op.
        let status = FirmwareStatus {
            running: "1.2.0".into(),
            update: "downloading".into(),
            target: Some("1.3.0".into()),
            percent: Some(40),
            last_problem: None,
            clock_unsynchronized: true,
        };
        s.handle_open(t, ConnId(1));
        s.handle_message(t, ConnId(1), ClientMsg::Firmware(status.clone()));
        assert!(refusal(&mut s, 1).is_some());
        assert!(stations(&mut s)[0].firmware.is_none());
        s.handle_open(t, ConnId(2));
        let mode = "chacha20_poly1305_rtpsize";
        s.handle_message(t, ConnId(2), identify(1, "token-a", "hall", &[mode]));
        s.handle_message(t, ConnId(2), ClientMsg::Firmware(status.clone()));
        let view = stations(&mut s);
        assert!(view[0].connected);
        assert_eq!(view[0].stage.as_deref(), Some("hall"));
        assert_eq!(view[0].firmware.as_ref(), Some(&status));
        // After the connection drops, the last report is still shown.
        s.handle_closed(t, ConnId(2));
        let view = stations(&mut s);
        assert!(!view[0].connected);
        assert_eq!(view[0].firmware.as_ref(), Some(&status));
    }
}
