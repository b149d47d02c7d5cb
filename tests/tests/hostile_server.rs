//! A station core against a scripted server that sends what it likes, in virtual time:
//! media offers the station cannot use, media hosts that do not resolve or resolve late, and
//! every close code while the station is live. The station must never believe it is on the
//! stage while its media is dead, must never say `live` while nobody can hear it, and must
//! recover by itself as docs/protocol.md says.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stagebox_core::media_route::{ResolveFailure, ResolveRequest};
use stagebox_core::session::Phase;
use stagebox_core::{ButtonId, ConnId, LedState, Station, StationEvent};
use stagebox_proto::close::CloseCode;
use stagebox_proto::media::{MAX_DATAGRAM, MEDIA_MODE};
use stagebox_proto::signal::{ClientMsg, MediaParams, Member, Role, ServerMsg, StageSnapshot};
use stagebox_tests::{ms, origin, station_config};

/// One station and what it did, with the server's part played by the test.
struct Scripted {
    station: Station,
    now: Instant,
    /// The connection the station opened last, once "connected".
    conn: Option<ConnId>,
    sent: Vec<ClientMsg>,
    events: Vec<StationEvent>,
    /// Where keepalives went.
    datagrams: Vec<SocketAddr>,
}

impl Scripted {
    fn new(seed: u64) -> Scripted {
        let now = origin();
        let mut s = Scripted {
            station: Station::new(now, station_config("a-1", seed)),
            now,
            conn: None,
            sent: Vec::new(),
            events: Vec::new(),
            datagrams: Vec::new(),
        };
        s.drain();
        s
    }

    /// Drains the station's outputs the way the plumbing does (poll contract order); every
    /// connection it opens connects at once.
    fn drain(&mut self) {
        loop {
            let mut did = false;
            while let Some((_, msg)) = self.station.poll_transmit() {
                self.sent.push(msg);
                did = true;
            }
            while let Some(ev) = self.station.poll_event() {
                if let StationEvent::Connect { conn, .. } = ev {
                    self.conn = Some(conn);
                    self.station.handle_connected(self.now, conn);
                }
                self.events.push(ev);
                did = true;
            }
            let mut out = [0u8; MAX_DATAGRAM];
            while let Some(d) = self.station.poll_datagram(self.now, 0, &mut out) {
                self.datagrams.push(d.dest);
            }
            if !did {
                break;
            }
        }
    }

