//! The real station against a hostile or broken server, on loopback: a server that sends
//! frames the protocol does not allow, and servers whose TLS handshake or WebSocket upgrade
//! never completes (a captive portal, a half-open proxy). The station answers as documented
//! and holds no descriptor for an attempt it gave up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Stage;
use stagebox_proto::signal::{ClientMsg, ServerMsg};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

type ServerTls = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

/// A TLS listener with a self-signed certificate the station is pinned to.
struct Hostile {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    pin: String,
}

impl Hostile {
    fn new(dir: &std::path::Path) -> Hostile {
        let cfg = stagebox_stage_server::config::Tls {
            cert: dir.join("hostile-cert.pem"),
            key: dir.join("hostile-key.pem"),
            names: vec!["127.0.0.1".into()],
        };
        let (tls, pin) = stagebox_stage_server::cert::server_tls(&cfg).unwrap();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        Hostile { listener, tls, pin }
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }

    /// The next TCP connection from the station, within `limit`.
    fn accept_tcp(&self, limit: Duration) -> TcpStream {
        self.listener.set_nonblocking(true).unwrap();
        let start = Instant::now();
        loop {
            match self.listener.accept() {
                Ok((tcp, _)) => {
                    tcp.set_nonblocking(false).unwrap();
                    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    return tcp;
                }
                Err(_) if start.elapsed() < limit => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("the station did not connect within {limit:?}: {e}"),
            }
        }
    }

    /// The next connection with TLS done (the upgrade not yet read).
    fn accept_tls(&self, limit: Duration) -> ServerTls {
        let mut tcp = self.accept_tcp(limit);
        let mut conn = rustls::ServerConnection::new(self.tls.clone()).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).unwrap();
        }
        rustls::StreamOwned::new(conn, tcp)
    }

    /// The next connection, upgraded to WebSocket.
    fn accept_ws(&self, limit: Duration) -> WebSocket<ServerTls> {
        tungstenite::accept(self.accept_tls(limit)).unwrap()
    }
}

fn text(ws: &mut WebSocket<ServerTls>, msg: &ServerMsg) {
    ws.send(Message::text(msg.to_json())).unwrap();
}

fn expect_identify(ws: &mut WebSocket<ServerTls>) {
    match ws.read().unwrap() {
        Message::Text(t) => assert!(
            matches!(ClientMsg::from_json(&t), Ok(ClientMsg::Identify { .. })),
            "{t}"
        ),
        other => panic!("expected identify, got {other:?}"),
    }
}

/// Reads until the station's close frame; returns its code.
fn close_code(ws: &mut WebSocket<ServerTls>) -> u16 {
    loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => return u16::from(frame.code),
            Ok(Message::Close(None)) => panic!("a close without a code"),
            Ok(_) => continue,
            Err(e) => panic!("the connection ended without a close frame: {e}"),
        }
    }
}

fn hello() -> ServerMsg {
    ServerMsg::Hello {
        v: 1,
        heartbeat_interval_ms: 2000,
    }
}

fn stage_for(name: &str, hostile: &Hostile) -> Stage {
    let mut stage = Stage::new(name, IpAddr::V4(Ipv4Addr::LOCALHOST));
    stage.gateway = hostile.port();
    stage
}

