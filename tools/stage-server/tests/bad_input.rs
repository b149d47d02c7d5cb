//! Bad input at the real server process: garbage, oversized and binary signaling each get an
//! `error` op and close code 4002 on their own connection (before login a message is at most
//! what identify needs), and a well-behaved station on the same server carries on. A blocking WebSocket client over rustls plays the foreign client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use common::{
    Client, connect, expect_heartbeat_answered, expect_server_msg, identify_good, log_in, start,
};
use stagebox_proto::signal::ServerMsg;
use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;

/// Sends `bad`, then expects hello was already there, an error op with 4002 and a close 4002.
fn refused_with_4002(gateway: u16, pin: [u8; 32], bad: Message) {
    let mut ws = connect(gateway, pin);
    assert!(matches!(
        expect_server_msg(&mut ws),
        ServerMsg::Hello { .. }
    ));
    ws.send(bad).unwrap();
    expect_refusal_4002(&mut ws);
}

/// Expects an error op with 4002 (after anything else) and a close 4002.
fn expect_refusal_4002(ws: &mut Client) {
    let refusal = loop {
        match expect_server_msg(ws) {
            ServerMsg::Error { code, .. } => break code,
            ServerMsg::MemberUpdate(_) | ServerMsg::HeartbeatAck { .. } => continue,
            other => panic!("expected an error op, got {other:?}"),
        }
    };
    assert_eq!(refusal, 4002);
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
    log_in(&mut good);
    assert!(matches!(expect_server_msg(&mut good), ServerMsg::Stage(_)));

    refused_with_4002(gateway, pin, Message::text("{\"op\":"));
    refused_with_4002(gateway, pin, Message::text("x".repeat(8 * 1024)));
    refused_with_4002(gateway, pin, Message::binary(vec![1u8, 2, 3]));
    // A well-formed identify, padded past what logging in needs: refused before it is parsed.
    let padded = format!(
        "{}{}",
        identify_good().to_json(),
        " ".repeat(stagebox_server_core::MAX_PRE_AUTH_LEN)
    );
    refused_with_4002(gateway, pin, Message::text(padded));

    // The good station's session is untouched.
    expect_heartbeat_answered(&mut good, 7);
    // Logged in, a message over the protocol's limit is answered, not cut.
    good.send(Message::text("x".repeat(100 * 1024))).unwrap();
    expect_refusal_4002(&mut good);
    let _ = std::fs::remove_dir_all(&dir);
}
