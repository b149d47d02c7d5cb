//! Browser participants' signaling: `join_web` with a stage's link puts a person on the stage
//! as audience; `web_offer` negotiates their WebRTC media. After a network change the page
//! takes its session back with `resume_web` and restarts ICE with another `web_offer`, on the
//! same peer. From then on a browser is a member like a station: the same stage ops, the same
//! rules, the same forwarding.

use std::time::Instant;

use stagebox_proto::close::CloseCode;
use stagebox_proto::signal::{Role, ServerMsg};

use crate::browser::BrowserLink;
use crate::config::secrets_equal;
use crate::server::{ConnId, MediaLink, SessionRec, StageServer};

/// Who a `resume_web` says it is.
pub(crate) struct WebSession<'a> {
    pub stage: &'a str,
    pub link: &'a str,
    pub participant_id: &'a str,
    pub session_id: &'a str,
}

impl StageServer {
    pub(crate) fn join_web(
        &mut self,
        now: Instant,
        conn: ConnId,
        v: u32,
        stage: &str,
        link: &str,
        name: &str,
    ) {
        if !self.admit_web(now, conn, v, stage, link) {
            return;
        }
        if !self.stages.contains_key(stage) {
            return self.refuse(now, conn, CloseCode::StageNotFound, "no such stage");
        }
        let key = self.next_session;
        self.next_session += 1;
        let ssrc = self.random_ssrc();
        let session_id = self.random_hex(16);
        let participant_id = format!("web-{}", self.random_hex(4));
        self.sessions.insert(
            key,
            SessionRec {
                id: session_id.clone(),
                station_id: participant_id.clone(),
                stage: stage.into(),
                ssrc,
                conn: Some(conn),
                detached_at: None,
                media: MediaLink::Browser(None),
                name: Some(name.into()),
                link: None,
            },
        );
        self.by_ssrc.insert(ssrc, key);
        let resume_window_ms = self.seat(conn, key, stage, &participant_id, Role::Audience);
        self.send(
            conn,
            ServerMsg::WebReady {
                session_id,
                participant_id: participant_id.clone(),
                resume_window_ms,
            },
        );
        if let Some(snapshot) = self.snapshot(stage) {
            self.send(conn, ServerMsg::Stage(snapshot));
        }
        self.announce_member(stage, &participant_id);
    }

    /// A browser takes its session back after its connection dropped (`resume_web`).
    pub(crate) fn resume_web(&mut self, now: Instant, conn: ConnId, v: u32, who: WebSession<'_>) {
        if !self.admit_web(now, conn, v, who.stage, who.link) {
            return;
        }
        let found = self
            .sessions
            .iter()
            .find(|(_, s)| {
                s.station_id == who.participant_id
                    && s.stage == who.stage
                    && matches!(s.media, MediaLink::Browser(_))
                    && secrets_equal(&s.id, who.session_id)
            })
            .map(|(k, s)| (*k, s.conn));
        let Some((key, previous_conn)) = found else {
            return self.refuse(
                now,
                conn,
                CloseCode::SessionInvalid,
                "session no longer valid",
            );
        };
        self.reattach(now, conn, key, previous_conn, who.stage, who.participant_id);
    }

    /// Whether a browser's `join_web` or `resume_web` speaks this protocol version and holds
    /// stage `stage`'s link token; if not, its connection is refused (and a wrong link
    /// counted).
    fn admit_web(&mut self, now: Instant, conn: ConnId, v: u32, stage: &str, link: &str) -> bool {
        if !self.version_accepted(now, conn, v) {
            return false;
        }
        let link_valid = self
            .cfg
            .stage_links
            .get(stage)
            .is_some_and(|l| secrets_equal(l, link));
        if !link_valid {
            self.stats.auth_failures += 1;
            self.refuse(
                now,
                conn,
                CloseCode::AuthenticationFailed,
                "authentication failed",
            );
        }
        link_valid
    }

