//! The technician's console, end to end as a technician meets it: a sim station on a real
//! stage, the console service on one end of a serial line (a socat pty pair), and on the
//! other end `stagebox-diag` (machine frames) or a person typing in tmux (human mode). RAUC
//! is a stand-in script here (the image test drives the real one).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Proc, Stage, control, wait_until};

const LIMIT: Duration = Duration::from_secs(60);

/// A serial line: two ptys joined by socat, the host end held open so that a tool opening
/// and closing it is not a pulled cable.
struct Line {
    socat: Proc,
    station_end: PathBuf,
    host_end: PathBuf,
    holder: Option<std::fs::File>,
}

impl Line {
    fn plug(dir: &Path) -> Line {
        let station_end = dir.join("station-tty");
        let host_end = dir.join("host-tty");
        let _ = std::fs::remove_file(&station_end);
        let _ = std::fs::remove_file(&host_end);
        let socat = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", station_end.display()))
            .arg(format!("pty,raw,echo=0,link={}", host_end.display()))
            .stderr(Stdio::null())
            .spawn()
            .expect("socat (cargo xtask test installs it)");
        wait_until("the pty pair", LIMIT, || {
            station_end.exists() && host_end.exists()
        });
        let holder = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&host_end)
            .ok();
        Line {
            socat: Proc(socat),
            station_end,
            host_end,
            holder,
        }
    }

    /// The cable pulled: both ends go away.
    fn pull(self) {
        drop(self);
    }

    /// Bytes from the host end, as a person's terminal or a noisy wire would send them.
    fn send_raw(&mut self, bytes: &[u8]) {
        let holder = self.holder.as_mut().expect("host end open");
        holder.write_all(bytes).unwrap();
        holder.flush().unwrap();
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        self.holder = None;
        let _ = self.socat.0.kill();
        let _ = self.socat.0.wait();
    }
}

/// A station with its console service on a line.
struct Rig {
    stage: Stage,
    _server: Proc,
    _station: Proc,
    station_sock: PathBuf,
    console: Proc,
    line: Option<Line>,
    pin: String,
    path_env: String,
}

/// The stand-in for RAUC: its status as JSON, mark-good, mark-active and an install that
/// reports progress and keeps what it was given.
fn fake_rauc(dir: &Path) -> PathBuf {
    let bin = dir.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        r#"#!/bin/sh
case "$1" in
status)
  case "$2" in
    mark-good) echo "rauc: marked slot rootfs.0 as good" ;;
    mark-active) echo "rauc: activating rootfs.1" ;;
    *) echo '{{"compatible":"stagebox-sim","booted":"A","boot_primary":"rootfs.0","slots":[{{"rootfs.0":{{"class":"rootfs","device":"/dev/mmcblk0p2","state":"booted","boot_status":"good","slot_status":{{"bundle":{{"version":"0.1.0"}}}}}}}},{{"rootfs.1":{{"class":"rootfs","device":"/dev/mmcblk0p3","state":"inactive","boot_status":"good"}}}}]}}' ;;
  esac ;;
info) cat {dir}/bundle-info.json ;;
install)
  echo "  0% Installing"
  echo " 40% Checking bundle"
  echo "100% Installing done."
  cp "$2" {dir}/installed.raucb
  echo "Installing \`$2\` succeeded" ;;
*) echo "rauc stand-in: $*" >&2; exit 1 ;;
esac
"#,
        dir = dir.display()
    );
    let path = bin.join("rauc");
    std::fs::write(&path, script).unwrap();
    let mut perm = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&path, perm).unwrap();
    bin
}

/// The console service for station a on `line`, logging to `log` in the stage's directory;
/// returns once it serves the line.
fn start_console(
    stage: &Stage,
    station_sock: &Path,
    path_env: &str,
    line: &Line,
    log: &str,
) -> Proc {
    let dir = &stage.dir;
    let console = Command::new(stage.bin.join("stagebox-console"))
        .env("PATH", path_env)
        .arg("--port")
        .arg(&line.station_end)
        .arg("--station-config")
        .arg(dir.join("a.toml"))
        .arg("--control")
        .arg(station_sock)
        .arg("--pin-file")
        .arg(dir.join("console-pin"))
        .arg("--spool")
        .arg(dir.join("spool"))
        .arg("--log-file")
        .arg(dir.join("a.log"))
        .args(["--apply-command", "true"])
        .arg("--reboot-command")
        .arg(format!("touch {}", dir.join("rebooted").display()))
        .arg("--factory-reset-command")
        .arg(format!("touch {}", dir.join("factory-reset").display()))
        .stderr(std::fs::File::create(dir.join(log)).unwrap())
        .spawn()
        .unwrap();
    wait_until("the console on its line", LIMIT, || {
        std::fs::read_to_string(dir.join(log)).is_ok_and(|l| l.contains("console on"))
    });
    Proc(console)
}

