//! The real station's update path on loopback: an update source played by the test (HTTPS
//! with the stage server's own certificate, so the station trusts it exactly as it trusts
//! its gateway), the real stage server for the admin view, and stand-ins for RAUC's and
//! systemd's commands that record what they were asked (the real RAUC is exercised by the
//! image test under qemu).
//!
//! A source that lies — missing, garbage, endless, signed by another key, for another board,
//! a bundle whose hash is wrong — changes nothing and is reported. A good update is
//! downloaded (resuming a broken transfer), installed while a speaker is live, and the reboot
//! waits until they stop; the new version's first boot is a trial that marks the slot good
//! once it has joined; a version that rolled back is reported and never installed again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use common::{Stage, control, stats, wait_until};
use serde_json::{Value, json};

/// What the source serves at a path.
#[derive(Clone)]
struct Route {
    body: Vec<u8>,
    /// Cut the connection after this many body bytes, once.
    cut_once_after: Option<usize>,
}

/// An HTTPS static server with the stage server's certificate. Serves `Range` requests.
struct Source {
    port: u16,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    /// Ranges asked for, as `path from`.
    asked: Arc<Mutex<Vec<String>>>,
}

impl Source {
    fn start(stage_dir: &Path) -> Source {
        let cfg = stagebox_stage_server::config::Tls {
            cert: stage_dir.join("cert.pem"),
            key: stage_dir.join("key.pem"),
            names: vec!["127.0.0.1".into()],
        };
        let (tls, _pin) = stagebox_stage_server::cert::server_tls(&cfg).unwrap();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes: Arc<Mutex<HashMap<String, Route>>> = Arc::default();
        let asked: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r, a) = (routes.clone(), asked.clone());
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let (tls, r, a) = (tls.clone(), r.clone(), a.clone());
                std::thread::spawn(move || serve(tcp, tls, &r, &a));
            }
        });
        Source {
            port,
            routes,
            asked,
        }
    }

    fn set(&self, path: &str, body: Vec<u8>, cut_once_after: Option<usize>) {
        self.routes.lock().unwrap().insert(
            path.into(),
            Route {
                body,
                cut_once_after,
            },
        );
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }
}

fn serve(
    tcp: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    routes: &Mutex<HashMap<String, Route>>,
    asked: &Mutex<Vec<String>>,
) {
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = rustls::ServerConnection::new(tls).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).unwrap_or(0) == 0 || head.len() > 8192 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
    let from: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Range: bytes="))
        .and_then(|r| r.trim_end_matches('-').parse().ok())
        .unwrap_or(0);
    asked.lock().unwrap().push(format!("{path} {from}"));
    let route = {
        let mut routes = routes.lock().unwrap();
        let route = routes.get(&path).cloned();
        if let Some(r) = routes.get_mut(&path) {
            r.cut_once_after = None;
        }
        route
    };
    let Some(route) = route else {
        let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        s.conn.send_close_notify();
        let _ = s.flush();
        return;
    };
    let total = route.body.len();
    let from = from.min(total);
    let status = if from > 0 {
        format!(
            "206 Partial Content\r\nContent-Range: bytes {from}-{}/{total}",
            total - 1
        )
    } else {
        "200 OK".into()
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        total - from
    );
    if s.write_all(header.as_bytes()).is_err() {
        return;
    }
    let body = &route.body[from..];
    let body = match route.cut_once_after {
        Some(n) => &body[..n.min(body.len())],
        None => body,
    };
    let _ = s.write_all(body);
    if route.cut_once_after.is_none() {
        s.conn.send_close_notify();
    }
    let _ = s.flush();
    // A cut: the TCP connection just ends, short of the announced length.
}

struct Release {
    key: Ed25519KeyPair,
}

impl Release {
    fn new(seed: u8) -> Release {
        Release {
            key: Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap(),
        }
    }

    fn public_hex(&self) -> String {
        hex::encode(self.key.public_key().as_ref())
    }

    /// A manifest for `bundle` at `url`, as `stagebox-release manifest` writes one.
    fn manifest(
        &self,
        board: &str,
        version: &str,
        url: &str,
        bundle: &[u8],
        expires: u64,
    ) -> Vec<u8> {
        let sha =
            hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bundle).as_ref());
        let payload = json!({
            "board": board, "version": version, "bundle_url": url,
            "bundle_sha256": sha, "bundle_size": bundle.len(), "expires": expires,
            "issued": expires - 86_400,
        })
        .to_string();
        let signature = hex::encode(self.key.sign(payload.as_bytes()).as_ref());
        json!({"payload": payload, "signature": signature})
            .to_string()
            .into_bytes()
    }
}

fn in_a_day() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 86_400
}

