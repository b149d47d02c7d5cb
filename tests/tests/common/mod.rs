//! What the system tests share: the real `stage-server` and `stationd` binaries, a stage
//! directory with their configurations on a loopback address, and the moderator's and the
//! stations' control interfaces.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const ADMIN_TOKEN: &str = "system-test-admin-token-42";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the binaries (a no-op when `cargo test` already built them) and returns their
/// directory.
pub fn binaries() -> PathBuf {
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
            "-p",
            "stagebox-consoled",
            "-p",
            "stagebox-diag",
        ])
        .status()
        .unwrap();
    assert!(status.success(), "building the binaries failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| workspace().join("target"), PathBuf::from);
    target.join("debug")
}

/// Runs test `inner` of this test binary again inside namespaces of its own (`unshare` with
/// `flags`, in a user namespace so no root is needed), with `marker` set in its environment;
/// fails unless it passed. Returns what it printed.
pub fn rerun_in_namespaces(flags: &[&str], inner: &str, marker: &str) -> String {
    // Build first, outside: the inner run has no network.
    binaries();
    let output = Command::new("unshare")
        .arg("--map-root-user")
        .args(flags)
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", inner, "--ignored", "--nocapture"])
        .env(marker, "1")
        .output()
        .expect("unshare (util-linux)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && text.contains("1 passed"),
        "{inner} failed in its namespaces:\n{text}"
    );
    text
}

/// A child process, killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_tcp(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp(ip: IpAddr) -> u16 {
    std::net::UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A stage served on one loopback address: stage `hall`, stations `a` and `b`.
pub struct Stage {
    pub bin: PathBuf,
    pub dir: PathBuf,
    pub ip: IpAddr,
    pub gateway: u16,
    pub admin_port: u16,
    pub server_cfg: PathBuf,
}

impl Stage {
    pub fn new(name: &str, ip: IpAddr) -> Stage {
        let bin = binaries();
        let dir = std::env::temp_dir().join(format!("stagebox-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (gateway, media, admin_port) = (free_tcp(ip), free_udp(ip), free_tcp(ip));
        let at = |port| SocketAddr::new(ip, port);
        let server_cfg = dir.join("server.toml");
        std::fs::write(
            &server_cfg,
            format!(
                "[listen]\ngateway = \"{}\"\nmedia = \"{}\"\nadmin = \"{}\"\n\
                 [tls]\ncert = \"{d}/cert.pem\"\nkey = \"{d}/key.pem\"\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n\
                 [[stage]]\nid = \"hall\"\n\
                 [[station]]\nid = \"a\"\ntoken = \"token-a-123\"\n[[station]]\nid = \"b\"\ntoken = \"token-b-123\"\n",
                at(gateway),
                at(media),
                at(admin_port),
                d = dir.display()
            ),
        )
        .unwrap();
        Stage {
            bin,
            dir,
            ip,
            gateway,
            admin_port,
            server_cfg,
        }
    }

    /// Advertises `host` (a name, say) as the media server's address instead of its IP.
    pub fn advertise_media_host(&self, host: &str) {
        let cfg = std::fs::read_to_string(&self.server_cfg).unwrap();
        let cfg = cfg.replacen(
            "[listen]\n",
            &format!("[listen]\nmedia_public_host = \"{host}\"\n"),
            1,
        );
        std::fs::write(&self.server_cfg, cfg).unwrap();
    }

    /// Starts the server; returns once it has printed its certificate's fingerprint.
    pub fn start_server(&self, log_name: &str) -> Proc {
        let mut child = Command::new(self.bin.join("stage-server"))
            .arg("--config")
            .arg(&self.server_cfg)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.dir.join(log_name)).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("pin_sha256"), "server said {line:?}");
        Proc(child)
    }

