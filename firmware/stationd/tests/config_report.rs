//! The owner's configuration on the SD card's boot partition: `stationd --report` writes what
//! it found beside it — the mistake with its line and field, or that all is well — so a
//! hobbyist without a serial cable can read why the station does not start.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

const GOOD: &str = "[station]\nid = \"podium-1\"\ntoken = \"secret-token\"\n\
[server]\ngateway = \"wss://127.0.0.1:9/signal\"\nstage = \"hall\"\n\
pin_sha256 = \"00000000000000000000000000000000000000000000000000000000000000ab\"\n\
[board]\nprofile = \"sim\"\n";

fn check(config: &str, name: &str) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("stagebox-report-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("stagebox.toml");
    let report = dir.join("stagebox-report.txt");
    std::fs::write(&toml, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stationd"))
        .arg("--check-config")
        .arg(&toml)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_mistake_is_written_back_with_its_line_and_a_good_file_says_so() {
    let (code, text) = check(&GOOD.replace("\"hall\"", "\"\""), "mistake");
    assert_eq!(code, 2);
    assert!(text.contains("MISTAKE"), "{text}");
    assert!(text.contains("stagebox.toml:6:"), "{text}");
    let (code, text) = check(&GOOD.replace("\"sim\"", "\"pi9-nothing\""), "board");
    assert_eq!(code, 2);
    assert!(text.contains("board.profile"), "{text}");
    let (code, text) = check(GOOD, "good");
    assert_eq!(code, 0);
    assert!(
        text.contains("OK — station podium-1 on stage hall"),
        "{text}"
    );
}

const SETTINGS: &str = "[wifi]\nssid = \"Hall B\"\npassword = \"stage-door-42\"\ncountry = \"es\"\n\
[time]\nzone = \"UTC\"\n";

/// `stationd --apply-settings` into a directory of the test's own; the exit code, the report
/// and the directory.
fn apply(config: &str, name: &str) -> (i32, String, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("stagebox-apply-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("stagebox.toml");
    let report = dir.join("stagebox-report.txt");
    std::fs::write(&toml, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stationd"))
        .arg("--apply-settings")
        .arg(&toml)
        .arg("--report")
        .arg(&report)
        .arg("--settings-dir")
        .arg(dir.join("run"))
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    (out.status.code().unwrap_or(-1), text, dir)
}

#[test]
fn the_wifi_and_time_zone_are_applied_and_reported_even_beside_a_mistake() {
    let (code, text, dir) = apply(&format!("{GOOD}{SETTINGS}"), "good");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("OK — station podium-1"), "{text}");
    assert!(
        text.contains("Wi-Fi: joins \"Hall B\" (with its password, country ES). Time zone: UTC."),
        "{text}"
    );
    let wpa = std::fs::read_to_string(dir.join("run/wpa_supplicant-wlan0.conf")).unwrap();
    assert!(wpa.contains("ssid=48616c6c2042\n"), "{wpa}");
    assert!(wpa.contains("country=ES\n"), "{wpa}");
    assert_eq!(
        std::fs::read_link(dir.join("run/localtime")).unwrap(),
        std::path::Path::new("/usr/share/zoneinfo/UTC")
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // A mistake in [server]: reported (exit 2), the Wi-Fi still set.
    let (code, text, dir) = apply(
        &format!("{GOOD}{SETTINGS}").replace("\"hall\"", "\"\""),
        "server",
    );
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("MISTAKE"), "{text}");
    assert!(text.contains("Wi-Fi: joins \"Hall B\""), "{text}");
    assert!(dir.join("run/wpa_supplicant-wlan0.conf").exists());
    std::fs::remove_dir_all(&dir).unwrap();

    // A mistake in [wifi]: its line reported, no Wi-Fi set, the time zone still set.
    let (code, text, dir) = apply(
        &format!("{GOOD}{SETTINGS}").replace("stage-door-42", "short"),
        "wifi",
    );
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("stagebox.toml:"), "{text}");
    assert!(text.contains("8 to 63 characters"), "{text}");
    assert!(
        text.contains("Wi-Fi: off until the mistake is fixed"),
        "{text}"
    );
    assert!(!dir.join("run/wpa_supplicant-wlan0.conf").exists());
    assert!(dir.join("run/localtime").symlink_metadata().is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_mistake_waits_for_a_person_with_its_status_told_to_systemd() {
    use std::os::unix::net::UnixDatagram;
    let dir = std::env::temp_dir().join(format!("stagebox-wait-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("station.toml");
    std::fs::write(&toml, GOOD.replace("\"hall\"", "\"\"")).unwrap();
    let notify = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&notify).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stationd"))
        .arg("--config")
        .arg(&toml)
        .arg("--wait-on-mistake")
        .env("NOTIFY_SOCKET", &notify)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("READY from the daemon");
    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        message.starts_with("READY=1\nSTATUS=configuration mistake: "),
        "{message}"
    );
    assert!(message.contains("station.toml:"), "{message}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "it waits, it does not exit"
    );
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}
