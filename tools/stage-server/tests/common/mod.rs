//! What the server's system tests share: the real server process with a fresh configuration,
//! and a blocking WebSocket client over rustls that plays a station (or an attacker).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use stagebox_proto::signal::{ClientMsg, ServerMsg};
use stagebox_stationd::config::{Fingerprint, Trust};
use tungstenite::{Message, WebSocket};

pub type Client = WebSocket<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>;

pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn start(dir: &Path) -> (Server, u16, [u8; 32]) {
    start_with(dir, "")
}

/// [`start`] with more lines at the end of the configuration. The ports are free when chosen
/// but another test may take one before the server binds it: a server that stops before it
/// is ready is started again on fresh ports (its log says why, in `server.log`).
pub fn start_with(dir: &Path, extra: &str) -> (Server, u16, [u8; 32]) {
    for _ in 0..5 {
        if let Some(started) = try_start(dir, extra) {
            return started;
        }
    }
    panic!(
        "the server did not start; see {}",
        dir.join("server.log").display()
    );
}

fn try_start(dir: &Path, extra: &str) -> Option<(Server, u16, [u8; 32])> {
    let (gateway, media, admin) = (port(), udp_port(), port());
    let cfg = dir.join("server.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listen]\ngateway = \"127.0.0.1:{gateway}\"\nmedia = \"127.0.0.1:{media}\"\nadmin = \"127.0.0.1:{admin}\"\n\
             [tls]\ncert = \"{d}/cert.pem\"\nkey = \"{d}/key.pem\"\n[admin]\ntoken = \"bad-input-admin-token\"\n\
             [[stage]]\nid = \"hall\"\n[[station]]\nid = \"good\"\ntoken = \"token-good-1\"\n{extra}",
            d = dir.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stage-server"))
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let Some(hex) = line
        .trim()
        .strip_prefix("pin_sha256 = \"")
        .and_then(|l| l.strip_suffix('"'))
    else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    let mut pin = [0u8; 32];
    hex::decode_to_slice(hex, &mut pin).unwrap();
    Some((Server(child), gateway, pin))
}

/// A UDP port free now.
pub fn udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn connect(gateway: u16, pin: [u8; 32]) -> Client {
    let tcp = TcpStream::connect(("127.0.0.1", gateway)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    upgrade(tcp, gateway, pin).unwrap()
}

pub fn next(ws: &mut Client) -> Message {
    ws.read().unwrap()
}

pub fn expect_server_msg(ws: &mut Client) -> ServerMsg {
    match next(ws) {
        Message::Text(t) => ServerMsg::from_json(&t).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// A station's identify for the test configuration's station `good`.
pub fn identify_good() -> ClientMsg {
    ClientMsg::Identify {
        v: 1,
        station_id: "good".into(),
        token: "token-good-1".into(),
        stage: "hall".into(),
        modes: vec!["chacha20_poly1305_rtpsize".into()],
        audio_formats: vec!["red".into()],
    }
}

/// A client connection from a chosen source address (any of 127.0.0.0/8).
pub fn connect_from(source: IpAddr, gateway: u16, pin: [u8; 32]) -> std::io::Result<Client> {
    connect_socket(Some(source), None, gateway, pin)
}

/// A client whose receive buffer is `window` bytes, fixed before connecting so the kernel does
/// not grow it: how a station that stops reading looks from the server on any machine, whatever
/// its TCP tuning (a window of megabytes would swallow a long flood of answers first).
pub fn connect_with_window(gateway: u16, pin: [u8; 32], window: usize) -> std::io::Result<Client> {
    connect_socket(None, Some(window), gateway, pin)
}

fn connect_socket(
    source: Option<IpAddr>,
    window: Option<usize>,
    gateway: u16,
    pin: [u8; 32],
) -> std::io::Result<Client> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    if let Some(source) = source {
        socket.bind(&SocketAddr::new(source, 0).into())?;
    }
    if let Some(window) = window {
        socket.set_recv_buffer_size(window)?;
    }
    socket.connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], gateway)).into(),
        Duration::from_secs(5),
    )?;
    let tcp: TcpStream = socket.into();
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(5)))?;
    upgrade(tcp, gateway, pin)
}

/// TLS on `tcp`, pinned to the server's certificate.
pub fn tls_to(
    tcp: TcpStream,
    pin: [u8; 32],
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let tls = stagebox_stationd::tls::client_config(&Trust::Pin(Fingerprint(pin)))
        .map_err(std::io::Error::other)?;
    let conn =
        rustls::ClientConnection::new(Arc::clone(&tls), ServerName::try_from("127.0.0.1").unwrap())
            .map_err(std::io::Error::other)?;
    Ok(rustls::StreamOwned::new(conn, tcp))
}

/// TLS (pinned) and the WebSocket upgrade on `tcp`.
pub fn upgrade(tcp: TcpStream, gateway: u16, pin: [u8; 32]) -> std::io::Result<Client> {
    let stream = tls_to(tcp, pin)?;
    let url = format!("wss://127.0.0.1:{gateway}/signal");
    tungstenite::client::client(url.as_str(), stream)
        .map(|(ws, _)| ws)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// The resident memory of process `pid`, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Logs `ws` in as station `good`: hello, identify, ready.
pub fn log_in(ws: &mut Client) {
    assert!(matches!(expect_server_msg(ws), ServerMsg::Hello { .. }));
    ws.send(Message::text(identify_good().to_json())).unwrap();
    assert!(matches!(expect_server_msg(ws), ServerMsg::Ready { .. }));
}

/// Sends a heartbeat and expects its answer (member changes may come first).
pub fn expect_heartbeat_answered(ws: &mut Client, nonce: u64) {
    ws.send(Message::text(ClientMsg::Heartbeat { nonce }.to_json()))
        .unwrap();
    loop {
        match expect_server_msg(ws) {
            ServerMsg::HeartbeatAck { nonce: n } => {
                assert_eq!(n, nonce);
                return;
            }
            ServerMsg::MemberUpdate(_) | ServerMsg::MemberLeft { .. } | ServerMsg::Stage(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}
