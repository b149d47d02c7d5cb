//! The package test's last word: the arm64 root with the package installed boots under
//! systemd (`systemd-nspawn --boot`, every arm64 program through qemu-user), and the
//! packaged unit — its user, its sandbox, its notify and watchdog settings — starts the
//! daemon until it reports itself up: systemd holds the unit `active` (for `Type=notify`, only
//! after the daemon's `READY=1`), the daemon's own control socket says it joined, and the
//! stage server lists the station connected, on its stage.
//!
//! The container shares the host's network (no `--private-network`): the stage server, the
//! arm64 build run on the host through binfmt_misc, listens on 127.0.0.1 only.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::demo::{self, Proc};

/// The station's name on the test's stage.
const STATION: &str = "packaged";

/// A booting container under emulation: its init, then the daemon's start (about 20 s here).
const UP_LIMIT: Duration = Duration::from_secs(180);

/// A container asked to power off has this long before it is killed.
const POWEROFF_LIMIT: Duration = Duration::from_secs(90);

/// Boots `rootfs` (the package `version` installed and enabled) and waits for the daemon.
pub fn daemon_comes_up(rootfs: &Path, version: &str) -> Result<()> {
    let work = fs::canonicalize("target/deb")?.join("boot");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    fs::create_dir_all(&work)?;
    let bin = fs::canonicalize(
        Path::new("target/cross")
            .join(crate::cross::TARGET)
            .join("release"),
    )?;
    let (gateway, media, admin_port) = (
        demo::free_tcp_port()?,
        demo::free_port()?,
        demo::free_tcp_port()?,
    );
    let server_cfg = work.join("server.toml");
    fs::write(
        &server_cfg,
        format!(
            "[listen]\ngateway = \"127.0.0.1:{gateway}\"\nmedia = \"127.0.0.1:{media}\"\n\
             admin = \"127.0.0.1:{admin_port}\"\n\n\
             [tls]\ncert = \"{dir}/cert.pem\"\nkey = \"{dir}/key.pem\"\n\n\
             [admin]\ntoken = \"{token}\"\n\n[[stage]]\nid = \"townhall\"\n\n\
             [[station]]\nid = \"{STATION}\"\ntoken = \"token-{STATION}-package\"\n",
            dir = work.display(),
            token = demo::ADMIN_TOKEN,
        ),
    )?;
    let (_server, pin) = demo::start_server(&bin, &work, &server_cfg)?;
    // What an owner writes into /etc/stagebox/station.toml: here the sim board (a container
    // has no sound card or GPIO) and the test's stage server.
    fs::write(
        rootfs.join("etc/stagebox/station.toml"),
        format!(
            "[station]\nid = \"{STATION}\"\ntoken = \"token-{STATION}-package\"\n\n\
             [server]\ngateway = \"wss://127.0.0.1:{gateway}/signal\"\nstage = \"townhall\"\n\
             pin_sha256 = \"{pin}\"\n\n[board]\nprofile = \"sim\"\n\n[sim]\ndraw_leds = false\n"
        ),
    )?;
    let log_path = work.join("boot.log");
    let container = Container::boot(rootfs, &log_path)?;
    let result = wait_until_up(&container, admin_port, version);
    let stopped = container.power_off();
    if let Err(e) = result {
        let unit = container_journal_tail(&log_path);
        bail!(
            "{e:#}\nthe container's console is in {}{unit}",
            log_path.display()
        );
    }
    stopped?;
    fs::remove_dir_all(&work)?;
    Ok(())
}

