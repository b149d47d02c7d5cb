//! System tests: the real `stage-server` and real `stationd` processes over loopback.
//! Station A is invited, talks, and B receives its audio; then the server process is killed
//! and started again, and both stations must rejoin by themselves (their sessions died with
//! the server, so resume is refused and they identify afresh). A station pinned to another
//! certificate shows an error and says why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{Stage, a_talks_and_b_hears, quit_all, stats, wait_until, write_speech};
use serde_json::json;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[test]
fn stations_talk_through_the_server_and_rejoin_after_it_restarts() {
    let stage = Stage::new("system", LOOPBACK);
    let speech = stage.dir.join("speech.wav");
    write_speech(&speech);
    let mut server = stage.start_server("server-1.log");
    let pin = stage.pin();
    let stations = vec![
        stage.start_station("a", &pin, Some(&speech)),
        stage.start_station("b", &pin, Some(&speech)),
    ];
    let (sa, sb) = (stations[0].1.clone(), stations[1].1.clone());
    wait_until("both stations to join", Duration::from_secs(20), || {
        sa.exists()
            && sb.exists()
            && stats(&sa)["led"] == "audience"
            && stats(&sb)["led"] == "audience"
    });
    // Only the station's user may press its buttons through the control socket.
    let mode = std::fs::metadata(&sa).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "control socket mode {mode:o}");
    a_talks_and_b_hears(&stage, &sa, &sb);

    // The server dies and comes back: both stations rejoin by themselves.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    wait_until("the stations to notice", Duration::from_secs(10), || {
        stats(&sa)["led"] == "reconnecting" && stats(&sb)["led"] == "reconnecting"
    });
    drop(server);
    let restart = Instant::now();
    let _server = stage.start_server("server-2.log");
    wait_until("both stations to rejoin", Duration::from_secs(20), || {
        stage.all_connected(2)
    });
    let rejoin = restart.elapsed();
    for s in [&sa, &sb] {
        let st = stats(s);
        assert_eq!(st["session"]["established"], 2, "{st}");
        // A fresh session starts back in the audience (the old server's state is gone).
        assert_eq!(
            st["led"], "audience",
            "a new server session starts in the audience"
        );
    }
    println!(
        "rejoined {:.0} ms after the server restarted",
        rejoin.as_secs_f64() * 1000.0
    );
    quit_all(stations);
}

#[test]
fn a_wrong_certificate_pin_shows_an_error_and_names_both_fingerprints() {
    let stage = Stage::new("system-pin", LOOPBACK);
    let _server = stage.start_server("server.log");
    let real_pin = stage.pin();
    let wrong_pin = "00".repeat(32);
    assert_ne!(real_pin, wrong_pin);
    let station = stage.start_station("a", &wrong_pin, None);
    let sock = station.1.clone();
    wait_until(
        "the station to show an error",
        Duration::from_secs(20),
        || sock.exists() && stats(&sock)["led"] == "error",
    );
    let text = std::fs::read_to_string(stage.dir.join("a.log")).unwrap();
    assert!(
        text.contains(&real_pin) && text.contains(&wrong_pin) && text.contains("pin_sha256"),
        "the log must name the server's fingerprint, the pinned one and the setting:\n{text}"
    );
    // The server never saw a login: the station stopped at TLS.
    let s = stage
        .admin(json!({"action": "stage", "stage": "hall"}))
        .unwrap();
    assert!(s["members"].as_array().is_none_or(|m| m.is_empty()), "{s}");
    quit_all(vec![station]);
}

#[test]
fn a_station_whose_sound_card_cannot_be_opened_joins_and_says_so() {
    let stage = Stage::new("nocard", LOOPBACK);
    let _server = stage.start_server("server.log");
    let pin = stage.pin();
    // The laptop build on ALSA, pointed at a card that is not there.
    let station = stage.start_station_with(
        "a",
        &pin,
        None,
        "alsa_audio = true",
        "capture_device = \"stagebox-no-such-card\"",
    );
    let sock = station.1.clone();
    wait_until(
        "the station to join without audio",
        Duration::from_secs(20),
        || sock.exists() && stage.all_connected(1) && stats(&sock)["led"] == "error",
    );
    let s = stats(&sock);
    assert_eq!(s["audio"]["device"], "gone, reopening", "{s}");
    let log = std::fs::read_to_string(stage.dir.join("a.log")).unwrap();
    assert!(
        log.contains("stagebox-no-such-card"),
        "the log names the device: {log}"
    );
    quit_all(vec![station]);
}
