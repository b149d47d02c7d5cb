//! Station core ↔ server core over the virtual network: sessions, heartbeats, resume,
//! re-identify, moves and reconnect storms, all in virtual time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use stagebox_core::session::Phase;
use stagebox_core::{LedState, StationEvent};
use stagebox_proto::close::CloseCode;
use stagebox_server_core::AdminCmd;
use stagebox_tests::netsim::{Net, StationIdx};
use stagebox_tests::{ms, origin, server_config, station_config};

fn connects(net: &Net, i: StationIdx) -> Vec<(Instant, String)> {
    net.stations[i]
        .observed
        .iter()
        .filter_map(|o| match &o.event {
            StationEvent::Connect { url, .. } => Some((o.at, url.clone())),
            _ => None,
        })
        .collect()
}

/// Runs until the station has lost its session (if it has one) and has one again.
fn established_at(net: &mut Net, i: StationIdx, limit: Duration) -> Option<Instant> {
    let end = net.now + limit;
    while net.now < end && net.stations[i].core.session().is_established() {
        net.run_for(ms(1));
    }
    while net.now < end {
        if net.stations[i].core.session().is_established() {
            return Some(net.now);
        }
        net.run_for(ms(1));
    }
    None
}

#[test]
fn joins_and_keeps_the_session_with_heartbeats() {
    let mut net = Net::new(origin(), server_config(), 1);
    let a = net.add_station(station_config("a-1", 11));
    net.run_for(ms(500));
    let core = &net.stations[a].core;
    assert!(core.session().is_established());
    assert_eq!(core.led(), LedState::Audience);
    assert_eq!(net.leds(a), vec![LedState::Connecting, LedState::Audience]);
    let medias = net.stations[a]
        .observed
        .iter()
        .filter(|o| matches!(o.event, StationEvent::MediaStarted { .. }));
    assert_eq!(medias.count(), 1);

    net.run_for(Duration::from_secs(600));
    let stats = net.stations[a].core.stats();
    assert_eq!((stats.attempts, stats.established, stats.lost), (1, 1, 0));
    // A heartbeat's round trip: the link's latency there and back.
    let round_trip = net.stations[a].core.session().round_trip();
    assert_eq!(round_trip, Some(net.latency * 2));
    let server = net.server().unwrap().stats();
    assert_eq!(server.identified, 1);
    assert_eq!(server.protocol_errors, 0);
}

#[test]
fn heartbeat_loss_is_detected_and_the_session_resumed() {
    let mut net = Net::new(origin(), server_config(), 2);
    let a = net.add_station(station_config("a-1", 12));
    net.run_for(Duration::from_secs(10));
    let session_id = net.stations[a]
        .core
        .session()
        .session_id()
        .unwrap()
        .to_string();

    net.blackhole(a);
    let cut = net.now;
    net.run_for(ms(100));
    assert!(
        net.stations[a].core.session().is_established(),
        "not detected instantly"
    );
    // Detection within two heartbeat intervals (2 s each), then an immediate resume.
    let back = established_at(&mut net, a, Duration::from_secs(10)).expect("resumed");
    assert!(
        back - cut <= Duration::from_secs(4) + ms(100),
        "took {:?}",
        back - cut
    );
    let core = &net.stations[a].core;
    assert_eq!(core.stats().resumed, 1);
    assert_eq!(core.session().session_id(), Some(session_id.as_str()));
    assert!(net.leds(a).contains(&LedState::Reconnecting));
    assert_eq!(net.stations[a].core.led(), LedState::Audience);
    // The session was not replaced: the server resumed it.
    assert_eq!(net.server().unwrap().stats().identified, 1);
    assert_eq!(net.server().unwrap().stats().resumed, 1);
}

#[test]
fn resume_refused_after_server_restart_reidentifies() {
    let mut net = Net::new(origin(), server_config(), 3);
    let a = net.add_station(station_config("a-1", 13));
    net.run_for(Duration::from_secs(10));
    let old = net.stations[a]
        .core
        .session()
        .session_id()
        .unwrap()
        .to_string();

    net.kill_server();
    net.start_server();
    let t = net.now;
    let back = established_at(&mut net, a, Duration::from_secs(10)).expect("re-identified");
    // Session up 10 s = stable: first retry is immediate; the refused resume re-identifies
    // at once. Only link latency remains.
    assert!(back - t < ms(100), "took {:?}", back - t);
    let core = &net.stations[a].core;
    assert_ne!(core.session().session_id(), Some(old.as_str()));
    assert_eq!(core.stats().resumed, 0);
    assert_eq!(core.stats().established, 2);
    let medias = net.stations[a]
        .observed
        .iter()
        .filter(|o| matches!(o.event, StationEvent::MediaStarted { .. }))
        .count();
    assert_eq!(medias, 2, "a new session brings new media keys");
}