    /// Advances virtual time by `d`, waking the station at each of its deadlines.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.station.poll_timeout().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            self.station.handle_timeout(self.now);
            // Heartbeats are answered, like a live server would.
            let before = self.sent.len();
            self.drain();
            let acks: Vec<u64> = self.sent[before..]
                .iter()
                .filter_map(|m| match m {
                    ClientMsg::Heartbeat { nonce } => Some(*nonce),
                    _ => None,
                })
                .collect();
            for nonce in acks {
                self.server(ServerMsg::HeartbeatAck { nonce });
            }
        }
        self.now = end;
        self.station.handle_timeout(end);
        self.drain();
    }

    /// Runs until the station has a new connection waiting for `hello` (at most `max`).
    fn run_until_new_connection(&mut self, max: Duration) {
        let old = self.conn;
        let end = self.now + max;
        while self.now < end {
            let next = self.station.poll_timeout().unwrap_or(end).min(end);
            self.run_for(next.saturating_duration_since(self.now));
            if self.conn != old
                && matches!(self.station.session().phase(), Phase::AwaitHello { .. })
            {
                return;
            }
        }
        panic!("no new connection within {max:?}");
    }

    fn server(&mut self, msg: ServerMsg) {
        let conn = self.conn.expect("a connection");
        self.station.handle_text(self.now, conn, &msg.to_json());
        self.drain();
    }

    /// Hello, then the answer to identify: `ready` with `media`, and a stage in which this
    /// station has `role`.
    fn join(&mut self, media: MediaParams, role: Role) {
        self.server(ServerMsg::Hello {
            v: 1,
            heartbeat_interval_ms: 2000,
        });
        assert!(
            matches!(self.sent.last(), Some(ClientMsg::Identify { .. })),
            "identify expected, sent {:?}",
            self.sent.last()
        );
        self.server(ServerMsg::Ready {
            session_id: "s-1".into(),
            station_id: "a-1".into(),
            media,
            resume_window_ms: 30_000,
        });
        if self.station.session().is_established() {
            self.server(stage_with_me(role));
        }
    }

    fn resolves(&self) -> Vec<ResolveRequest> {
        self.events
            .iter()
            .filter_map(|e| match e {
                StationEvent::Resolve(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    fn closes(&self) -> Vec<CloseCode> {
        self.events
            .iter()
            .filter_map(|e| match e {
                StationEvent::Close { code, .. } => Some(*code),
                _ => None,
            })
            .collect()
    }

    /// Where the last keepalive went.
    fn keepalive_to(&self) -> Option<SocketAddr> {
        self.datagrams.last().copied()
    }
}

/// A stage in which this station (`a-1`) is the only member, with `role`.
fn stage_with_me(role: Role) -> ServerMsg {
    ServerMsg::Stage(StageSnapshot {
        stage: "townhall".into(),
        members: vec![Member {
            station_id: "a-1".into(),
            role,
            hand_raised: false,
            hand_order: None,
            invited: false,
            server_muted: false,
            ssrc: 7,
            connected: true,
            name: None,
        }],
        priority_ssrc: None,
    })
}

fn good_media() -> MediaParams {
    MediaParams {
        host: "127.0.0.1".into(),
        port: 50000,
        mode: MEDIA_MODE.into(),
        ssrc: 7,
        station_key: "11".repeat(32),
        server_key: "22".repeat(32),
        red: true,
    }
}

#[test]
fn an_unusable_media_offer_is_refused_shown_and_the_station_joins_afresh() {
    let cases: Vec<(&str, MediaParams, CloseCode)> = vec![
        (
            "port 0",
            MediaParams {
                port: 0,
                ..good_media()
            },
            CloseCode::DecodeError,
        ),
        (
            "empty host",
            MediaParams {
                host: String::new(),
                ..good_media()
            },
            CloseCode::DecodeError,
        ),
        (
            "garbage host",
            MediaParams {
                host: "no such host".into(),
                ..good_media()
            },
            CloseCode::DecodeError,
        ),
        (
            "short key",
            MediaParams {
                station_key: "11".repeat(16),
                ..good_media()
            },
            CloseCode::DecodeError,
        ),
        (
            "key not hex",
            MediaParams {
                server_key: "zz".repeat(32),
                ..good_media()
            },
            CloseCode::DecodeError,
        ),
        (
            "empty mode",
            MediaParams {
                mode: String::new(),
                ..good_media()
            },
            CloseCode::UnsupportedMode,
        ),
        (
            "unknown mode",
            MediaParams {
                mode: "xsalsa20_poly1305".into(),
                ..good_media()
            },
            CloseCode::UnsupportedMode,
        ),
    ];
    for (seed, (what, media, code)) in cases.into_iter().enumerate() {
        let mut s = Scripted::new(seed as u64);
        s.run_for(ms(10));
        s.join(media, Role::Speaker);
        assert!(
            !s.station.session().is_established(),
            "{what}: no session without media"
        );
        assert!(
            s.events
                .iter()
                .any(|e| matches!(e, StationEvent::MediaRefused(_))),
            "{what}: refused"
        );
        assert!(
            !s.events
                .iter()
                .any(|e| matches!(e, StationEvent::MediaStarted { .. })),
            "{what}"
        );
        assert_eq!(s.closes(), vec![code], "{what}");
        // The LEDs never say the station is on the stage; an unknown mode needs a person.
        let want = if code == CloseCode::UnsupportedMode {
            LedState::Error
        } else {
            LedState::Connecting
        };
        assert_eq!(s.station.led(), want, "{what}");
        // PTT does nothing audible.
        s.station.handle_button(s.now, ButtonId::Ptt, true);
        s.run_for(ms(100));
        assert!(!s.station.is_transmitting(), "{what}");
        s.station.handle_button(s.now, ButtonId::Ptt, false);
        // It tries again through the backoff, identifying afresh (a resume would bring the
        // same offer back), and a good offer then puts it on the stage.
        s.run_until_new_connection(Duration::from_secs(40));
        s.join(good_media(), Role::Speaker);
        assert!(s.station.session().is_established(), "{what}");
        assert_eq!(s.station.led(), LedState::SpeakerIdle, "{what}");
        assert_eq!(
            s.keepalive_to(),
            Some("127.0.0.1:50000".parse().unwrap()),
            "{what}"
        );
    }
}

#[test]
fn a_media_host_that_does_not_resolve_is_asked_again_and_audio_comes_once_it_does() {
    let mut s = Scripted::new(3);
    s.run_for(ms(10));
    s.join(
        MediaParams {
            host: "voice.venue.example".into(),
            ..good_media()
        },
        Role::Speaker,
    );
    assert!(s.station.session().is_established());
    let first = s.resolves();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].host, "voice.venue.example");
    // Until the name resolves the station has nowhere to send: not `live`, no keepalives.
    s.station.handle_button(s.now, ButtonId::Ptt, true);
    s.run_for(ms(100));
    assert!(s.station.is_transmitting(), "the mic stays open");
    assert_eq!(s.station.led(), LedState::Connecting);
    assert_eq!(s.keepalive_to(), None);
    // SERVFAIL, then a resolver that never answers: the session goes on (heartbeats), the
    // name is asked again and again.
    let now = s.now;
    s.station.handle_resolved(
        now,
        first[0].id,
        Err(ResolveFailure::Failed("SERVFAIL".into())),
    );
    let heartbeats_before = s
        .sent
        .iter()
        .filter(|m| matches!(m, ClientMsg::Heartbeat { .. }))
        .count();
    s.run_for(Duration::from_secs(60));
    let heartbeats = s
        .sent
        .iter()
        .filter(|m| matches!(m, ClientMsg::Heartbeat { .. }))
        .count()
        - heartbeats_before;
    assert!(heartbeats >= 29, "{heartbeats} heartbeats in 60 s");
    assert!(s.station.session().is_established());
    let asked = s.resolves();
    assert!(asked.len() >= 4, "asked {} times", asked.len());
    assert_eq!(s.station.led(), LedState::Connecting);
    // The name resolves at last: keepalives go there and the LED says live.
    let at: SocketAddr = "192.0.2.9:50000".parse().unwrap();
    let now = s.now;
    s.station
        .handle_resolved(now, asked.last().unwrap().id, Ok(at));
    s.drain();
    assert_eq!(s.station.led(), LedState::Live);
    assert_eq!(s.keepalive_to(), Some(at));
    // Datagrams from anywhere else are not the media server's.
    let mut junk = [0u8; 64];
    let now = s.now;
    assert!(
        s.station
            .handle_datagram(now, "192.0.2.66:50000".parse().unwrap(), &mut junk)
            .is_none()
    );
    assert_eq!(s.station.media_stats().dropped_foreign, 1);
}

#[test]
fn the_led_leaves_live_after_every_close_code_and_comes_back_by_itself() {
    let codes: Vec<Option<u16>> = [
        None,
        Some(1000),
        Some(1001),
        Some(1006),
        Some(1011),
        Some(3000),
    ]
    .into_iter()
    .chain((4000..=4016).map(Some))
    .chain([Some(4999), Some(65535)])
    .collect();
    for (seed, code) in codes.into_iter().enumerate() {
        let mut s = Scripted::new(100 + seed as u64);
        s.run_for(ms(10));
        s.join(good_media(), Role::Speaker);
        s.station.handle_button(s.now, ButtonId::Ptt, true);
        s.run_for(ms(100));
        assert_eq!(s.station.led(), LedState::Live, "{code:?}");
        let conn = s.conn.unwrap();
        let now = s.now;
        s.station.handle_closed(now, conn, code);
        s.drain();
        assert_ne!(
            s.station.led(),
            LedState::Live,
            "close {code:?}: not live while down"
        );
        assert!(
            matches!(s.station.led(), LedState::Reconnecting | LedState::Error),
            "close {code:?}: {:?}",
            s.station.led()
        );
        // The server comes back; the station resumes or identifies as the code says.
        s.run_until_new_connection(Duration::from_secs(40));
        s.server(ServerMsg::Hello {
            v: 1,
            heartbeat_interval_ms: 2000,
        });
        match s.sent.last() {
            Some(ClientMsg::Resume { .. }) => {
                s.server(ServerMsg::Resumed {});
                s.server(stage_with_me(Role::Speaker));
            }
            Some(ClientMsg::Identify { .. }) => {
                s.server(ServerMsg::Ready {
                    session_id: "s-2".into(),
                    station_id: "a-1".into(),
                    media: good_media(),
                    resume_window_ms: 30_000,
                });
                s.server(stage_with_me(Role::Speaker));
            }
            other => panic!("close {code:?}: sent {other:?}"),
        }
        assert_eq!(
            s.station.led(),
            LedState::Live,
            "close {code:?}: live again by itself"
        );
    }
}
