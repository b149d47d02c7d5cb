//! The reference server serves update files on its gateway's port, over the same TLS the
//! stations pin: whole, resumed from a byte (`Range`), and nothing outside its directory.
//! Stations still log in on the same port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{connect, expect_server_msg, identify_good, start_with, tls_to};
use stagebox_proto::signal::ServerMsg;
use tungstenite::Message;

/// One GET over TLS pinned to the server; the status line, the head and the body.
fn get(
    gateway: u16,
    pin: [u8; 32],
    path: &str,
    range_from: Option<u64>,
) -> (String, String, Vec<u8>) {
    let tcp = TcpStream::connect(("127.0.0.1", gateway)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut s = tls_to(tcp, pin).unwrap();
    let range = range_from.map_or(String::new(), |n| format!("Range: bytes={n}-\r\n"));
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{range}\r\n").unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, head, all[split + 4..].to_vec())
}

#[test]
fn update_files_are_served_whole_resumed_and_only_from_their_directory() {
    let dir = std::env::temp_dir().join(format!("stagebox-updates-{}", std::process::id()));
    let files = dir.join("updates");
    std::fs::create_dir_all(&files).unwrap();
    let bundle: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(files.join("stagebox-qemu-1.1.0.raucb"), &bundle).unwrap();
    std::fs::write(dir.join("secret.txt"), "not for stations").unwrap();
    let extra = format!("[updates]\ndir = \"{}\"\n", files.display());
    let (_server, gateway, pin) = start_with(&dir, &extra);

    let (status, head, body) = get(gateway, pin, "/updates/stagebox-qemu-1.1.0.raucb", None);
    assert!(status.contains("200"), "{head}");
    assert_eq!(body, bundle);

    let (status, head, body) = get(
        gateway,
        pin,
        "/updates/stagebox-qemu-1.1.0.raucb",
        Some(123_456),
    );
    assert!(status.contains("206"), "{head}");
    assert!(
        head.contains("Content-Range: bytes 123456-299999/300000"),
        "{head}"
    );
    assert_eq!(body, bundle[123_456..]);

    let (status, _, _) = get(
        gateway,
        pin,
        "/updates/stagebox-qemu-1.1.0.raucb",
        Some(300_000),
    );
    assert!(status.contains("416"), "{status}");
    for path in [
        "/updates/../secret.txt",
        "/updates/missing.raucb",
        "/updates/",
        "/updates/.x",
    ] {
        let (status, _, body) = get(gateway, pin, path, None);
        assert!(status.contains("404"), "{path}: {status}");
        assert!(body.is_empty());
    }

    // The same port still takes stations.
    let mut ws = connect(gateway, pin);
    assert!(matches!(
        expect_server_msg(&mut ws),
        ServerMsg::Hello { .. }
    ));
    ws.send(Message::text(identify_good().to_json())).unwrap();
    assert!(matches!(
        expect_server_msg(&mut ws),
        ServerMsg::Ready { .. }
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