#[test]
fn server_initiated_reconnect_moves_and_resumes() {
    let mut net = Net::new(origin(), server_config(), 4);
    let a = net.add_station(station_config("a-1", 14));
    net.run_for(Duration::from_secs(1));
    net.admin(AdminCmd::Reconnect {
        station: "a-1".into(),
        gateway: Some("wss://127.0.0.2:8443/signal".into()),
    })
    .unwrap();
    net.run_for(ms(200));
    let urls: Vec<String> = connects(&net, a).into_iter().map(|(_, u)| u).collect();
    assert_eq!(
        urls,
        vec!["wss://127.0.0.1:8443/signal", "wss://127.0.0.2:8443/signal"]
    );
    let core = &net.stations[a].core;
    assert!(core.session().is_established());
    assert_eq!(core.stats().resumed, 1);
}

/// The server asks `a-1` to reconnect, to `gateway` if given.
fn ask_a1_to_reconnect(net: &mut Net, gateway: Option<&str>) {
    net.admin(AdminCmd::Reconnect {
        station: "a-1".into(),
        gateway: gateway.map(str::to_owned),
    })
    .unwrap();
}

#[test]
fn a_server_that_keeps_asking_to_reconnect_meets_the_backoff() {
    let mut net = Net::new(origin(), server_config(), 4);
    let a = net.add_station(station_config("a-1", 15));
    net.run_for(Duration::from_secs(1));
    let start = net.now;
    let end = start + Duration::from_secs(5);
    // The server answers every session with `reconnect`, as soon as it is up.
    let mut asked = 0;
    while net.now < end {
        let core = &net.stations[a].core;
        if core.session().is_established() && core.stats().established > asked {
            asked = core.stats().established;
            ask_a1_to_reconnect(&mut net, None);
        }
        net.run_for(ms(1));
    }
    let attempts = connects(&net, a)
        .iter()
        .filter(|(t, _)| *t >= start)
        .count();
    // At once, then 0–0.2 s, 0–0.4 s, … (full jitter): a handful in 5 s, not a storm.
    assert!(
        (2..=12).contains(&attempts),
        "{attempts} connections in 5 s"
    );
}

#[test]
fn a_move_to_a_gateway_the_station_cannot_dial_is_ignored() {
    let long = format!("wss://{}.example/signal", "a".repeat(10_000));
    for bad in [
        "http://127.0.0.2:8443/signal",
        "wss:///signal",
        "wss://h:0/x",
        "garbage",
        long.as_str(),
    ] {
        let mut net = Net::new(origin(), server_config(), 4);
        let a = net.add_station(station_config("a-1", 16));
        net.run_for(Duration::from_secs(1));
        ask_a1_to_reconnect(&mut net, Some(bad));
        net.run_for(Duration::from_secs(1));
        let urls: Vec<String> = connects(&net, a).into_iter().map(|(_, u)| u).collect();
        assert_eq!(
            urls,
            vec!["wss://127.0.0.1:8443/signal"; 2],
            "moved to {bad:.40}"
        );
        assert!(net.stations[a].core.session().is_established());
    }
}

#[test]
fn a_move_to_a_dead_gateway_returns_to_the_configured_one() {
    let mut net = Net::new(origin(), server_config(), 4);
    let dead = "wss://127.0.0.9:8443/signal";
    net.dead_gateways.push(dead.into());
    let a = net.add_station(station_config("a-1", 17));
    net.run_for(Duration::from_secs(1));
    ask_a1_to_reconnect(&mut net, Some(dead));
    net.run_for(Duration::from_secs(10));
    let urls: Vec<String> = connects(&net, a).into_iter().map(|(_, u)| u).collect();
    let home = "wss://127.0.0.1:8443/signal";
    assert_eq!(
        urls,
        vec![home, dead, dead, dead, home],
        "three tries at the new gateway, then home"
    );
    let core = &net.stations[a].core;
    assert!(core.session().is_established());
    assert_eq!(core.stats().resumed, 1, "the session resumes at home");
}

#[test]
fn thirty_minute_outage_retries_within_bounds_and_recovers() {
    fn storm(seed: u64) -> (Vec<Instant>, Duration) {
        let mut net = Net::new(origin(), server_config(), 5);
        let a = net.add_station(station_config("a-1", seed));
        net.run_for(Duration::from_secs(10));
        net.kill_server();
        net.run_for(Duration::from_secs(30 * 60));
        net.start_server();
        let up = net.now;
        let back = established_at(&mut net, a, Duration::from_secs(30)).expect("recovered");
        let times: Vec<Instant> = connects(&net, a)
            .into_iter()
            .map(|(t, _)| t)
            .filter(|t| *t > net.start + Duration::from_secs(10))
            .collect();
        let base = net.start;
        (
            times.into_iter().map(|t| base + (t - base)).collect(),
            back - up,
        )
    }
    let (times, recovery) = storm(77);
    let cap = Duration::from_secs(8);
    assert!(
        times.len() > 30 * 60 / 8,
        "kept trying: {} attempts",
        times.len()
    );
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        // Each refused attempt costs one link latency on top of the backoff delay.
        assert!(gap <= cap + ms(20), "gap {gap:?} over the cap");
    }
    assert!(recovery <= cap + ms(50), "recovered after {recovery:?}");

    // Deterministic for a seed, different for another.
    let (again, _) = storm(77);
    let offsets = |v: &[Instant]| -> Vec<Duration> { v.iter().map(|t| *t - v[0]).collect() };
    assert_eq!(offsets(&times), offsets(&again));
    let (other, _) = storm(78);
    assert_ne!(offsets(&times), offsets(&other));
}