    /// The fingerprint the server wrote next to its certificate.
    pub fn pin(&self) -> String {
        std::fs::read_to_string(self.dir.join("cert.sha256"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Starts station `id` pinned to `pin`, with `mic_wav` as its microphone; returns the
    /// process and its control socket. Its log is `<id>.log` in the stage directory.
    pub fn start_station(&self, id: &str, pin: &str, mic_wav: Option<&Path>) -> (Proc, PathBuf) {
        self.start_station_with(id, pin, mic_wav, "", "")
    }

    /// [`Stage::start_station`] with extra lines in its `[sim]` and `[audio]` sections.
    pub fn start_station_with(
        &self,
        id: &str,
        pin: &str,
        mic_wav: Option<&Path>,
        sim: &str,
        audio: &str,
    ) -> (Proc, PathBuf) {
        self.start_station_env(id, pin, mic_wav, sim, audio, &[])
    }

    /// [`Stage::start_station_with`], with extra environment variables.
    pub fn start_station_env(
        &self,
        id: &str,
        pin: &str,
        mic_wav: Option<&Path>,
        sim: &str,
        audio: &str,
        env: &[(&str, &str)],
    ) -> (Proc, PathBuf) {
        let gateway = SocketAddr::new(self.ip, self.gateway);
        let mic = mic_wav.map_or(String::new(), |p| {
            format!("mic_wav = \"{}\"\n", p.display())
        });
        let cfg = self.dir.join(format!("{id}.toml"));
        let sock = self.dir.join(format!("{id}.sock"));
        std::fs::write(
            &cfg,
            format!(
                "[station]\nid = \"{id}\"\ntoken = \"token-{id}-123\"\n\
                 [server]\ngateway = \"wss://{gateway}/signal\"\nstage = \"hall\"\npin_sha256 = \"{pin}\"\n\
                 [board]\nprofile = \"sim\"\n\
                 [audio]\n{audio}\n\
                 [sim]\n{mic}control_socket = \"{}\"\ndraw_leds = false\n{sim}\n",
                sock.display()
            ),
        )
        .unwrap();
        let child = Command::new(self.bin.join("stationd"))
            .envs(env.iter().copied())
            .arg("--config")
            .arg(&cfg)
            .stderr(std::fs::File::create(self.dir.join(format!("{id}.log"))).unwrap())
            .spawn()
            .unwrap();
        (Proc(child), sock)
    }

    /// A moderator's request to the admin interface: the reply's JSON (a refusal's too),
    /// `Null` when it is not JSON.
    pub fn admin(&self, body: Value) -> std::io::Result<Value> {
        let addr = SocketAddr::new(self.ip, self.admin_port);
        let reply = match stagebox_admin_client::request(addr, ADMIN_TOKEN, &body.to_string()) {
            Ok(reply) => reply,
            Err(stagebox_admin_client::AdminError::Refused { body, .. }) => body,
            Err(stagebox_admin_client::AdminError::Io(e)) => return Err(e),
            Err(stagebox_admin_client::AdminError::Malformed) => return Ok(Value::Null),
        };
        Ok(serde_json::from_str(&reply).unwrap_or(Value::Null))
    }

    /// Whether the server has exactly `n` members in `hall`, all connected.
    pub fn all_connected(&self, n: usize) -> bool {
        let Ok(s) = self.admin(json!({"action": "stage", "stage": "hall"})) else {
            return false;
        };
        s["members"]
            .as_array()
            .is_some_and(|m| m.len() == n && m.iter().all(|m| m["connected"] == true))
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn control(socket: &Path, command: &str) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    // A wait, not a measure: `stall 4000` answers after 4 s, later on a loaded machine.
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    writeln!(s, "{command}").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

pub fn stats(socket: &Path) -> Value {
    serde_json::from_str(&control(socket, "stats")).unwrap()
}

pub fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

/// A two-tone test signal standing in for speech.
pub fn write_speech(path: &Path) {
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

/// The moderator invites A; A accepts with PTT, holds it and talks; B receives A's audio.
pub fn a_talks_and_b_hears(stage: &Stage, a: &Path, b: &Path) {
    stage
        .admin(json!({"action": "invite", "stage": "hall", "station": "a"}))
        .unwrap();
    wait_until("A's invitation", Duration::from_secs(5), || {
        stats(a)["led"] == "invited"
    });
    control(a, "ptt click");
    wait_until("A to become a speaker", Duration::from_secs(5), || {
        stats(a)["led"] == "speaker"
    });
    // Like a person, pause after the accepting click (a second press soon after latches).
    std::thread::sleep(Duration::from_millis(500));
    control(a, "ptt down");
    control(a, "mic play");
    wait_until("B to receive A's audio", Duration::from_secs(10), || {
        stats(b)["media"]["rtp_received"].as_u64().unwrap_or(0) >= 50
    });
    assert_eq!(stats(a)["led"], "live");
    control(a, "ptt up");
    wait_until("A to stop", Duration::from_secs(5), || {
        stats(a)["led"] == "speaker"
    });
}

/// Asks each station to quit and checks that it exits cleanly.
pub fn quit_all(stations: Vec<(Proc, PathBuf)>) {
    for (_, sock) in &stations {
        control(sock, "quit");
    }
    for (mut p, _) in stations {
        let status = p.0.wait().unwrap();
        assert!(status.success(), "station exited with {status}");
    }
}
