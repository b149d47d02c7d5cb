//! The moderator console's interface at the real server process, as a browser and as an
//! attacker use it: a moderator added with `stage-server user add` signs in, sees a station's
//! raised hand in the queue and invites it (the station is told); requests without a session,
//! with a forged CSRF token or from another site are refused and change nothing; guessing
//! passwords locks the account; a person's name carrying markup comes back as the same text.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{connect, expect_server_msg, identify_good, start_with, tls_to};
use stagebox_proto::signal::{ClientMsg, ServerMsg};
use tungstenite::Message;

struct Reply {
    status: u16,
    head: String,
    body: serde_json::Value,
}

/// One HTTPS request to the gateway (pinned TLS), answered whole.
fn request(
    gateway: u16,
    pin: [u8; 32],
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> Reply {
    request_bytes(gateway, pin, method, path, headers, body.as_bytes())
}

/// [`request`] with a body of any bytes.
fn request_bytes(
    gateway: u16,
    pin: [u8; 32],
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> Reply {
    let tcp = TcpStream::connect(("127.0.0.1", gateway)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = tls_to(tcp, pin).unwrap();
    // The headers may declare a length of their own (a body announced but not sent).
    let length = if headers.contains("Content-Length") {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{gateway}\r\n{headers}{length}\r\n");
    tls.write_all(req.as_bytes()).unwrap();
    // A refusal may come before the body is read; the connection then closes.
    let _ = tls.write_all(body);
    let _ = tls.flush();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    Reply {
        status: head[9..12].parse().unwrap(),
        head: head.to_string(),
        body: serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    }
}

/// The console's overview, with the session cookie in `with_cookie` (a header line).
fn overview(gateway: u16, pin: [u8; 32], with_cookie: &str) -> Reply {
    request(
        gateway,
        pin,
        "GET",
        "/console/api/overview",
        with_cookie,
        "",
    )
}

fn add_moderator(cfg: &Path, name: &str, password: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stage-server"))
        .args(["--config"])
        .arg(cfg)
        .args(["user", "add", name, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    assert!(child.wait().unwrap().success());
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stagebox-console-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn extra(dir: &Path) -> String {
    format!(
        "[console]\naccounts = \"{}/accounts.json\"\n",
        dir.display()
    )
}

fn login(gateway: u16, pin: [u8; 32], name: &str, password: &str) -> Reply {
    let body = serde_json::json!({ "name": name, "password": password }).to_string();
    request(gateway, pin, "POST", "/console/api/login", "", &body)
}

fn cookie_of(reply: &Reply) -> String {
    let line = reply
        .head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap();
    let value = line.split_once(':').unwrap().1.trim();
    value.split(';').next().unwrap().to_string()
}

#[test]
fn a_moderator_signs_in_sees_the_queue_and_invites_and_forgeries_change_nothing() {
    let dir = scratch("invite");
    let (_server, gateway, pin) = start_with(&dir, &extra(&dir));
    add_moderator(&dir.join("server.toml"), "ana", "a long stage password");

    // A station raises its hand.
    let mut station = connect(gateway, pin);
    assert!(matches!(
        expect_server_msg(&mut station),
        ServerMsg::Hello { .. }
    ));
    station
        .send(Message::text(identify_good().to_json()))
        .unwrap();
    station
        .send(Message::text(
            ClientMsg::RaiseHand { raised: true }.to_json(),
        ))
        .unwrap();

    // Nothing without a session.
    assert_eq!(overview(gateway, pin, "").status, 401);
    let invite = r#"{"action":"invite","stage":"hall","station":"good"}"#;
    let anonymous = request(gateway, pin, "POST", "/console/api/action", "", invite);
    assert_eq!(anonymous.status, 401);

    assert_eq!(login(gateway, pin, "ana", "not the password").status, 401);
    assert_eq!(
        login(gateway, pin, "nobody", "a long stage password").status,
        401
    );
    let signed_in = login(gateway, pin, "ana", "a long stage password");
    assert_eq!(signed_in.status, 200, "{}", signed_in.head);
    let set_cookie = signed_in
        .head
        .lines()
        .find(|l| l.starts_with("Set-Cookie:"))
        .unwrap();
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = cookie_of(&signed_in);
    let csrf = signed_in.body["csrf"].as_str().unwrap().to_string();
    let with_cookie = format!("Cookie: {cookie}\r\n");

    // The hand is in the queue.
    let mut hands = serde_json::Value::Null;
    for _ in 0..50 {
        let o = overview(gateway, pin, &with_cookie);
        assert_eq!(o.status, 200);
        hands = o.body["stages"][0]["hands"].clone();
        if hands == serde_json::json!(["good"]) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(hands, serde_json::json!(["good"]));

    // Forged or missing CSRF tokens and other sites' requests change nothing.
    let forged = [
        format!("{with_cookie}X-CSRF-Token: {}\r\n", "0".repeat(64)),
        with_cookie.clone(),
        format!("{with_cookie}X-CSRF-Token: {csrf}\r\nOrigin: https://evil.example\r\n"),
    ];
    for headers in &forged {
        let r = request(gateway, pin, "POST", "/console/api/action", headers, invite);
        assert_eq!(r.status, 403, "{headers}");
    }
    let o = overview(gateway, pin, &with_cookie);
    assert_eq!(o.body["stages"][0]["members"][0]["invited"], false);

    // The real thing: the station is told it is invited.
    let good =
        format!("{with_cookie}X-CSRF-Token: {csrf}\r\nOrigin: https://127.0.0.1:{gateway}\r\n");
    let r = request(gateway, pin, "POST", "/console/api/action", &good, invite);
    assert_eq!(r.status, 200, "{:?}", r.body);
    let invited = (0..20).any(|_| {
        matches!(expect_server_msg(&mut station), ServerMsg::MemberUpdate(m) if m.station_id == "good" && m.invited)
    });
    assert!(invited, "the station never heard of its invitation");

    // The console runs stages, not the server: no reconnect orders through it.
    let reconnect = r#"{"action":"reconnect","station":"good"}"#;
    let r = request(
        gateway,
        pin,
        "POST",
        "/console/api/action",
        &good,
        reconnect,
    );
    assert_eq!(r.status, 400);

    // Signed out, the cookie is worth nothing.
    let r = request(gateway, pin, "POST", "/console/api/logout", &good, "");
    assert_eq!(r.status, 200);
    let r = overview(gateway, pin, &with_cookie);
    assert_eq!(r.status, 401);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn guessing_passwords_locks_the_account_and_names_stay_text() {
    let dir = scratch("guess");
    let links = "[[stage]]\nid = \"open\"\nlink = \"open-stage-link-0001\"\n";
    let (_server, gateway, pin) = start_with(&dir, &format!("{links}{}", extra(&dir)));
    add_moderator(&dir.join("server.toml"), "ana", "a long stage password");

    for _ in 0..5 {
        assert_eq!(login(gateway, pin, "ana", "guess").status, 401);
    }
    let locked = login(gateway, pin, "ana", "a long stage password");
    assert_eq!(locked.status, 429, "even the right password waits");
    assert!(locked.head.contains("Retry-After: "), "{}", locked.head);

    // A person whose name is markup: the overview gives it back as the same string.
    let mut web = connect(gateway, pin);
    assert!(matches!(
        expect_server_msg(&mut web),
        ServerMsg::Hello { .. }
    ));
    let name = "<img src=x onerror=alert(1)><script>alert(2)</script>";
    web.send(Message::text(
        ClientMsg::JoinWeb {
            v: 1,
            stage: "open".into(),
            link: "open-stage-link-0001".into(),
            name: name.into(),
        }
        .to_json(),
    ))
    .unwrap();
    assert!(matches!(
        expect_server_msg(&mut web),
        ServerMsg::WebReady { .. }
    ));

    add_moderator(&dir.join("server.toml"), "bo", "another long password");
    let signed_in = login(gateway, pin, "bo", "another long password");
    assert_eq!(signed_in.status, 200, "other accounts are not locked");
    let with_cookie = format!("Cookie: {}\r\n", cookie_of(&signed_in));
    let o = overview(gateway, pin, &with_cookie);
    let open = o.body["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "open")
        .unwrap()
        .clone();
    assert_eq!(open["members"][0]["name"], name);
    assert_eq!(open["members"][0]["kind"], "browser");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A WAV file: `seconds` of a 440 Hz tone, 48 kHz mono 16-bit.
fn tone_wav(seconds: f32) -> Vec<u8> {
    let samples = (48_000.0 * seconds) as u32;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + samples * 2).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&[1, 0, 1, 0]);
    w.extend_from_slice(&48_000u32.to_le_bytes());
    w.extend_from_slice(&96_000u32.to_le_bytes());
    w.extend_from_slice(&[2, 0, 16, 0]);
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(samples * 2).to_le_bytes());
    for i in 0..samples {
        let v = (f32::sin(i as f32 * 440.0 * std::f32::consts::TAU / 48_000.0) * 10_000.0) as i16;
        w.extend_from_slice(&v.to_le_bytes());
    }
    w
}

#[test]
fn the_soundboard_takes_a_clip_plays_it_and_refuses_what_it_should() {
    let dir = scratch("soundboard");
    let clips = format!("clips = \"{}/clips\"\n", dir.display());
    let (_server, gateway, pin) = start_with(&dir, &format!("{}{clips}", extra(&dir)));
    add_moderator(&dir.join("server.toml"), "ana", "a long stage password");
    let signed_in = login(gateway, pin, "ana", "a long stage password");
    let csrf = signed_in.body["csrf"].as_str().unwrap().to_string();
    let with_cookie = format!("Cookie: {}\r\n", cookie_of(&signed_in));
    let good = format!("{with_cookie}X-CSRF-Token: {csrf}\r\n");
    let wav = tone_wav(1.5);
    let upload = |headers: &str, path: &str, body: &[u8]| {
        request_bytes(gateway, pin, "POST", path, headers, body)
    };

    // Without a session or its CSRF token, the upload is refused from its head (its body,
    // short here, is drained so that the client reads the refusal).
    let short = tone_wav(0.2);
    assert_eq!(upload("", "/console/api/clips?name=x", &short).status, 401);
    assert_eq!(
        upload(&with_cookie, "/console/api/clips?name=x", &short).status,
        403
    );
    // Too large (said by its head alone), not audio, unnamed: refused with a reason.
    let too_large = format!(
        "{good}Content-Length: {}\r\n",
        stagebox_stage_server::clips::MAX_CLIP_BYTES + 1
    );
    let r = request_bytes(
        gateway,
        pin,
        "POST",
        "/console/api/clips?name=x",
        &too_large,
        b"",
    );
    assert_eq!(r.status, 400);
    let not_audio = upload(&good, "/console/api/clips?name=x", b"%PDF-1.7 not a sound");
    assert_eq!(not_audio.status, 400);
    assert!(not_audio.body["error"].as_str().unwrap().contains("WAV"));
    assert_eq!(upload(&good, "/console/api/clips", &wav).status, 400);

    let added = upload(
        &good,
        "/console/api/clips?name=Big%20applause%20%3Cb%3E",
        &wav,
    );
    assert_eq!(added.status, 200, "{:?}", added.body);
    assert_eq!(added.body["name"], "Big applause <b>");
    assert_eq!(added.body["seconds"], 1.5);
    let id = added.body["id"].as_str().unwrap().to_string();
    let list = request(gateway, pin, "GET", "/console/api/clips", &with_cookie, "");
    assert_eq!(list.body["clips"][0]["id"], id.as_str());

    // Played into the stage: the overview says so, until it is stopped.
    let play = format!(r#"{{"stage":"hall","clip":"{id}"}}"#);
    let r = request(gateway, pin, "POST", "/console/api/play", &good, &play);
    assert_eq!(r.status, 200, "{:?}", r.body);
    let o = overview(gateway, pin, &with_cookie);
    assert_eq!(o.body["stages"][0]["clip_playing"][0], "Big applause <b>");
    let r = request(
        gateway,
        pin,
        "POST",
        "/console/api/stop",
        &good,
        r#"{"stage":"hall"}"#,
    );
    assert_eq!(r.status, 200);
    let o = overview(gateway, pin, &with_cookie);
    assert!(o.body["stages"][0]["clip_playing"].is_null());
    let unknown = r#"{"stage":"hall","clip":"nope"}"#;
    let r = request(gateway, pin, "POST", "/console/api/play", &good, unknown);
    assert_eq!(r.status, 404);

    let remove = format!(r#"{{"id":"{id}"}}"#);
    let r = request(
        gateway,
        pin,
        "POST",
        "/console/api/clips/remove",
        &good,
        &remove,
    );
    assert_eq!(r.status, 200);
    let list = request(gateway, pin, "GET", "/console/api/clips", &with_cookie, "");
    assert_eq!(list.body["clips"], serde_json::json!([]));
    std::fs::remove_dir_all(&dir).unwrap();
}
