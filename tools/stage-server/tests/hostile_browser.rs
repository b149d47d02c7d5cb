//! Hostile browsers at the real server process: malformed and oversized SDP offers are answered
//! with an `error` op and close code 4002 on their own connection; datagrams that look like
//! DTLS, STUN or RTP but are garbage, thrown at the shared media port, are dropped and counted
//! — nothing is forwarded, nothing crashes, and a station on the stage carries on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::Duration;

use common::{Client, connect, expect_heartbeat_answered, expect_server_msg, log_in, start_with};
use stagebox_proto::signal::{ClientMsg, ServerMsg};
use tungstenite::Message;

const LINK: &str = "hostile-stage-link-0001";

/// A browser joined on the stage with the link.
fn browser(gateway: u16, pin: [u8; 32]) -> Client {
    let mut ws = connect(gateway, pin);
    assert!(matches!(
        expect_server_msg(&mut ws),
        ServerMsg::Hello { .. }
    ));
    let join = ClientMsg::JoinWeb {
        v: 1,
        stage: "open".into(),
        link: LINK.into(),
        name: "<svg onload=alert(1)>".into(),
    };
    ws.send(Message::text(join.to_json())).unwrap();
    assert!(matches!(
        expect_server_msg(&mut ws),
        ServerMsg::WebReady { .. }
    ));
    ws
}

/// The error op's code (after anything else) and the close code that follow `offer`.
fn refusal_of(ws: &mut Client, offer: String) -> (u16, u16) {
    ws.send(Message::text(ClientMsg::WebOffer { sdp: offer }.to_json()))
        .unwrap();
    let error = loop {
        match expect_server_msg(ws) {
            ServerMsg::Error { code, .. } => break code,
            ServerMsg::WebAnswer { .. } => panic!("garbage was answered"),
            _ => continue,
        }
    };
    loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => return (error, u16::from(frame.code)),
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    }
}

/// The port of `listen.KEY` in the test server's configuration.
fn listen_port(dir: &std::path::Path, key: &str) -> u16 {
    let text = std::fs::read_to_string(dir.join("server.toml")).unwrap();
    let cfg: toml::Value = toml::from_str(&text).unwrap();
    let addr = cfg["listen"][key].as_str().unwrap();
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

fn stats(dir: &std::path::Path) -> serde_json::Value {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], listen_port(dir, "admin")));
    let reply =
        stagebox_admin_client::request(addr, "bad-input-admin-token", r#"{"action":"stats"}"#)
            .unwrap();
    serde_json::from_str(&reply).unwrap()
}

#[test]
fn garbage_offers_and_datagrams_are_refused_and_the_stage_goes_on() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("stagebox-hostile-browser-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Browsers join stage "open"; the station is on "hall".
    let links = format!("[[stage]]\nid = \"open\"\nlink = \"{LINK}\"\n");
    let (_server, gateway, pin) = start_with(&dir, &links);

    let mut good = connect(gateway, pin);
    log_in(&mut good);

    // Offers that are not SDP, SDP without audio, and one over the limit.
    let video_only = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:abcd\r\n\
        a=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11\r\na=setup:actpass\r\n\
        a=sendrecv\r\na=rtpmap:96 VP8/90000\r\n";
    for offer in [
        "v=0".to_string(),
        "\u{1}\u{2}not sdp at all \u{7f}".to_string(),
        video_only.to_string(),
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n".repeat(100),
        format!("v=0\r\n{}", "a=x\r\n".repeat(8000)),
    ] {
        let mut ws = browser(gateway, pin);
        assert_eq!(refusal_of(&mut ws, offer), (4002, 4002));
    }

    // Garbage at the media port: DTLS-looking, STUN-looking, RTP-looking and random.
    let before = stats(&dir);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = ("127.0.0.1", listen_port(&dir, "media"));
    // xorshift: seeded garbage, the same every run.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..600 {
        let len = 1 + (next() % 1200) as usize;
        let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        match i % 4 {
            0 => d.splice(0..0, [22u8, 0xfe, 0xfd]).for_each(drop),
            1 => d
                .splice(0..0, [0u8, 1, 0, 8, 0x21, 0x12, 0xa4, 0x42])
                .for_each(drop),
            2 => d.splice(0..0, [0x80u8, 111]).for_each(drop),
            _ => {}
        }
        udp.send_to(&d, target).unwrap();
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = stats(&dir);
    let count = |s: &serde_json::Value, k: &str| s[k].as_u64().unwrap();
    assert_eq!(
        count(&after, "media_forwarded"),
        count(&before, "media_forwarded"),
        "nothing forwarded"
    );
    let dropped: u64 = [
        "dropped_malformed",
        "dropped_unknown_ssrc",
        "dropped_unauthenticated",
    ]
    .iter()
    .map(|k| count(&after, k) - count(&before, k))
    .sum();
    assert!(dropped > 0, "the garbage was counted: {after}");

    // The station's session goes on, and a new browser still joins.
    expect_heartbeat_answered(&mut good, 9);
    let _ = browser(gateway, pin);
    let _ = std::fs::remove_dir_all(&dir);
}
