//! The real relay process between a UDP client and an echoing upstream on loopback: loss
//! applies in the chosen direction only, replies find their way back to the right client,
//! and the relay stops on SIGTERM and reports what it did.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn relays_both_ways_and_loses_only_downstream() {
    let upstream = UdpSocket::bind("127.0.0.1:0").unwrap();
    upstream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let listen = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let relay = Command::new(env!("CARGO_BIN_EXE_impair-relay"))
        .args(["--listen", &listen.to_string()])
        .args(["--upstream", &upstream.local_addr().unwrap().to_string()])
        .args([
            "--loss",
            "50",
            "--direction",
            "down",
            "--seed",
            "9",
            "--for",
            "60",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let clients: Vec<UdpSocket> = (0..2)
        .map(|_| {
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
            c
        })
        .collect();
    let (mut at_upstream, mut replies) = (0u32, [0u32; 2]);
    for i in 0..200u32 {
        let who = (i % 2) as usize;
        clients[who].send_to(&[who as u8], listen).unwrap();
        // The upstream echoes what it gets, through the relay, back to its sender.
        let deadline = Instant::now() + Duration::from_millis(50);
        while Instant::now() < deadline {
            if let Ok((n, from)) = upstream.recv_from(&mut [0u8; 16]) {
                assert_eq!(n, 1);
                at_upstream += 1;
                upstream.send_to(&[0], from).unwrap();
                break;
            }
        }
        for (c, count) in clients.iter().zip(replies.iter_mut()) {
            while c.recv_from(&mut [0u8; 16]).is_ok() {
                *count += 1;
            }
        }
    }
    // SIGTERM ends it cleanly (and `--for` would, had the test died first).
    Command::new("kill")
        .args(["-TERM", &relay.id().to_string()])
        .status()
        .unwrap();
    let out = relay.wait_with_output().unwrap();
    assert!(out.status.success());
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(at_upstream, 200, "nothing lost upstream: {report}");
    for r in replies {
        assert!((25..=75).contains(&r), "replies {replies:?}: {report}");
    }
    assert!(report.contains("\"received\":"), "{report}");
}