/// A stand-in command that appends its name (and, for the installer, the bundle's SHA-256)
/// to `calls`.
fn recorder(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.sh"));
    let calls = dir.join("calls");
    let body = if name == "install" {
        format!(
            "#!/bin/sh\necho \"install $(sha256sum \"$1\" | cut -d' ' -f1)\" >> {}\n",
            calls.display()
        )
    } else {
        format!("#!/bin/sh\necho {name} >> {}\n", calls.display())
    };
    std::fs::write(&path, body).unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&path)
        .status()
        .unwrap();
    path
}

fn calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("calls"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Station `a`'s entry in the admin view.
fn firmware(stage: &Stage) -> Value {
    let view = stage.admin(json!({"action": "stations"})).unwrap();
    view["stations"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["station_id"] == "a").cloned())
        .map_or(Value::Null, |s| s["firmware"].clone())
}

fn problem(stage: &Stage) -> String {
    firmware(stage)["last_problem"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_lying_source_changes_nothing_and_a_good_update_waits_for_the_speaker() {
    let stage = Stage::new("update", IpAddr::V4(Ipv4Addr::LOCALHOST));
    let _server = stage.start_server("server.log");
    let pin = stage.pin();
    let source = Source::start(&stage.dir);
    let release = Release::new(7);
    let update_dir = stage.dir.join("data-update");
    let version_file = stage.dir.join("version");
    let marked = stage.dir.join("run-marked-good");
    std::fs::write(&version_file, "1.0.0\n").unwrap();
    let section = format!(
        "\n[update]\nmanifest_url = \"{}\"\nkeys = [\"{}\"]\nretry_after_s = 10\n\
         dir = \"{}\"\nversion_file = \"{}\"\nmarked_file = \"{}\"\n\
         install_command = [\"{}\"]\nmark_good_command = [\"{}\"]\n\
         mark_active_command = [\"{}\"]\nreboot_command = [\"{}\"]\n",
        source.url("/stagebox/manifest.json"),
        release.public_hex(),
        update_dir.display(),
        version_file.display(),
        marked.display(),
        recorder(&stage.dir, "install").display(),
        recorder(&stage.dir, "mark-good").display(),
        recorder(&stage.dir, "mark-active").display(),
        recorder(&stage.dir, "reboot").display(),
    );
    // The `[update]` section follows the `[sim]` lines.
    let start = || stage.start_station_with("a", &pin, None, &section, "");
    let (station, sock) = start();

    // A proven slot: marked good once its audio runs, and only once in this boot.
    wait_until(
        "the slot to be marked good",
        Duration::from_secs(20),
        || calls(&stage.dir) == ["mark-good"],
    );
    wait_until(
        "the admin view to show 1.0.0",
        Duration::from_secs(20),
        || firmware(&stage)["running"] == "1.0.0",
    );
    // No manifest yet: the source answers 404, said plainly.
    wait_until("the first check to fail", Duration::from_secs(20), || {
        problem(&stage).contains("HTTP 404")
    });

    let bundle: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let bundle_url = source.url("/stagebox/stagebox-qemu-1.1.0.raucb");
    let mut flipped = bundle.clone();
    flipped[1_234_567] ^= 1;
    let lies: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage JSON", b"{\"payload\": [1, 2".to_vec(), "not valid"),
        (
            "an endless manifest",
            vec![b' '; 200_000],
            "more than 65536 bytes",
        ),
        (
            "another key",
            Release::new(8).manifest("sim", "1.1.0", &bundle_url, &bundle, in_a_day()),
            "no trusted key",
        ),
        (
            "another board",
            release.manifest("pi4", "1.1.0", &bundle_url, &bundle, in_a_day()),
            "board",
        ),
        (
            "an expired manifest",
            release.manifest("sim", "1.1.0", &bundle_url, &bundle, 1_000_000),
            "expired",
        ),
        (
            "a bundle whose hash is not the one signed",
            release.manifest("sim", "1.1.0", &bundle_url, &flipped, in_a_day()),
            "SHA-256",
        ),
        (
            "a bundle longer than the one signed for",
            release.manifest("sim", "1.1.0", &bundle_url, &bundle[1..], in_a_day()),
            "is 3000000 bytes, the manifest says 2999999",
        ),
    ];
    source.set("/stagebox/stagebox-qemu-1.1.0.raucb", bundle.clone(), None);
    for (what, manifest, said) in lies {
        source.set("/stagebox/manifest.json", manifest, None);
        assert!(control(&sock, "update check").contains("true"));
        wait_until(what, Duration::from_secs(20), || {
            problem(&stage).contains(said)
        });
        assert_eq!(
            calls(&stage.dir),
            ["mark-good"],
            "{what}: nothing installed"
        );
    }
    let fw = firmware(&stage);
    assert_eq!(
        (fw["running"].as_str(), fw["update"].as_str()),
        (Some("1.0.0"), Some("idle"))
    );

    // A good update while A speaks: invited, accepted, live.
    stage
        .admin(json!({"action": "invite", "stage": "hall", "station": "a"}))
        .unwrap();
    wait_until("A's invitation", Duration::from_secs(5), || {
        stats(&sock)["led"] == "invited"
    });
    control(&sock, "ptt click");
    wait_until("A to speak", Duration::from_secs(5), || {
        stats(&sock)["led"] == "speaker"
    });
    std::thread::sleep(Duration::from_millis(500));
    control(&sock, "ptt down");
    wait_until("A to be live", Duration::from_secs(5), || {
        stats(&sock)["led"] == "live"
    });
    // The transfer breaks after 1 MB, once: the download resumes from what was kept.
    source.set(
        "/stagebox/stagebox-qemu-1.1.0.raucb",
        bundle.clone(),
        Some(1_000_000),
    );
    source.set(
        "/stagebox/manifest.json",
        release.manifest("sim", "1.1.0", &bundle_url, &bundle, in_a_day()),
        None,
    );
    control(&sock, "update check");
    let sha = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bundle).as_ref());
    wait_until(
        "the resumed download to be installed",
        Duration::from_secs(40),
        || calls(&stage.dir).contains(&format!("install {sha}")),
    );
    let asked = source.asked.lock().unwrap().clone();
    let resumed_at = asked
        .iter()
        .filter_map(|a| a.strip_prefix("/stagebox/stagebox-qemu-1.1.0.raucb "))
        .filter_map(|from| from.parse::<u64>().ok())
        .max()
        .unwrap();
    assert!(
        (900_000..=1_000_000).contains(&resumed_at),
        "the second request resumed at {resumed_at}: {asked:?}"
    );
    wait_until(
        "the admin view to say it waits",
        Duration::from_secs(10),
        || {
            let fw = firmware(&stage);
            fw["update"] == "awaiting_reboot" && fw["target"] == "1.1.0"
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !calls(&stage.dir).contains(&"reboot".to_string()),
        "rebooted a live speaker"
    );
    assert_eq!(stats(&sock)["led"], "live", "the LEDs never hide live");
    control(&sock, "ptt up");
    wait_until("the reboot once A stops", Duration::from_secs(10), || {
        calls(&stage.dir).contains(&"reboot".to_string())
    });
    let trial: Value =
        serde_json::from_slice(&std::fs::read(update_dir.join("trial.json")).unwrap()).unwrap();
    assert_eq!(trial["version"], "1.1.0");
    drop(station);

    // The new version's first boot (the marker on the tmpfs is gone): a trial, marked good
    // once it has joined.
    std::fs::write(&version_file, "1.1.0\n").unwrap();
    std::fs::remove_file(&marked).unwrap();
    std::fs::write(stage.dir.join("calls"), "").unwrap();
    let (station, _sock) = start();
    wait_until("the trial to pass", Duration::from_secs(20), || {
        calls(&stage.dir) == ["mark-good"]
    });
    wait_until("the trial to be over", Duration::from_secs(5), || {
        !update_dir.join("trial.json").exists()
    });
    wait_until(
        "the admin view to show 1.1.0",
        Duration::from_secs(20),
        || firmware(&stage)["running"] == "1.1.0",
    );
    drop(station);

    // A boot where 1.2.0's trial failed and the boot loader went back to 1.1.0.
    std::fs::write(
        update_dir.join("trial.json"),
        json!({"version": "1.2.0", "from": "1.1.0", "boot_id": "an-earlier-boot"}).to_string(),
    )
    .unwrap();
    std::fs::remove_file(&marked).unwrap();
    let bundle_v12 = source.url("/stagebox/stagebox-qemu-1.2.0.raucb");
    source.set("/stagebox/stagebox-qemu-1.2.0.raucb", bundle.clone(), None);
    source.set(
        "/stagebox/manifest.json",
        release.manifest("sim", "1.2.0", &bundle_v12, &bundle, in_a_day()),
        None,
    );
    source.asked.lock().unwrap().clear();
    let (_station, sock) = start();
    wait_until(
        "the rollback to be reported",
        Duration::from_secs(20),
        || problem(&stage).contains("1.2.0 did not prove itself"),
    );
    for checks in 1..=2 {
        control(&sock, "update check");
        wait_until("the manifest to be read", Duration::from_secs(20), || {
            source.asked.lock().unwrap().len() >= checks
        });
    }
    std::thread::sleep(Duration::from_secs(1));
    let asked = source.asked.lock().unwrap().clone();
    assert!(
        asked
            .iter()
            .all(|a| a.starts_with("/stagebox/manifest.json")),
        "the failed version was fetched again: {asked:?}"
    );
    assert_eq!(
        std::fs::read_to_string(update_dir.join("failed-version")).unwrap(),
        "1.2.0"
    );
    // Back on 1.1.0, its slot is marked good and made the first to boot again, so the failed
    // slot stays out of the way even if this one's tries later run out.
    wait_until(
        "the fallen-back slot to be marked good and active",
        Duration::from_secs(20),
        || calls(&stage.dir).ends_with(&["mark-good".to_string(), "mark-active".to_string()]),
    );
}
