//! System test: the real `stage-server` and two real `stationd` processes over loopback.
//! Station A is invited, talks, and B receives its audio; then the server process is killed
//! and started again, and both stations must rejoin by themselves (their sessions died with
//! the server, so resume is refused and they identify afresh).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "system-test-admin-token-42";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the two binaries (a no-op when `cargo test` already built them) and returns their
/// directory.
fn binaries() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace())
        .args([
            "build",
            "--quiet",
            "-p",
            "stagebox-stationd",
            "-p",
            "stagebox-stage-server",
        ])
        .status()
        .unwrap();
    assert!(status.success(), "building the binaries failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| workspace().join("target"), PathBuf::from);
    target.join("debug")
}

struct Proc(Child);

impl Drop for Proc {
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

fn udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn admin(port: u16, body: Value) -> std::io::Result<Value> {
    let body = body.to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "POST /admin HTTP/1.1\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    let (_, json_body) = reply.split_once("\r\n\r\n").unwrap_or(("", "null"));
    Ok(serde_json::from_str(json_body).unwrap_or(Value::Null))
}

fn control(socket: &Path, command: &str) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    writeln!(s, "{command}").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

fn stats(socket: &Path) -> Value {
    serde_json::from_str(&control(socket, "stats")).unwrap()
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

fn start_server(bin: &Path, cfg: &Path, log: &Path) -> Proc {
    let mut child = Command::new(bin.join("stage-server"))
        .arg("--config")
        .arg(cfg)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("pin_sha256"), "server said {line:?}");
    Proc(child)
}

/// A two-tone test signal standing in for speech.
fn write_speech(path: &Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..48_000 * 2 {
        let t = i as f32 / 48_000.0;
        let s = 5000.0 * (2.0 * std::f32::consts::PI * 220.0 * t).sin()
            + 3000.0 * (2.0 * std::f32::consts::PI * 660.0 * t).sin();
        w.write_sample(s as i16).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn stations_talk_through_the_server_and_rejoin_after_it_restarts() {
    let bin = binaries();
    let dir = std::env::temp_dir().join(format!("stagebox-system-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let speech = dir.join("speech.wav");
    write_speech(&speech);

    let (gateway, media, admin_port) = (port(), udp_port(), port());
    let server_cfg = dir.join("server.toml");
    std::fs::write(
        &server_cfg,
        format!(
            "[listen]\ngateway = \"127.0.0.1:{gateway}\"\nmedia = \"127.0.0.1:{media}\"\nadmin = \"127.0.0.1:{admin_port}\"\n\
             [tls]\ncert = \"{d}/cert.pem\"\nkey = \"{d}/key.pem\"\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n\
             [[stage]]\nid = \"hall\"\n\
             [[station]]\nid = \"a\"\ntoken = \"token-a-123\"\n[[station]]\nid = \"b\"\ntoken = \"token-b-123\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let mut server = start_server(&bin, &server_cfg, &dir.join("server-1.log"));
    let pin = std::fs::read_to_string(dir.join("cert.sha256")).unwrap();

    let mut stations = Vec::new();
    for id in ["a", "b"] {
        let cfg = dir.join(format!("{id}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[station]\nid = \"{id}\"\ntoken = \"token-{id}-123\"\n\
                 [server]\ngateway = \"wss://127.0.0.1:{gateway}/signal\"\nstage = \"hall\"\npin_sha256 = \"{}\"\n\
                 [board]\nprofile = \"sim\"\n\
                 [sim]\nmic_wav = \"{}\"\ncontrol_socket = \"{d}/{id}.sock\"\ndraw_leds = false\n",
                pin.trim(),
                speech.display(),
                d = dir.display()
            ),
        )
        .unwrap();
        let child = Command::new(bin.join("stationd"))
            .arg("--config")
            .arg(&cfg)
            .stderr(std::fs::File::create(dir.join(format!("{id}.log"))).unwrap())
            .spawn()
            .unwrap();
        stations.push(Proc(child));
    }
    let (sa, sb) = (dir.join("a.sock"), dir.join("b.sock"));
    wait_until("both stations to join", Duration::from_secs(20), || {
        sa.exists()
            && sb.exists()
            && stats(&sa)["led"] == "audience"
            && stats(&sb)["led"] == "audience"
    });

    // A is invited, accepts, and talks; B hears it.
    admin(
        admin_port,
        json!({"action": "invite", "stage": "hall", "station": "a"}),
    )
    .unwrap();
    wait_until("A's invitation", Duration::from_secs(5), || {
        stats(&sa)["led"] == "invited"
    });
    control(&sa, "ptt click");
    wait_until("A to become a speaker", Duration::from_secs(5), || {
        stats(&sa)["led"] == "speaker"
    });
    std::thread::sleep(Duration::from_millis(500));
    control(&sa, "ptt down");
    control(&sa, "mic play");
    wait_until("B to receive A's audio", Duration::from_secs(10), || {
        stats(&sb)["media"]["rtp_received"].as_u64().unwrap_or(0) >= 50
    });
    assert_eq!(stats(&sa)["led"], "live");
    control(&sa, "ptt up");
    wait_until("A to stop", Duration::from_secs(5), || {
        stats(&sa)["led"] == "speaker"
    });

    // The server dies and comes back: both stations rejoin by themselves.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    wait_until("the stations to notice", Duration::from_secs(10), || {
        stats(&sa)["led"] == "reconnecting" && stats(&sb)["led"] == "reconnecting"
    });
    drop(server);
    let restart = Instant::now();
    let _server = start_server(&bin, &server_cfg, &dir.join("server-2.log"));
    wait_until("both stations to rejoin", Duration::from_secs(20), || {
        let Ok(s) = admin(admin_port, json!({"action": "stage", "stage": "hall"})) else {
            return false;
        };
        s["members"]
            .as_array()
            .is_some_and(|m| m.len() == 2 && m.iter().all(|m| m["connected"] == true))
    });
    let rejoin = restart.elapsed();
    for s in [&sa, &sb] {
        let st = stats(s);
        assert_eq!(st["session"]["established"], 2, "{st}");
        assert_eq!(
            st["led"], "audience",
            "a new server session starts in the audience"
        );
    }
    // A fresh session starts back in the audience (the old server's state is gone).
    println!(
        "rejoined {:.0} ms after the server restarted",
        rejoin.as_secs_f64() * 1000.0
    );
    for s in [&sa, &sb] {
        control(s, "quit");
    }
    for mut p in stations {
        let status = p.0.wait().unwrap();
        assert!(status.success(), "station exited with {status}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_wrong_certificate_pin_shows_an_error_and_names_both_fingerprints() {
    let bin = binaries();
    let dir = std::env::temp_dir().join(format!("stagebox-system-pin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (gateway, media, admin_port) = (port(), udp_port(), port());
    let server_cfg = dir.join("server.toml");
    std::fs::write(
        &server_cfg,
        format!(
            "[listen]\ngateway = \"127.0.0.1:{gateway}\"\nmedia = \"127.0.0.1:{media}\"\nadmin = \"127.0.0.1:{admin_port}\"\n\
             [tls]\ncert = \"{d}/cert.pem\"\nkey = \"{d}/key.pem\"\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n\
             [[stage]]\nid = \"hall\"\n[[station]]\nid = \"a\"\ntoken = \"token-a-123\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let _server = start_server(&bin, &server_cfg, &dir.join("server.log"));
    let real_pin = std::fs::read_to_string(dir.join("cert.sha256")).unwrap();
    let wrong_pin = "00".repeat(32);
    assert_ne!(real_pin.trim(), wrong_pin);
    let cfg = dir.join("a.toml");
    std::fs::write(
        &cfg,
        format!(
            "[station]\nid = \"a\"\ntoken = \"token-a-123\"\n\
             [server]\ngateway = \"wss://127.0.0.1:{gateway}/signal\"\nstage = \"hall\"\npin_sha256 = \"{wrong_pin}\"\n\
             [board]\nprofile = \"sim\"\n\
             [sim]\ncontrol_socket = \"{d}/a.sock\"\ndraw_leds = false\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let log = dir.join("a.log");
    let mut station = Proc(
        Command::new(bin.join("stationd"))
            .arg("--config")
            .arg(&cfg)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let sock = dir.join("a.sock");
    wait_until(
        "the station to show an error",
        Duration::from_secs(20),
        || sock.exists() && stats(&sock)["led"] == "error",
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(real_pin.trim()) && text.contains(&wrong_pin) && text.contains("pin_sha256"),
        "the log must name the server's fingerprint, the pinned one and the setting:\n{text}"
    );
    // The server never saw a login: the station stopped at TLS.
    let s = admin(admin_port, json!({"action": "stage", "stage": "hall"})).unwrap();
    assert!(s["members"].as_array().is_none_or(|m| m.is_empty()), "{s}");
    control(&sock, "quit");
    let status = station.0.wait().unwrap();
    assert!(status.success(), "station exited with {status}");
    let _ = std::fs::remove_dir_all(&dir);
}
