//! The real server against clients that try to exhaust it, on loopback: a logged-in station
//! that sends and never reads, and crowds of connections that never log in, each stalling most
//! of a large frame. The server's memory stays bounded, the offenders are dropped, and a good
//! station still gets in. Memory is measured (the server's resident size), not assumed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{
    Client, connect, connect_from, connect_with_window, expect_server_msg, log_in, rss_kib, start,
};
use stagebox_proto::signal::{ClientMsg, ServerMsg};
use tungstenite::Message;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stagebox-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_station_that_stops_reading_is_dropped_and_the_server_does_not_grow() {
    let dir = scratch("slow-reader");
    let (server, gateway, pin) = start(&dir);
    let pid = server.0.id();
    let mut ws = connect_with_window(gateway, pin, 4096).unwrap();
    log_in(&mut ws);
    let before = rss_kib(pid);
    // Heartbeats, never reading an answer: every one queues an ack the client will not take.
    // Sent in bursts (a flush every 64), faster than the server reads them: its reader is then
    // always ready, and must still end the connection once it has been hung up on.
    let heartbeat = ClientMsg::Heartbeat { nonce: 1 }.to_json();
    let started = Instant::now();
    let (mut sent, mut peak) = (0u64, before);
    let dropped = loop {
        if sent >= 1_000_000 || started.elapsed() > Duration::from_secs(120) {
            break false;
        }
        let burst_end = sent % 64 == 63;
        if let Err(e) = ws
            .write(Message::text(heartbeat.clone()))
            .and_then(|()| if burst_end { ws.flush() } else { Ok(()) })
        {
            // The server ended the connection (reset, broken pipe); a write that timed out
            // would mean it stopped reading, which is not what is tested here.
            assert!(
                !matches!(&e, tungstenite::Error::Io(io) if matches!(
                    io.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )),
                "the server stopped reading instead of hanging up: {e}"
            );
            break true;
        }
        sent += 1;
        if sent % 10_000 == 0 {
            peak = peak.max(rss_kib(pid));
        }
    };
    peak = peak.max(rss_kib(pid));
    println!(
        "slow reader: {sent} heartbeats sent before the server hung up; server RSS {before} KiB \
         -> peak {peak} KiB"
    );
    assert!(
        dropped,
        "the server kept a reader that does not read ({sent} sent)"
    );
    assert!(
        peak.saturating_sub(before) < 32 * 1024,
        "server grew {} KiB",
        peak - before
    );
    // The session is still there to resume; a fresh connection logs in as usual.
    let mut again = connect(gateway, pin);
    assert!(matches!(
        expect_server_msg(&mut again),
        ServerMsg::Hello { .. }
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A masked text frame header announcing `len` bytes, then `sent` bytes of it.
fn partial_frame(len: usize, sent: usize) -> Vec<u8> {
    let mut f = vec![0x81, 0x80 | 127];
    f.extend_from_slice(&(len as u64).to_be_bytes());
    f.extend_from_slice(&[1, 2, 3, 4]);
    f.extend(std::iter::repeat_n(b'x' ^ 1, sent));
    f
}

/// Connections from `source` that each stall `stalled` bytes of a 127 KiB frame; returns
/// the ones the server admitted.
fn crowd(source: u8, tries: usize, stalled: usize, gateway: u16, pin: [u8; 32]) -> Vec<Client> {
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, source));
    let mut held = Vec::new();
    for _ in 0..tries {
        let Ok(mut ws) = connect_from(ip, gateway, pin) else {
            continue;
        };
        if !matches!(ws.read(), Ok(Message::Text(_))) {
            continue;
        }
        let frame = partial_frame(127 * 1024, stalled);
        if ws.get_mut().write_all(&frame).is_ok() && ws.get_mut().flush().is_ok() {
            held.push(ws);
        }
    }
    held
}

/// Whether the server ended `ws` within `limit`.
fn ended(ws: &mut Client, limit: Duration) -> bool {
    let _ = ws.get_mut().sock.set_read_timeout(Some(limit));
    loop {
        match ws.read() {
            Ok(Message::Close(_)) => return true,
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn connections_that_never_log_in_are_capped_hold_little_and_are_dropped() {
    let dir = scratch("pre-login");
    let (server, gateway, pin) = start(&dir);
    let pid = server.0.id();
    let before = rss_kib(pid);
    // A frame larger than logging in needs is cut as it arrives, not parked.
    let mut big = connect_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), gateway, pin).unwrap();
    assert!(matches!(big.read(), Ok(Message::Text(_))));
    // The write itself may already fail: the server cuts the connection as the bytes arrive.
    let _ = big
        .get_mut()
        .write_all(&partial_frame(127 * 1024, 120 * 1024))
        .and_then(|()| big.get_mut().flush());
    assert!(
        ended(&mut big, Duration::from_secs(5)),
        "a 120 KiB stall before login was kept"
    );
    // Three sources, 40 tries each, every connection stalling 24 KiB of a large frame.
    let mut held = Vec::new();
    let mut per_source = Vec::new();
    for source in 3..6u8 {
        let admitted = crowd(source, 40, 24 * 1024, gateway, pin);
        per_source.push(admitted.len());
        held.extend(admitted);
    }
    std::thread::sleep(Duration::from_millis(300));
    let peak = rss_kib(pid);
    println!(
        "pre-login: admitted per source {per_source:?}; server RSS {before} KiB -> {peak} KiB with {} stalled",
        held.len()
    );
    assert!(per_source.iter().all(|&n| n <= 32), "{per_source:?}");
    assert!(
        peak.saturating_sub(before) < 48 * 1024,
        "server grew {} KiB",
        peak - before
    );
    // A station from its own address still gets in while the crowd stalls.
    let mut good = connect(gateway, pin);
    log_in(&mut good);
    // More sources meet the total cap.
    for source in 6..8u8 {
        held.extend(crowd(source, 40, 24 * 1024, gateway, pin));
    }
    assert!(held.len() <= 128, "{} admitted before login", held.len());
    // The crowd is dropped once its login time (10 s) is up.
    std::thread::sleep(Duration::from_secs(10));
    let mut still_open = 0;
    for ws in &mut held {
        if !ended(ws, Duration::from_millis(500)) {
            still_open += 1;
        }
    }
    assert_eq!(
        still_open, 0,
        "connections that never logged in stayed open"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