#[test]
fn bad_credentials_show_error_and_retry_slowly_forever() {
    let mut net = Net::new(origin(), server_config(), 6);
    let mut cfg = station_config("a-1", 16);
    cfg.session.token = "wrong".into();
    let a = net.add_station(cfg);
    net.run_for(Duration::from_secs(120));
    assert_eq!(net.stations[a].core.led(), LedState::Error);
    let times: Vec<Instant> = connects(&net, a).into_iter().map(|(t, _)| t).collect();
    assert!(times.len() >= 120 / 8, "still retrying: {}", times.len());
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_secs(4),
            "retried too fast: {:?}",
            w[1] - w[0]
        );
    }
    assert!(net.server().unwrap().stats().auth_failures >= 15);
}

#[test]
fn garbage_from_one_station_does_not_disturb_another() {
    let mut net = Net::new(origin(), server_config(), 7);
    let a = net.add_station(station_config("a-1", 17));
    let b = net.add_station(station_config("a-2", 18));
    net.run_for(Duration::from_secs(1));
    let now = net.now;
    let server = net.server().unwrap();
    let (mut garbage_closed, mut unauth_closed) = (false, false);
    server.handle_open(now, stagebox_server_core::ConnId(900));
    server.handle_text(now, stagebox_server_core::ConnId(900), "{\"op\":");
    server.handle_open(now, stagebox_server_core::ConnId(901));
    server.handle_text(
        now,
        stagebox_server_core::ConnId(901),
        r#"{"op":"raise_hand","d":{"raised":true}}"#,
    );
    while let Some(t) = server.poll_transmit() {
        match t {
            stagebox_server_core::ServerTransmit::Close { conn, code } if conn.0 == 900 => {
                garbage_closed = code == CloseCode::DecodeError.as_u16();
            }
            stagebox_server_core::ServerTransmit::Close { conn, code } if conn.0 == 901 => {
                unauth_closed = code == CloseCode::NotAuthenticated.as_u16();
            }
            _ => {}
        }
    }
    assert!(garbage_closed && unauth_closed);
    net.run_for(Duration::from_secs(30));
    for i in [a, b] {
        assert!(net.stations[i].core.session().is_established());
        assert_eq!(net.stations[i].core.stats().lost, 0);
    }
    assert!(matches!(
        net.stations[a].core.session().phase(),
        Phase::Established { .. }
    ));
}

#[test]
fn a_long_outage_shows_offline_then_the_stage_again() {
    let mut net = Net::new(origin(), server_config(), 8);
    let a = net.add_station(station_config("a-1", 9));
    net.run_for(Duration::from_secs(2));
    net.kill_server();
    net.run_for(Duration::from_secs(50));
    assert_eq!(net.stations[a].core.led(), LedState::Reconnecting);
    net.run_for(Duration::from_secs(15));
    assert_eq!(net.stations[a].core.led(), LedState::Offline);
    net.start_server();
    established_at(&mut net, a, Duration::from_secs(30)).expect("recovered");
    net.run_for(ms(200));
    assert_eq!(net.stations[a].core.led(), LedState::Audience);
    assert_eq!(
        net.leds(a),
        vec![
            LedState::Connecting,
            LedState::Audience,
            LedState::Reconnecting,
            LedState::Offline,
            LedState::Audience
        ]
    );
}

#[test]
fn an_untrusted_server_shows_error_until_the_real_one_answers() {
    let mut net = Net::new(origin(), server_config(), 9);
    let cap = station_config("a-1", 19).session.backoff.cap;
    let a = net.add_station(station_config("a-1", 19));
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.stations[a].core.led(), LedState::Audience);
    // The server goes away and something else answers at its address.
    net.kill_server();
    net.start_server();
    net.impostor = true;
    net.run_for(Duration::from_secs(60));
    assert_eq!(net.stations[a].core.led(), LedState::Error);
    let attempts: Vec<Instant> = connects(&net, a)
        .into_iter()
        .map(|(t, _)| t)
        .filter(|t| *t > net.start + Duration::from_secs(3))
        .collect();
    assert!(
        attempts.len() >= 60 / cap.as_secs() as usize,
        "{attempts:?}"
    );
    for w in attempts.windows(2) {
        assert!(
            w[1] - w[0] >= cap / 2,
            "an untrusted server is retried slowly, not hammered: {:?}",
            w[1] - w[0]
        );
    }
    // The real server is back: the station recovers by itself.
    net.impostor = false;
    established_at(&mut net, a, cap * 2).expect("recovered from the error");
    net.run_for(ms(200));
    assert_eq!(net.stations[a].core.led(), LedState::Audience);
    assert_eq!(
        net.leds(a),
        vec![
            LedState::Connecting,
            LedState::Audience,
            LedState::Reconnecting,
            LedState::Error,
            LedState::Audience
        ]
    );
}