    pub(crate) fn web_offer(&mut self, now: Instant, conn: ConnId, session: u64, sdp: &str) {
        let is_browser = self
            .sessions
            .get(&session)
            .is_some_and(|s| matches!(s.media, MediaLink::Browser(_)));
        if !is_browser {
            self.stats.protocol_errors += 1;
            return self.refuse(
                now,
                conn,
                CloseCode::DecodeError,
                "web_offer from a station",
            );
        }
        // Again on a peer already made: an ICE restart (a network change) on that peer, which
        // keeps its DTLS keys and lines.
        let restarted = match self.sessions.get_mut(&session).map(|s| &mut s.media) {
            Some(MediaLink::Browser(Some(link))) => Some(link.restart(now, sdp)),
            _ => None,
        };
        let answered = match restarted {
            Some(answer) => answer,
            None => {
                let addresses = self.cfg.browser_addresses.clone();
                BrowserLink::accept(now, sdp, &addresses).map(|(link, answer)| {
                    if let Some(s) = self.sessions.get_mut(&session) {
                        s.media = MediaLink::Browser(Some(Box::new(link)));
                    }
                    answer
                })
            }
        };
        match answered {
            Ok(answer) => {
                self.send(conn, ServerMsg::WebAnswer { sdp: answer });
            }
            Err(e) => {
                self.stats.protocol_errors += 1;
                self.refuse(now, conn, CloseCode::DecodeError, &e.to_string());
            }
        }
    }