fn wait_until_up(container: &Container, admin_port: u16, version: &str) -> Result<()> {
    let started = Instant::now();
    let mut last = String::new();
    let up = demo::wait_for(
        "the packaged daemon to come up under systemd",
        UP_LIMIT,
        || {
            let init = container.init_pid()?;
            let active = container.systemctl(init, &["is-active", "stagebox-stationd.service"])?;
            let socket = PathBuf::from(format!("/proc/{init}/root/run/stagebox/control.sock"));
            let joined = demo::control(&socket, "stats")
                .ok()
                .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                .is_some_and(|s| s["milestones"]["ready_unix_ns"].as_u64().unwrap_or(0) > 0);
            let view = demo::station_view(admin_port, STATION)?.unwrap_or(Value::Null);
            last = format!(
                "systemd: {active}; daemon joined: {joined}; server: connected {}, stage {}",
                view["connected"], view["stage"]
            );
            Ok(active == "active"
                && joined
                && view["connected"] == true
                && view["stage"] == "townhall")
        },
    );
    if let Err(e) = up {
        bail!("{e:#} (last seen: {last})");
    }
    let init = container.init_pid()?;
    let status = container.systemctl(
        init,
        &[
            "show",
            "-p",
            "StatusText",
            "-p",
            "User",
            "stagebox-stationd.service",
        ],
    )?;
    // The unit's promises, as systemd holds them: its own user, and the daemon's status line.
    for promised in ["User=stagebox", "StatusText=running"] {
        if !status.lines().any(|l| l.trim() == promised) {
            bail!("systemd does not show {promised} for the packaged daemon: {status}");
        }
    }
    println!(
        "in the arm64 root under systemd (systemd-nspawn, qemu-user): the packaged daemon came \
         up in {:.0} s from the container's start ({}); {version} joined the stage",
        started.elapsed().as_secs_f64(),
        status.split_whitespace().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// The daemon's lines of the container's console, for a failure's message.
fn container_journal_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("stationd")).collect();
    let tail = &lines[lines.len().saturating_sub(10)..];
    if tail.is_empty() {
        String::new()
    } else {
        format!("; its lines on the daemon:\n{}", tail.join("\n"))
    }
}

/// `systemd-nspawn --boot` of the root, its console written to a file.
struct Container {
    nspawn: Option<Child>,
}

impl Container {
    fn boot(rootfs: &Path, log: &Path) -> Result<Self> {
        let console = fs::File::create(log)?;
        // --register=no and --keep-unit: no machined or host systemd is needed (CI's machine
        // may run without one); the console read-only: nobody types into it.
        let child = Command::new("systemd-nspawn")
            .args(["--quiet", "--register=no", "--keep-unit", "--boot"])
            .args(["--console=read-only", "--machine=stagebox-package"])
            .arg("--directory")
            .arg(rootfs)
            .stdin(Stdio::null())
            .stdout(console.try_clone()?)
            .stderr(console)
            .spawn()
            .context("starting systemd-nspawn")?;
        Ok(Self {
            nspawn: Some(child),
        })
    }

    /// The container's init (systemd, through qemu-user): systemd-nspawn's child.
    fn init_pid(&self) -> Result<u32> {
        let nspawn = self.nspawn.as_ref().context("the container was stopped")?;
        let id = nspawn.id();
        let children = fs::read_to_string(format!("/proc/{id}/task/{id}/children"))
            .context("systemd-nspawn exited")?;
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .context("the container's init has not started")
    }

    /// `systemctl args…` inside the container; its standard output, trimmed (a unit that is
    /// not active makes `is-active` exit non-zero: the text still says which state).
    fn systemctl(&self, init: u32, args: &[&str]) -> Result<String> {
        let out = Command::new("nsenter")
            .args(["--target", &init.to_string()])
            .args(["--mount", "--uts", "--ipc", "--pid", "--"])
            .arg("systemctl")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("nsenter into the container")?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Powers the container off from inside (`systemctl poweroff`: systemd-nspawn's own
    /// SIGTERM becomes a halt signal that qemu-user renumbers, and the container's systemd
    /// took it for "rescue") and waits; a second SIGTERM (systemd-nspawn's immediate
    /// termination), then a kill, after [`POWEROFF_LIMIT`].
    fn power_off(mut self) -> Result<()> {
        if let Ok(init) = self.init_pid() {
            let _ = self.systemctl(init, &["--no-block", "poweroff"]);
        }
        let Some(child) = self.nspawn.take() else {
            return Ok(());
        };
        let mut proc = Proc(child, "systemd-nspawn");
        let deadline = Instant::now() + POWEROFF_LIMIT;
        while Instant::now() < deadline {
            if let Some(status) = proc.0.try_wait()? {
                if !status.success() {
                    println!("systemd-nspawn ended with {status} after the power-off");
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        terminate_now(proc);
        bail!(
            "the container did not power off within {} s",
            POWEROFF_LIMIT.as_secs()
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(child) = self.nspawn.take() {
            terminate_now(Proc(child, "systemd-nspawn"));
        }
    }
}

/// systemd-nspawn ends its container at once on a second SIGTERM; then the process is
/// reaped (killed if it still lingers).
fn terminate_now(nspawn: Proc) {
    for _ in 0..2 {
        let _ = Command::new("kill")
            .args(["-TERM", &nspawn.0.id().to_string()])
            .status();
    }
    drop(nspawn);
}