impl Rig {
    fn start(name: &str) -> Rig {
        let stage = Stage::new(name, IpAddr::V4(Ipv4Addr::LOCALHOST));
        let server = stage.start_server("server.log");
        let (station, station_sock) = stage.start_station("a", &stage.pin(), None);
        wait_until("station a joined", LIMIT, || stage.all_connected(1));
        let dir = stage.dir.clone();
        let fakebin = fake_rauc(&dir);
        let path_env = format!(
            "{}:{}:{}",
            fakebin.display(),
            stage.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        // First boot: the station makes its PIN; the label carries it.
        let made = Command::new(stage.bin.join("stagebox-console"))
            .args(["--make-pin", "--pin-file"])
            .arg(dir.join("console-pin"))
            .arg("--label")
            .arg(dir.join("label.txt"))
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
        let label = std::fs::read_to_string(dir.join("label.txt")).unwrap();
        let pin: String = label.split(": ").nth(1).unwrap().chars().take(8).collect();
        assert!(pin.chars().all(|c| c.is_ascii_digit()), "{label}");
        let line = Line::plug(&dir);
        let console = start_console(&stage, &station_sock, &path_env, &line, "console.log");
        Rig {
            stage,
            _server: server,
            _station: station,
            station_sock,
            console,
            line: Some(line),
            pin,
            path_env,
        }
    }

    fn dir(&self) -> &Path {
        &self.stage.dir
    }

    fn host_end(&self) -> PathBuf {
        self.line.as_ref().unwrap().host_end.clone()
    }

    /// `stagebox-diag --port HOST_END ARGS`, with `pin`; without one, in a session of its
    /// own (no terminal to ask on, as under a script).
    fn diag(&self, pin: Option<&str>, args: &[&str]) -> Output {
        self.diag_on(&self.host_end(), pin, args)
    }

    /// `diag` on the host end `port` of some line.
    fn diag_on(&self, port: &Path, pin: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = Command::new("setsid");
        cmd.arg(self.stage.bin.join("stagebox-diag"));
        cmd.arg("--port").arg(port).args(args);
        if let Some(pin) = pin {
            cmd.args(["--pin", pin]);
        }
        cmd.stdin(Stdio::null())
            .env("PATH", &self.path_env)
            .env_remove("STAGEBOX_PIN")
            .output()
            .unwrap()
    }

    /// `diag` that must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.diag(Some(&self.pin.clone()), args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "stagebox-diag {args:?} failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// `stagebox-diag --json VIEW` running: the process, and its lines as they come.
    fn live_view(
        &self,
        view: &str,
    ) -> (
        std::process::Child,
        std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    ) {
        let mut child = Command::new(self.stage.bin.join("stagebox-diag"))
            .arg("--port")
            .arg(self.host_end())
            .args(["--pin", &self.pin, "--json", view])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        (
            child,
            std::io::BufRead::lines(std::io::BufReader::new(stdout)),
        )
    }

    fn console_alive(&mut self) -> bool {
        self.console.0.try_wait().unwrap().is_none()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_technician_diagnoses_and_fixes_a_station_over_the_serial_line() {
    let mut rig = Rig::start("console-diag");
    let dir = rig.dir().to_path_buf();

    // Without a PIN nothing is shown, and with no terminal to ask on the tool says so.
    let refused = rig.diag(None, &["status"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--pin"), "{}", stderr(&refused));

    let status = rig.ok(&["status"]);
    for expected in [
        "a on stage hall",
        "running: joined",
        "booted slot A",
        "stationd 0.1.0",
    ] {
        assert!(status.contains(expected), "{expected:?} not in:\n{status}");
    }
    let json = rig.ok(&["--json", "status"]);
    let answer: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(answer["ok"], true, "{json}");

    let net = rig.ok(&["net"]);
    assert!(net.contains("(matches the pinned one)"), "{net}");
    assert!(net.contains("voice node"), "{net}");

    // The configuration: secrets stay on the station; a change is checked before it is kept.
    let config = rig.ok(&["config", "get"]);
    assert!(!config.contains("token-a-123"), "{config}");
    assert!(config.contains("(secret)"), "{config}");
    assert_eq!(
        rig.ok(&["config", "get", "server.stage"]).trim(),
        "server.stage = \"hall\""
    );
    let set = rig.ok(&["config", "set", "audio.bitrate_kbps", "40"]);
    assert!(set.contains("audio.bitrate_kbps changed"), "{set}");
    let file = std::fs::read_to_string(dir.join("a.toml")).unwrap();
    assert!(file.contains("bitrate_kbps = 40"), "{file}");
    let bad = rig.diag(
        Some(&rig.pin),
        &["config", "set", "server.gateway", "ws://plain"],
    );
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("not changed"), "{}", stderr(&bad));
    assert_eq!(std::fs::read_to_string(dir.join("a.toml")).unwrap(), file);
    assert!(rig.ok(&["config", "validate"]).contains("ok"));

    // The speaker's test tone, and the LED tour (watched for two states, then Ctrl-C: the
    // station finishes it by itself and shows its own state again).
    let tone = rig.ok(&["audio", "tone"]);
    assert!(tone.contains("1000 Hz tone at -12 dBFS"), "{tone}");
    // The sim board's speaker is a file: the microphones hear nothing of the sweep, and the
    // console says so rather than inventing a delay.
    let chirp = rig.ok(&["audio", "chirp"]);
    assert!(chirp.contains("a sweep from 300 Hz to 4 kHz"), "{chirp}");
    assert!(chirp.contains("channel 0"), "{chirp}");
    assert!(chirp.contains("found no echo of the sweep"), "{chirp}");
    let (mut leds, mut tour) = rig.live_view("leds");
    let first = tour.next().unwrap().unwrap();
    assert!(first.contains("LED: booting (1 of 13)"), "{first}");
    let second = tour.next().unwrap().unwrap();
    assert!(second.contains("LED: connecting (2 of 13)"), "{second}");
    signal(&leds, "INT");
    assert!(leds.wait().unwrap().success());
    wait_until("the tour on the LEDs", LIMIT, || {
        common::stats(&rig.station_sock)["led_timeline_ms"]
            .as_array()
            .is_some_and(|t| t.iter().any(|e| e[1] == "hand-raised"))
    });

    // The log, and a live view of the buttons while a finger presses PTT.
    let logs = rig.ok(&["logs", "media session"]);
    assert!(
        logs.contains("stagebox_stationd::net: media session"),
        "{logs}"
    );
    let (mut buttons, mut lines) = rig.live_view("buttons");
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("PTT up"), "{first}");
    assert_eq!(control(&rig.station_sock, "ptt down").trim(), "ok");
    let pressed = lines
        .by_ref()
        .take(20)
        .map(|l| l.unwrap())
        .find(|l| l.contains("PTT DOWN"));
    assert!(pressed.is_some(), "the press never showed");
    control(&rig.station_sock, "ptt up");
    // Ctrl-C ends the view cleanly: the station is told to stop, the tool says it ended.
    signal(&buttons, "INT");
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(buttons.wait().unwrap().success(), "{rest:?}");
    assert!(
        rest.last().is_some_and(|l| l.contains("\"ok\":true")),
        "{rest:?}"
    );

    // A bundle pushed over the line, the cable pulled halfway, pushed again: it goes on
    // from where it stopped, arrives whole and is installed.
    let bundle = dir.join("update.raucb");
    let mut seed = 0x2545_f491_u32;
    let data: Vec<u8> = (0..1_500_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as u8
        })
        .collect();
    std::fs::write(&bundle, &data).unwrap();
    let push = Command::new(rig.stage.bin.join("stagebox-diag"))
        .arg("--port")
        .arg(rig.host_end())
        .args(["--pin", &rig.pin, "update", "push"])
        .arg(&bundle)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let part = dir.join("spool/push.part");
    wait_until("part of the bundle", LIMIT, || {
        std::fs::metadata(&part).is_ok_and(|m| m.len() > 300_000)
    });
    rig.line.take().unwrap().pull();
    let cut = push.wait_with_output().unwrap();
    assert!(
        !cut.status.success(),
        "the push went through a pulled cable"
    );
    assert!(
        stderr(&cut).contains("the push stopped at"),
        "{}",
        stderr(&cut)
    );
    rig.line = Some(Line::plug(&dir));
    // The console finds the line again by itself.
    wait_until("the console back on the line", LIMIT, || {
        rig.diag(Some(&rig.pin), &["update", "status"])
            .status
            .success()
    });
    // What arrived before the cable went (a piece in flight included) is kept.
    let held = std::fs::metadata(&part).unwrap().len();
    assert!(held > 0 && held < data.len() as u64);
    let resumed = rig.diag(
        Some(&rig.pin),
        &["update", "push", bundle.to_str().unwrap()],
    );
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains(&format!("holds {held} bytes of this bundle already")),
        "{}",
        stderr(&resumed)
    );
    assert!(
        rig.ok(&["update", "status"])
            .contains("pushed bundle: 1500000 bytes")
    );
    // The console holds a pushed bundle to the update agent's checks: an older version is
    // refused (the PIN alone does not buy a downgrade), and so is a downgrade that names
    // another version than the bundle's.
    let info = |version: &str| {
        std::fs::write(
            dir.join("bundle-info.json"),
            format!(r#"{{"compatible":"stagebox-sim","version":"{version}"}}"#),
        )
        .unwrap()
    };
    info("0.0.1");
    let older = rig.diag(Some(&rig.pin), &["update", "install"]);
    assert!(!older.status.success(), "an older bundle was installed");
    assert!(
        stderr(&older).contains("refused: version 0.0.1 is not newer than the running"),
        "{}",
        stderr(&older)
    );
    let misnamed = rig.diag(
        Some(&rig.pin),
        &["update", "install", "--downgrade", "0.0.2"],
    );
    assert!(
        stderr(&misnamed).contains("not the 0.0.2 that was named"),
        "{}",
        stderr(&misnamed)
    );
    assert!(!dir.join("installed.raucb").exists());
    // A newer one installs as the agent would.
    info("99.0.0");
    let installed = rig.ok(&["update", "install"]);
    assert!(
        installed.contains("installed version 99.0.0 into the other slot"),
        "{installed}"
    );
    assert_eq!(std::fs::read(dir.join("installed.raucb")).unwrap(), data);
    // A downgrade the technician names is installed, and the log says so.
    let small = dir.join("older.raucb");
    std::fs::write(&small, &data[..10_000]).unwrap();
    info("0.0.1");
    rig.ok(&[
        "update",
        "push",
        small.to_str().unwrap(),
        "--install",
        "--downgrade",
        "0.0.1",
    ]);
    assert_eq!(
        std::fs::read(dir.join("installed.raucb")).unwrap(),
        &data[..10_000]
    );
    let log = std::fs::read_to_string(dir.join("console.log")).unwrap();
    assert!(
        log.contains("pushed bundle not installed: refused: version 0.0.1")
            && log.contains("installing pushed version 0.0.1 over")
            && log.contains("a downgrade, asked for by name"),
        "{log}"
    );
    assert!(rig.ok(&["update", "mark-good"]).contains("marked good"));
    assert!(rig.ok(&["update", "rollback"]).contains("next boot"));

    // The support bundle: exported, whole, without the station's secrets.
    let out = dir.join("support.tar.gz");
    rig.ok(&["support-bundle", out.to_str().unwrap()]);
    let listing = Command::new("tar")
        .arg("-xzf")
        .arg(&out)
        .arg("-C")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(listing.status.success());
    for file in [
        "status.txt",
        "stats.json",
        "config.toml",
        "update.txt",
        "log.txt",
    ] {
        let text = std::fs::read_to_string(dir.join("support-bundle").join(file)).unwrap();
        assert!(!text.contains("token-a-123"), "{file} carries the token");
    }

    // Garbage on the line (noise, NULs that read as breaks, half markers, an endless frame
    // line): the console stays up, and the next request is answered.
    let mut noise = Vec::new();
    for i in 0..4096u32 {
        noise.push((i.wrapping_mul(2_654_435_761) >> 24) as u8);
    }
    noise.extend_from_slice(&[0x06, 0x09]);
    noise.extend(std::iter::repeat_n(b'A', 600));
    noise.push(b'\n');
    rig.line.as_mut().unwrap().send_raw(&noise);
    assert!(rig.console_alive());
    assert!(rig.ok(&["status"]).contains("running: joined"));

    rig.ok(&["factory-reset", "--yes"]);
    assert!(dir.join("factory-reset").exists());
    rig.ok(&["reboot"]);
    assert!(dir.join("rebooted").exists());

    // Wrong PINs: three tries, then a wait that doubles; while it runs even the right PIN is
    // not looked at.
    rig.line.as_mut().unwrap().send_raw(&[0]); // a break ends the login
    let mut said = Vec::new();
    for _ in 0..3 {
        let wrong = rig.diag(Some("00000000"), &["status"]);
        assert!(!wrong.status.success());
        said.push(stderr(&wrong));
    }
    assert!(said.iter().all(|s| s.contains("wrong PIN")), "{said:?}");
    assert!(said[2].contains("the next try in 30 s"), "{said:?}");
    let right = rig.diag(Some(&rig.pin), &["status"]);
    assert!(!right.status.success());
    assert!(
        stderr(&right).contains("too many wrong PINs: try again in"),
        "{}",
        stderr(&right)
    );
    let log = std::fs::read_to_string(dir.join("console.log")).unwrap();
    assert!(log.contains("wrong console PIN (3 in a row)"), "{log}");
    assert!(rig.console_alive());

    // The count is the station's, not one line's: the USB gadget's line (a second service on
    // a second line) makes the right PIN wait too, and a fourth miss there doubles the wait.
    let gadget_dir = dir.join("gadget");
    std::fs::create_dir_all(&gadget_dir).unwrap();
    let gadget = Line::plug(&gadget_dir);
    let gadget_console = start_console(
        &rig.stage,
        &rig.station_sock,
        &rig.path_env,
        &gadget,
        "console-gadget.log",
    );
    let right = rig.diag_on(&gadget.host_end, Some(&rig.pin), &["status"]);
    assert!(
        stderr(&right).contains("too many wrong PINs: try again in"),
        "the other line let the right PIN in during the wait: {}",
        stderr(&right)
    );
    // Restarting the service (as a power cycle restarts it) keeps the count and the wait.
    drop(gadget_console);
    drop(std::mem::replace(
        &mut rig.console,
        start_console(
            &rig.stage,
            &rig.station_sock,
            &rig.path_env,
            rig.line.as_ref().unwrap(),
            "console-restarted.log",
        ),
    ));
    let right = rig.diag(Some(&rig.pin), &["status"]);
    assert!(
        stderr(&right).contains("too many wrong PINs: try again in"),
        "a restarted console let the right PIN in during the wait: {}",
        stderr(&right)
    );
    let kept = std::fs::read_to_string(dir.join("console-pin-tries")).unwrap();
    assert!(kept.contains("\"misses\":3"), "{kept}");
    assert!(!kept.contains(&rig.pin), "{kept}");
}

/// Sends signal `sig` to a child (INT: the technician's Ctrl-C).
fn signal(child: &std::process::Child, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// What the tmux pane shows now.
fn screen(session: &str) -> String {
    let out = Command::new("tmux")
        .args(["capture-pane", "-p", "-t", session])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn keys(session: &str, keys: &[&str]) {
    let status = Command::new("tmux")
        .args(["send-keys", "-t", session])
        .args(keys)
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_screen(session: &str, text: &str) -> String {
    let mut last = String::new();
    let found = std::iter::repeat_with(|| {
        std::thread::sleep(Duration::from_millis(50));
        last = screen(session);
        last.contains(text)
    })
    .take(600)
    .any(|seen| seen);
    assert!(found, "{text:?} never showed; the screen:\n{last}");
    last
}

#[test]
fn a_person_types_at_the_console_in_a_terminal() {
    let rig = Rig::start("console-human");
    let session = format!("stagebox-console-{}", std::process::id());
    // The pane outlives the tool, so its last words can be read.
    let shell = format!(
        "{} --port {} shell; sleep 60",
        rig.stage.bin.join("stagebox-diag").display(),
        rig.host_end().display()
    );
    let started = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            "40",
            "-s",
            &session,
            &shell,
        ])
        .status()
        .expect("tmux (cargo xtask test installs it)");
    assert!(started.success());
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("tmux")
                .args(["kill-session", "-t", &self.0])
                .status();
        }
    }
    let _kill = Kill(session.clone());
    wait_screen(&session, "a>");
    keys(&session, &["help", "Enter"]);
    wait_screen(&session, "Commands (Tab completes");
    // Tab completes, the PIN is asked for and never shown.
    keys(&session, &["sta", "Tab"]);
    wait_screen(&session, "a> status");
    keys(&session, &["Enter"]);
    wait_screen(&session, "PIN (on the station's label):");
    keys(&session, &[&rig.pin, "Enter"]);
    let shown = wait_screen(&session, "running: joined");
    assert!(shown.contains("logged in"), "{shown}");
    assert!(!shown.contains(&rig.pin), "the PIN showed:\n{shown}");
    keys(&session, &["clear", "Enter"]);
    wait_screen(&session, "unknown command \"clear\"");
    // A live view runs until a key.
    keys(&session, &["audio levels", "Enter"]);
    wait_screen(&session, "channel 0");
    keys(&session, &["q"]);
    wait_until("the prompt after the live view", LIMIT, || {
        screen(&session).trim_end().lines().last() == Some("a#")
    });
    keys(&session, &["logout", "Enter"]);
    wait_screen(&session, "logged out");
    // Ctrl-] leaves the tool; the station's console stays.
    keys(&session, &["C-]"]);
    let left = wait_screen(&session, "left the shell");
    assert!(left.contains("left the shell"));
}