    /// Moves every browser's WebRTC peer on to `now` (handshakes, keepalives, reports), and
    /// ends the speaking of those quiet for [`crate::browser::SPEAKING_HANGOVER`].
    pub(crate) fn drive_browsers(&mut self, now: Instant) {
        let StageServer {
            sessions, outbox, ..
        } = self;
        let mut fell_silent = Vec::new();
        for (key, s) in sessions.iter_mut() {
            if let MediaLink::Browser(Some(link)) = &mut s.media {
                link.handle_timeout(now, outbox);
                if link
                    .voice_heard_at
                    .is_some_and(|t| now >= t + crate::browser::SPEAKING_HANGOVER)
                {
                    link.voice_heard_at = None;
                    fell_silent.push(*key);
                }
            }
        }
        for key in fell_silent {
            self.set_speaking(key, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use stagebox_proto::PT_OPUS;
    use stagebox_proto::media::{MediaKey, Opener, Sealer};
    use stagebox_proto::rtp::RtpHeader;
    use stagebox_proto::signal::{ClientMsg, Role, ServerMsg};

    use crate::browser::tests::{FakeBrowser, start};
    use crate::{
        AdminCmd, ConnId, MediaOutcome, SeededEntropy, ServerConfig, ServerTransmit, StageServer,
        StationCredential,
    };

    const MEDIA: &str = "127.0.0.1:50000";

    fn server() -> StageServer {
        let mut cfg = ServerConfig::new("127.0.0.1", 50000);
        cfg.stages.push("s".into());
        cfg.stage_links.insert("s".into(), "link-s".into());
        cfg.stations.insert(
            "st".into(),
            StationCredential {
                token: "t-st".into(),
                role: Role::Moderator,
            },
        );
        StageServer::new(cfg, Box::new(SeededEntropy::new(3)))
    }

    fn messages(s: &mut StageServer, conn: u64) -> Vec<ServerMsg> {
        let mut out = Vec::new();
        while let Some(t) = s.poll_transmit() {
            if let ServerTransmit::Text { conn: c, msg } = t
                && c == ConnId(conn)
            {
                out.push(msg);
            }
        }
        out
    }

    struct Station {
        sealer: Sealer,
        opener: Opener,
        ssrc: u32,
        addr: SocketAddr,
    }

    fn station(s: &mut StageServer, t: Instant) -> Station {
        s.handle_open(t, ConnId(1));
        s.handle_message(
            t,
            ConnId(1),
            ClientMsg::Identify {
                v: 1,
                station_id: "st".into(),
                token: "t-st".into(),
                stage: "s".into(),
                modes: vec!["chacha20_poly1305_rtpsize".into()],
                audio_formats: vec![],
            },
        );
        let media = messages(s, 1)
            .into_iter()
            .find_map(|m| match m {
                ServerMsg::Ready { media, .. } => Some(media),
                _ => None,
            })
            .unwrap();
        Station {
            sealer: Sealer::new(&MediaKey::from_hex(&media.station_key).unwrap()),
            opener: Opener::new(&MediaKey::from_hex(&media.server_key).unwrap()),
            ssrc: media.ssrc,
            addr: "127.0.0.1:4001".parse().unwrap(),
        }
    }

    /// A browser joined with the link and connected: its participant id and session secret.
    fn browser(s: &mut StageServer, t: Instant) -> (FakeBrowser, (String, String), Instant) {
        s.handle_open(t, ConnId(2));
        s.handle_message(
            t,
            ConnId(2),
            ClientMsg::JoinWeb {
                v: 1,
                stage: "s".into(),
                link: "link-s".into(),
                name: "Ana <b>".into(),
            },
        );
        let id = messages(s, 2)
            .into_iter()
            .find_map(|m| match m {
                ServerMsg::WebReady {
                    participant_id,
                    session_id,
                    ..
                } => Some((participant_id, session_id)),
                _ => None,
            })
            .unwrap();
        let (mut b, offer, pending) = FakeBrowser::offer(t, "127.0.0.1:40000".parse().unwrap(), 2);
        s.handle_message(t, ConnId(2), ClientMsg::WebOffer { sdp: offer });
        let answer = messages(s, 2)
            .into_iter()
            .find_map(|m| match m {
                ServerMsg::WebAnswer { sdp } => Some(sdp),
                _ => None,
            })
            .unwrap();
        b.accept(pending, &answer);
        let mut now = t;
        for _ in 0..300 {
            now += Duration::from_millis(10);
            exchange(s, &mut b, now);
            if b.rtc.is_connected() {
                return (b, id, now);
            }
        }
        panic!("the browser never connected");
    }

    /// Moves datagrams both ways once; what was for stations is returned.
    fn exchange(s: &mut StageServer, b: &mut FakeBrowser, now: Instant) -> Vec<Vec<u8>> {
        for mut d in b.poll(now) {
            s.handle_datagram(now, b.addr, &mut d);
        }
        s.handle_timeout(now);
        let media: SocketAddr = MEDIA.parse().unwrap();
        let mut for_stations = Vec::new();
        while let Some((to, d)) = s.poll_datagram() {
            if to == b.addr {
                let d = d.to_vec();
                b.receive(now, media, &d);
            } else {
                for_stations.push(d.to_vec());
            }
        }
        // What the browser answers to that goes out at once (a DTLS flight must not wait).
        for mut d in b.poll(now) {
            s.handle_datagram(now, b.addr, &mut d);
        }
        for_stations
    }

    #[test]
    fn a_browser_hears_a_station_and_speaks_to_it_only_once_invited() {
        let t0 = start();
        let mut s = server();
        let mut st = station(&mut s, t0);
        let (mut b, (id, _), mut now) = browser(&mut s, t0);
        // The station speaks (it is a moderator): the browser hears every frame.
        for i in 0..10u16 {
            now += Duration::from_millis(20);
            let mut pkt = vec![0u8; 200];
            let h = RtpHeader::new(PT_OPUS, i, u32::from(i) * 960, st.ssrc, i == 0);
            let n = st.sealer.seal(&h, &[0xfc, i as u8], &mut pkt).unwrap();
            pkt.truncate(n);
            assert!(matches!(
                s.handle_datagram(now, st.addr, &mut pkt),
                MediaOutcome::Forwarded(1)
            ));
            exchange(&mut s, &mut b, now);
        }
        let heard: Vec<u8> = b.received.iter().map(|r| r.1[1]).collect();
        assert_eq!(heard, (0..10u8).collect::<Vec<_>>());

        // As audience, what the browser sends is dropped at the server and counted.
        let pt = b.rtc.media(b.mic).unwrap().remote_pts()[0];
        // Each packet carries its audio level (RFC 6464) as Chromium's do: loud from 5 on.
        let say = |b: &mut FakeBrowser, s: &mut StageServer, now: Instant, i: u64| {
            let mut api = b.rtc.direct_api();
            let tx = api.stream_tx_by_mid(b.mic, None).unwrap();
            let payload: std::sync::Arc<[u8]> = vec![0x77, i as u8].into();
            let level = str0m::rtp::ExtensionValues {
                audio_level: Some(if i < 5 { -80 } else { -20 }),
                voice_activity: Some(i >= 5),
                ..Default::default()
            };
            tx.write_rtp(
                str0m::rtp::RtpWrite::new(
                    pt,
                    str0m::rtp::SeqNo::from(500 + i),
                    960 * i as u32,
                    now,
                    payload,
                )
                .ext_vals(level),
            );
            exchange(s, b, now)
        };
        let before = s.stats().dropped_not_allowed;
        for i in 0..5 {
            now += Duration::from_millis(20);
            assert!(say(&mut b, &mut s, now, i).is_empty(), "nothing forwarded");
        }
        assert_eq!(s.stats().dropped_not_allowed, before + 5);

        // Invited, and accepted: the station hears the browser.
        s.handle_admin(
            now,
            AdminCmd::Invite {
                stage: "s".into(),
                station: id.clone(),
            },
        )
        .unwrap();
        s.handle_message(now, ConnId(2), ClientMsg::InviteResponse { accept: true });
        let mut heard = Vec::new();
        for i in 5..15 {
            now += Duration::from_millis(20);
            for mut d in say(&mut b, &mut s, now, i) {
                let o = st.opener.open(&mut d).unwrap();
                assert_eq!(o.header.payload_type, PT_OPUS);
                heard.push(d[o.payload][1]);
            }
        }
        assert_eq!(heard, (5..15u8).collect::<Vec<_>>());

        // Its levels said voice: the stage is told it speaks, and told again when it has
        // been quiet for the hangover.
        let speaking = |s: &mut StageServer| {
            messages(s, 1).into_iter().find_map(|m| match m {
                ServerMsg::Speaking {
                    station_id,
                    speaking,
                    ..
                } if station_id == id => Some(speaking),
                _ => None,
            })
        };
        assert_eq!(speaking(&mut s), Some(true));
        now += crate::browser::SPEAKING_HANGOVER / 2;
        s.handle_timeout(now);
        assert_eq!(speaking(&mut s), None, "a pause is not the end");
        assert!(
            s.poll_timeout()
                .is_some_and(|t| t <= now + crate::browser::SPEAKING_HANGOVER)
        );
        now += crate::browser::SPEAKING_HANGOVER;
        s.handle_timeout(now);
        assert_eq!(speaking(&mut s), Some(false));
    }

    /// The station says frame `i` (sealed, from its address); the server's outcome.
    fn station_says(s: &mut StageServer, st: &mut Station, now: Instant, i: u16) -> MediaOutcome {
        let mut pkt = vec![0u8; 200];
        let h = RtpHeader::new(PT_OPUS, i, u32::from(i) * 960, st.ssrc, i == 0);
        let n = st.sealer.seal(&h, &[0xfc, i as u8], &mut pkt).unwrap();
        pkt.truncate(n);
        s.handle_datagram(now, st.addr, &mut pkt)
    }

    #[test]
    fn after_a_network_change_a_browser_takes_its_place_back_and_hears_at_its_new_address() {
        let t0 = start();
        let mut s = server();
        let mut st = station(&mut s, t0);
        let (mut b, (id, secret), mut now) = browser(&mut s, t0);
        s.handle_message(now, ConnId(2), ClientMsg::RaiseHand { raised: true });
        messages(&mut s, 2);
        // The phone leaves the Wi-Fi: its connection drops.
        s.handle_closed(now, ConnId(2));
        let resume = |secret: &str| ClientMsg::ResumeWeb {
            v: 1,
            stage: "s".into(),
            link: "link-s".into(),
            participant_id: id.clone(),
            session_id: secret.into(),
        };
        // Someone with the link but not the secret gets nothing.
        s.handle_open(now, ConnId(3));
        s.handle_message(now, ConnId(3), resume(&"0".repeat(32)));
        assert!(
            messages(&mut s, 3)
                .iter()
                .any(|m| matches!(m, ServerMsg::Error { code: 4006, .. }))
        );
        // The page, from its new network: the same participant, its hand still up.
        s.handle_open(now, ConnId(4));
        s.handle_message(now, ConnId(4), resume(&secret));
        let back = messages(&mut s, 4);
        assert!(back.iter().any(|m| matches!(m, ServerMsg::Resumed {})));
        let me = back
            .iter()
            .find_map(|m| match m {
                ServerMsg::Stage(snapshot) => snapshot
                    .members
                    .iter()
                    .find(|m| m.station_id == id)
                    .cloned(),
                _ => None,
            })
            .expect("the stage names the participant");
        assert!(me.hand_raised && me.connected, "{me:?}");
        // It restarts ICE on its peer, from its new address.
        let (offer, pending) = {
            let mut api = b.rtc.sdp_api();
            api.ice_restart(false);
            api.apply().unwrap()
        };
        s.handle_message(
            now,
            ConnId(4),
            ClientMsg::WebOffer {
                sdp: offer.to_sdp_string(),
            },
        );
        let answer = messages(&mut s, 4)
            .into_iter()
            .find_map(|m| match m {
                ServerMsg::WebAnswer { sdp } => Some(sdp),
                _ => None,
            })
            .expect("an answer to the ICE restart");
        b.accept(pending, &answer);
        let old = b.addr;
        b.addr = "127.0.0.1:40002".parse().unwrap();
        b.rtc
            .add_local_candidate(str0m::Candidate::host(b.addr, "udp").unwrap());
        let heard_before = b.received.len();
        for i in 0..100u16 {
            now += Duration::from_millis(20);
            station_says(&mut s, &mut st, now, 100 + i);
            exchange(&mut s, &mut b, now);
        }
        let heard: Vec<u8> = b.received[heard_before..].iter().map(|r| r.1[1]).collect();
        assert!(
            heard.len() >= 90 && heard.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
            "the station heard again, in order, at the new address: {heard:?}"
        );
        assert!(
            !s.browser_addrs.contains_key(&old),
            "the old address is forgotten"
        );
        assert_eq!(s.stats().resumed, 1);
    }

    #[test]
    fn a_wrong_link_or_a_station_offering_sdp_is_refused() {
        let t = start();
        let mut s = server();
        s.handle_open(t, ConnId(5));
        s.handle_message(
            t,
            ConnId(5),
            ClientMsg::JoinWeb {
                v: 1,
                stage: "s".into(),
                link: "guess".into(),
                name: "x".into(),
            },
        );
        assert!(
            messages(&mut s, 5)
                .iter()
                .any(|m| matches!(m, ServerMsg::Error { code: 4004, .. }))
        );
        let _ = station(&mut s, t);
        s.handle_message(t, ConnId(1), ClientMsg::WebOffer { sdp: "v=0".into() });
        assert!(
            messages(&mut s, 1)
                .iter()
                .any(|m| matches!(m, ServerMsg::Error { code: 4002, .. }))
        );
    }
}
