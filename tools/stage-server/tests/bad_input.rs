//! Bad input at the real server process: garbage, oversized and binary signaling each get an
//! `error` op and close code 4002 on their own connection, and a well-behaved station on the
//! same server carries on. A blocking WebSocket client over rustls plays the foreign client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use stagebox_proto::signal::{ClientMsg, ServerMsg};
use stagebox_stationd::config::{Fingerprint, Trust};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

type Client = WebSocket<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(dir: &Path) -> (Server, u16, [u8; 32]) {
    let (gateway, media, admin) = (port(), port(), port());
    let cfg = dir.join("server.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listen]\ngateway = \"127.0.0.1:{gateway}\"\nmedia = \"127.0.0.1:{media}\"\nadmin = \"127.0.0.1:{admin}\"\n\
             [tls]\ncert = \"{d}/cert.pem\"\nkey = \"{d}/key.pem\"\n[admin]\ntoken = \"bad-input-admin-token\"\n\
             [[stage]]\nid = \"hall\"\n[[station]]\nid = \"good\"\ntoken = \"token-good-1\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stage-server"))
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let hex = line
        .trim()
        .trim_start_matches("pin_sha256 = \"")
        .trim_end_matches('"');
    let mut pin = [0u8; 32];
    hex::decode_to_slice(hex, &mut pin).unwrap();
    (Server(child), gateway, pin)
}

fn connect(gateway: u16, pin: [u8; 32]) -> Client {
    let tls = stagebox_stationd::tls::client_config(&Trust::Pin(Fingerprint(pin))).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", gateway)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let conn =
        rustls::ClientConnection::new(Arc::clone(&tls), ServerName::try_from("127.0.0.1").unwrap())
            .unwrap();
    let stream = rustls::StreamOwned::new(conn, tcp);
    let url = format!("wss://127.0.0.1:{gateway}/signal");
    let (ws, _) = tungstenite::client::client(url.as_str(), stream).unwrap();
    ws
}

fn next(ws: &mut Client) -> Message {
    ws.read().unwrap()
}

fn expect_server_msg(ws: &mut Client) -> ServerMsg {
    match next(ws) {
        Message::Text(t) => ServerMsg::from_json(&t).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Sends `bad`, then expects hello was already there, an error op with 4002 and a close 4002.
fn refused_with_4002(gateway: u16, pin: [u8; 32], bad: Message) {
    let mut ws = connect(gateway, pin);
    assert!(matches!(
        expect_server_msg(&mut ws),
        ServerMsg::Hello { .. }
    ));
    ws.send(bad).unwrap();
    match expect_server_msg(&mut ws) {
        ServerMsg::Error { code, .. } => assert_eq!(code, 4002),
        other => panic!("expected an error op, got {other:?}"),
    }
    loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => {
                assert_eq!(frame.code, CloseCode::from(4002));
                break;
            }
            Ok(Message::Close(None)) => panic!("close without a code"),
            Ok(_) => continue,
            Err(e) => panic!("connection ended without a close frame: {e}"),
        }
    }
}

#[test]
fn malformed_oversized_and_binary_signaling_are_refused_and_others_carry_on() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("stagebox-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_server, gateway, pin) = start(&dir);

    let mut good = connect(gateway, pin);
    assert!(matches!(
        expect_server_msg(&mut good),
        ServerMsg::Hello { .. }
    ));
    let identify = ClientMsg::Identify {
        v: 1,
        station_id: "good".into(),
        token: "token-good-1".into(),
        stage: "hall".into(),
        modes: vec!["chacha20_poly1305_rtpsize".into()],
        audio_formats: vec!["red".into()],
    };
    good.send(Message::text(identify.to_json())).unwrap();
    assert!(matches!(
        expect_server_msg(&mut good),
        ServerMsg::Ready { .. }
    ));
    assert!(matches!(expect_server_msg(&mut good), ServerMsg::Stage(_)));

    refused_with_4002(gateway, pin, Message::text("{\"op\":"));
    refused_with_4002(gateway, pin, Message::text("x".repeat(100 * 1024)));
    refused_with_4002(gateway, pin, Message::binary(vec![1u8, 2, 3]));

    // The good station's session is untouched.
    good.send(Message::text(ClientMsg::Heartbeat { nonce: 7 }.to_json()))
        .unwrap();
    loop {
        match expect_server_msg(&mut good) {
            ServerMsg::HeartbeatAck { nonce } => {
                assert_eq!(nonce, 7);
                break;
            }
            ServerMsg::MemberUpdate(_) | ServerMsg::MemberLeft { .. } => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
