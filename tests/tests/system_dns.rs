//! System test of a media server known by name, with a resolver that fails, then stalls, then
//! answers: the real server advertises `voice.stage.test`, two real stations join, and the
//! station's own resolver (glibc, through /etc/resolv.conf) asks a DNS server played by this
//! test. While the name does not resolve the stations stay on the stage (heartbeats, the
//! systemd watchdog, the control socket all go on) and say `connecting`; once it resolves,
//! A's audio reaches B.
//!
//! It runs in namespaces of its own (`unshare --net --mount`, with a user namespace so no root
//! is needed): the outer test re-runs this binary inside them, and the inner test mounts its
//! own resolv.conf and nsswitch.conf and serves DNS on 127.0.0.1:53.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Stage, a_talks_and_b_hears, quit_all, stats, wait_until, write_speech};

const IN_NAMESPACE: &str = "STAGEBOX_TEST_IN_OWN_DNS_NS";
const NAME: &str = "voice.stage.test";
/// The resolver answers SERVFAIL for this long, then nothing for `STALL`, then the address.
const FAILING: Duration = Duration::from_secs(3);
const STALL: Duration = Duration::from_secs(9);

#[test]
fn a_media_name_that_fails_then_stalls_then_resolves() {
    let text = common::rerun_in_namespaces(&["--net", "--mount"], "dns_scenario", IN_NAMESPACE);
    for line in text
        .lines()
        .filter(|l| l.contains("watchdog pings") || l.contains("queries per phase"))
    {
        println!("{line}");
    }
}

/// One DNS answer to `query`: SERVFAIL, or an A record for 127.0.0.1 (other types: none).
fn answer(query: &[u8], servfail: bool) -> Option<Vec<u8>> {
    let mut pos = 12;
    while *query.get(pos)? != 0 {
        pos += 1 + usize::from(*query.get(pos)?);
    }
    let question_end = pos + 5;
    let qtype = u16::from_be_bytes([*query.get(pos + 1)?, *query.get(pos + 2)?]);
    let mut r = Vec::with_capacity(64);
    r.extend_from_slice(query.get(..2)?);
    let is_a = qtype == 1 && !servfail;
    let rcode = if servfail { 2 } else { 0 };
    r.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1, 0, u8::from(is_a), 0, 0, 0, 0]);
    r.extend_from_slice(query.get(12..question_end)?);
    if is_a {
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, 1]);
    }
    Some(r)
}

/// Serves DNS on 127.0.0.1:53 from `start`: SERVFAIL, then silence, then answers. Counts the
/// queries it got in each phase.
fn serve_dns(start: Instant, queries: Arc<[AtomicU64; 3]>) {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 53)).expect("port 53 in the namespace");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while start.elapsed() < Duration::from_secs(120) {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let t = start.elapsed();
            let phase = if t < FAILING {
                0
            } else if t < FAILING + STALL {
                1
            } else {
                2
            };
            queries[phase].fetch_add(1, Ordering::SeqCst);
            if phase != 1
                && let Some(reply) = answer(&buf[..n], phase == 0)
            {
                let _ = socket.send_to(&reply, from);
            }
        }
    });
}

#[test]
#[ignore = "run by a_media_name_that_fails_then_stalls_then_resolves inside its namespaces"]
fn dns_scenario() {
    assert!(
        std::env::var_os(IN_NAMESPACE).is_some(),
        "run through a_media_name_that_fails_then_stalls_then_resolves"
    );
    let run = |cmd: &mut Command| assert!(cmd.status().unwrap().success(), "{cmd:?}");
    run(Command::new("ip").args(["link", "set", "lo", "up"]));
    let stage = Stage::new("system-dns", IpAddr::V4(Ipv4Addr::LOCALHOST));
    for (file, text) in [
        ("resolv.conf", "nameserver 127.0.0.1\n"),
        ("nsswitch.conf", "hosts: files dns\n"),
    ] {
        let path = stage.dir.join(file);
        std::fs::write(&path, text).unwrap();
        run(Command::new("mount")
            .args(["--bind"])
            .arg(&path)
            .arg(format!("/etc/{file}")));
    }
    stage.advertise_media_host(NAME);
    let speech = stage.dir.join("speech.wav");
    write_speech(&speech);
    let _server = stage.start_server("server.log");
    let pin = stage.pin();
    let notify_path = stage.dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let queries = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let start = Instant::now();
    serve_dns(start, queries.clone());
    let notify_env = notify_path.to_str().unwrap().to_string();
    let watchdog = [
        ("NOTIFY_SOCKET", notify_env.as_str()),
        ("WATCHDOG_USEC", "2000000"),
    ];
    let stations = vec![
        stage.start_station_env("a", &pin, Some(&speech), "", "", &watchdog),
        stage.start_station("b", &pin, Some(&speech)),
    ];
    let (sa, sb) = (stations[0].1.clone(), stations[1].1.clone());
    wait_until("both stations to join", Duration::from_secs(10), || {
        stage.all_connected(2) && sa.exists() && sb.exists()
    });
    // Through the failing and the stalled resolver: on the stage, saying `connecting`, the
    // loop turning (watchdog pings) and the control socket answering.
    let mut pings = 0;
    let mut looked = 0;
    while start.elapsed() < FAILING + STALL - Duration::from_secs(1) {
        let mut buf = [0u8; 256];
        if let Ok(n) = notify.recv(&mut buf)
            && String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1")
        {
            pings += 1;
        }
        if start.elapsed() > Duration::from_secs(2) && looked < start.elapsed().as_secs() {
            looked = start.elapsed().as_secs();
            assert_eq!(stats(&sa)["led"], "connecting", "nowhere to send yet");
            assert!(stage.all_connected(2), "both stay on the stage");
        }
    }
    let stalled_for = (FAILING + STALL).as_secs();
    println!("{pings} watchdog pings while the resolver failed and stalled ({stalled_for} s)");
    assert!(
        pings >= 4,
        "the loop stopped turning: {pings} watchdog pings"
    );
    let media = stats(&sa)["media"].clone();
    assert!(
        media["resolve_failures"].as_u64().unwrap() >= 1,
        "SERVFAIL was seen: {media}"
    );
    // The resolver answers now: audio flows, no restart needed.
    wait_until("the name to resolve", Duration::from_secs(40), || {
        stats(&sa)["led"] == "audience" && stats(&sb)["led"] == "audience"
    });
    let media = stats(&sa)["media"].clone();
    println!(
        "queries per phase (failing, stalled, answering): {:?}; station a: {media}",
        queries
            .iter()
            .map(|q| q.load(Ordering::SeqCst))
            .collect::<Vec<_>>()
    );
    assert!(
        queries[1].load(Ordering::SeqCst) > 0,
        "asked during the stall"
    );
    assert!(
        media["resolve_timeouts"].as_u64().unwrap() >= 1,
        "the stalled answer was given up: {media}"
    );
    assert_eq!(
        media["destination"],
        "127.0.0.1:".to_string() + &stage_media_port(&stage)
    );
    a_talks_and_b_hears(&stage, &sa, &sb);
    quit_all(stations);
}

/// The media port the stage's server listens on.
fn stage_media_port(stage: &Stage) -> String {
    let cfg = std::fs::read_to_string(&stage.server_cfg).unwrap();
    cfg.lines()
        .find_map(|l| l.strip_prefix("media = \""))
        .and_then(|v| v.trim_end_matches('"').rsplit(':').next().map(String::from))
        .unwrap()
}