#[test]
fn binary_frames_and_text_that_is_not_utf8_are_closed_with_4002() {
    let dir = std::env::temp_dir().join(format!("stagebox-hostile-frames-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hostile = Hostile::new(&dir);
    let stage = stage_for("hostile-frames", &hostile);
    let (_station, _sock) = stage.start_station("a", &hostile.pin, None);

    let mut ws = hostile.accept_ws(Duration::from_secs(20));
    text(&mut ws, &hello());
    expect_identify(&mut ws);
    ws.send(Message::binary(vec![1u8, 2, 3])).unwrap();
    assert_eq!(close_code(&mut ws), 4002, "a binary frame");

    // The station tries again; this time a text frame carries bytes that are not UTF-8,
    // written raw (an unmasked server frame: FIN + text, length 2, "\xc3\x28").
    let mut ws = hostile.accept_ws(Duration::from_secs(20));
    text(&mut ws, &hello());
    expect_identify(&mut ws);
    ws.get_mut().write_all(&[0x81, 0x02, 0xc3, 0x28]).unwrap();
    ws.get_mut().flush().unwrap();
    assert_eq!(close_code(&mut ws), 4002, "text that is not UTF-8");
    assert_eq!(CloseCode::from(4002), CloseCode::Library(4002));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether the peer closed `tcp` (EOF or reset), waiting up to `limit` for it.
fn closed_by_peer(tcp: &mut TcpStream, limit: Duration) -> bool {
    tcp.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
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

/// Open descriptors of process `pid`.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn a_stalled_tls_handshake_or_upgrade_leaves_no_descriptor_behind() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("stagebox-hostile-stall-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hostile = Hostile::new(&dir);
    let stage = stage_for("hostile-stall", &hostile);
    let (station, _sock) = stage.start_station("a", &hostile.pin, None);
    let pid = station.0.id();

    // Attempts alternate: TCP accepted but TLS never answered; TLS done but the upgrade
    // never answered. The station gives each up after its step timeout and must close it.
    let mut held: Vec<TcpStream> = Vec::new();
    let mut fds = Vec::new();
    for attempt in 0..6 {
        let tcp = if attempt % 2 == 0 {
            hostile.accept_tcp(Duration::from_secs(30))
        } else {
            let tls = hostile.accept_tls(Duration::from_secs(30));
            let (_, tcp) = tls.into_parts();
            tcp
        };
        if let Some(previous) = held.last_mut() {
            assert!(
                closed_by_peer(previous, Duration::from_secs(2)),
                "attempt {} was given up but its socket is still open",
                attempt - 1
            );
        }
        held.push(tcp);
        fds.push(descriptors(pid));
    }
    // Flat: the last attempts hold no more than the first.
    println!("station descriptors at each attempt: {fds:?}");
    assert!(fds[5] <= fds[1], "descriptors grew: {fds:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The station's resident memory, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Writes distinct member updates (ids `PREFIX-…`) to `ws` for `length` or until the socket
/// gives up, flushing every `flush_every`; returns how many went out and the station's
/// largest resident size seen meanwhile.
fn flood(
    ws: &mut WebSocket<ServerTls>,
    pid: u32,
    prefix: &str,
    length: Duration,
    flush_every: u64,
) -> (u64, u64) {
    let started = Instant::now();
    let (mut sent, mut peak) = (0u64, rss_kib(pid));
    while started.elapsed() < length {
        let update = ServerMsg::MemberUpdate(flood_member(format!("{prefix}-{sent:0>100}")));
        if ws.write(Message::text(update.to_json())).is_err() {
            break;
        }
        sent += 1;
        if sent % flush_every == 0 {
            if ws.flush().is_err() {
                break;
            }
            peak = peak.max(rss_kib(pid));
        }
    }
    (sent, peak.max(rss_kib(pid)))
}

fn flood_member(id: String) -> stagebox_proto::signal::Member {
    stagebox_proto::signal::Member {
        station_id: id,
        role: stagebox_proto::signal::Role::Audience,
        hand_raised: false,
        hand_order: None,
        invited: false,
        server_muted: false,
        ssrc: 1,
        connected: true,
        name: None,
    }
}

#[test]
fn a_member_flood_leaves_the_station_bounded_and_answering() {
    let dir = std::env::temp_dir().join(format!("stagebox-hostile-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hostile = Hostile::new(&dir);
    let stage = stage_for("hostile-flood", &hostile);
    let (station, sock) = stage.start_station("a", &hostile.pin, None);
    let pid = station.0.id();

    let mut ws = hostile.accept_ws(Duration::from_secs(20));
    text(
        &mut ws,
        &ServerMsg::Hello {
            v: 1,
            heartbeat_interval_ms: 60_000,
        },
    );
    expect_identify(&mut ws);
    let media = stagebox_proto::signal::MediaParams {
        host: "127.0.0.1".into(),
        port: 9,
        mode: stagebox_proto::media::MEDIA_MODE.into(),
        ssrc: 7,
        station_key: "11".repeat(32),
        server_key: "22".repeat(32),
        red: true,
    };
    text(
        &mut ws,
        &ServerMsg::Ready {
            session_id: "s-1".into(),
            station_id: "a".into(),
            media,
            resume_window_ms: 30_000,
        },
    );
    text(
        &mut ws,
        &ServerMsg::Stage(stagebox_proto::signal::StageSnapshot {
            stage: "hall".into(),
            members: vec![flood_member("a".into())],
            priority_ssrc: None,
        }),
    );
    common::wait_until("the station to join", Duration::from_secs(10), || {
        common::stats(&sock)["led"] == "audience"
    });
    let before = rss_kib(pid);
    // A flood of distinct members, written as fast as the station takes them, for 8 s.
    ws.get_mut()
        .sock
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (sent, peak) = flood(&mut ws, pid, "m", Duration::from_secs(8), 2000);
    println!("member flood: {sent} members sent; station RSS {before} KiB -> peak {peak} KiB");
    assert!(sent > 10_000, "the flood did not get going ({sent})");
    assert!(
        peak.saturating_sub(before) < 24 * 1024,
        "the station grew {} KiB",
        peak - before
    );
    // Now with the station's network task stalled for 4 s (a wedged loop): the connection
    // task meets the bounded input queue, TCP holds the rest back, memory stays flat.
    let stall = {
        let sock = sock.clone();
        std::thread::spawn(move || common::control(&sock, "stall 4000"))
    };
    // Flushed often: a full socket makes the flush wait, and the write timeout bounds it.
    let (stalled_sent, stalled_peak) = flood(&mut ws, pid, "s", Duration::from_secs(4), 500);
    stall.join().unwrap();
    println!(
        "stalled station: {stalled_sent} members written in 4 s; station RSS {before} KiB -> \
         peak {stalled_peak} KiB"
    );
    assert!(
        stalled_peak.saturating_sub(before) < 24 * 1024,
        "the stalled station grew {} KiB",
        stalled_peak - before
    );
    // Still itself: answering, and on the stage.
    assert_eq!(common::stats(&sock)["led"], "audience");
    let _ = std::fs::remove_dir_all(&dir);
}
