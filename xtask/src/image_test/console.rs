//! The technician's console on the running image: the PIN the station made at its first boot
//! (on the boot partition, for its label), and `stagebox-diag` on the console's serial line
//! (qemu's virtio console, bridged to a pty by socat as a USB-serial adapter would be) asking
//! for the station's status, its update slots and its configuration — the real journal, RAUC
//! and daemon behind them.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{Rig, expect};
use crate::demo::wait_for;

/// `stagebox-diag --port TTY --pin PIN ARGS`: its output, or why it failed.
fn diag(tty: &Path, pin: &str, args: &[&str]) -> Result<String> {
    let out = Command::new("target/release/stagebox-diag")
        .arg("--port")
        .arg(tty)
        .args(["--pin", pin])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("stagebox-diag")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "stagebox-diag {args:?}: {}{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

pub(super) fn check(rig: &Rig) -> Result<Value> {
    let label = rig.guest("cat /boot/firmware/stagebox-console-pin.txt")?;
    let pin: String = label
        .split(": ")
        .nth(1)
        .context("the PIN label")?
        .chars()
        .take(8)
        .collect();
    if pin.len() != 8 || !pin.chars().all(|c| c.is_ascii_digit()) {
        bail!("the station's PIN label reads {label:?}");
    }
    let stored = rig.guest("cat /var/lib/stagebox-console/pin")?;
    if stored.contains(&pin) || !stored.starts_with("pbkdf2-sha256$") {
        bail!("the station keeps its PIN as {stored:?}, not as a verifier");
    }
    let tty = rig.work.join("console-tty");
    let _ = std::fs::remove_file(&tty);
    let mut socat = Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={}", tty.display()))
        .arg(format!(
            "unix-connect:{}",
            rig.work.join("console.sock").display()
        ))
        .stderr(Stdio::null())
        .spawn()
        .context("socat")?;
    let result = (|| {
        wait_for("the console's pty", Duration::from_secs(10), || {
            Ok(tty.exists())
        })?;
        let status = diag(&tty, &pin, &["status"])?;
        expect(
            "console status",
            &status,
            &["running: joined", "booted slot", "stationd "],
        )?;
        let update = diag(&tty, &pin, &["update", "status"])?;
        expect("console update status", &update, &["rootfs.0", "rootfs.1"])?;
        let config = diag(&tty, &pin, &["config", "get"])?;
        expect("console config get", &config, &["(secret)"])?;
        if config.contains("token-") {
            bail!("console config get showed the station's token:\n{config}");
        }
        // The journal's last lines: longer than one frame, joined by the host.
        let logs = diag(&tty, &pin, &["logs"])?;
        if logs.lines().count() < 10 {
            bail!(
                "console logs showed {} lines:\n{logs}",
                logs.lines().count()
            );
        }
        // A break on the line ends the login (the console reads it as a NUL); then a wrong
        // PIN is refused, and says so, and the station's count of misses is one more.
        std::io::Write::write_all(
            &mut std::fs::OpenOptions::new().write(true).open(&tty)?,
            &[0],
        )?;
        std::thread::sleep(Duration::from_millis(500));
        let wrong = match diag(&tty, "00000000", &["logs"]) {
            Ok(text) => bail!("a wrong PIN was let in: {text}"),
            Err(e) => format!("{e:#}"),
        };
        if !wrong.contains("wrong PIN") {
            bail!("a wrong PIN was refused, but not as a wrong PIN: {wrong}");
        }
        let tries = rig.guest("cat /var/lib/stagebox-console/pin-tries")?;
        if !tries.contains("\"misses\":1") {
            bail!("the station did not keep the wrong PIN's count: {tries:?}");
        }
        // The right PIN clears it for every line.
        diag(&tty, &pin, &["status"])?;
        Ok(json!({
            "status": status,
            "update_status": update,
            "log_lines": logs.lines().count(),
            "wrong_pin_refused": wrong.trim(),
        }))
    })();
    let _ = socat.kill();
    let _ = socat.wait();
    result
}
