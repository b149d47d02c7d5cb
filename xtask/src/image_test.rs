//! `cargo xtask image --test [--power-cuts N] [--healthy-reboots N]`: the qemu image, booted
//! for real in `qemu-system-aarch64 -M virt` with our U-Boot as its firmware, updated,
//! refused, rolled back and cut off.
//!
//! Everything runs in a network namespace of its own (`unshare --net`): the stage server, a
//! listening sim station and qemu, whose user-mode network reaches the host as 10.0.2.2 —
//! the namespace's loopback, nothing else. The test logs in to the station over SSH (the
//! image's remote shell, with a key put on the boot partition as an owner would) to press its
//! buttons (the sim board's control socket), read U-Boot's environment and which slot booted.
//!
//! What it does, in order (each step asserts; figures go to `target/image/test/report.json`):
//! 1. boots slot A: the station joins the stage; the listener on the host hears it speak;
//! 2. v2 is published while the station is live: it installs, holds the reboot until the
//!    speaker lets go of PTT, boots slot B, passes its health check, marks B good, and the
//!    server sees v2;
//! 3. healthy reboots stay on B with its tries refilled; both slots' tries spent → U-Boot
//!    counts afresh and boots B; a corrupted copy of U-Boot's environment → the other copy;
//! 4. an older version, an expired manifest, a bundle signed with another key and a tampered
//!    bundle are each refused, v2 keeps running, nothing reboots;
//! 5. v3, whose daemon cannot start, installs into A, fails its boots, and the station is
//!    back on v2 by itself;
//! 6. power cuts (qemu killed) during download, install and the first boot of a new slot;
//!    after each, the station comes up on a good slot and rejoins.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::bundle;
use crate::demo::{self, Proc, admin, wait_for};
use crate::image::Board;
use crate::sh::run;

mod console;
mod owner;

/// How much of it to run.
#[derive(Debug, Clone, Copy)]
pub struct TestOptions {
    pub power_cuts: u32,
    pub healthy_reboots: u32,
    /// Use the image built before instead of building it again.
    pub reuse_image: bool,
}

const WORK: &str = "target/image/test";
const BUNDLES: &str = "target/image/test-bundles";
const GUEST: &str = "stage-1";
const LISTENER: &str = "listener-1";
/// The daemon's control socket, as the image's unit serves it (`--control-socket`; the
/// test's configuration does not name it, so the unit's flag is what is tested).
const CONTROL: &str = "/run/stagebox/control.sock";
/// A boot under emulation, from power on (or reboot) to joined.
const BOOT_LIMIT: Duration = Duration::from_secs(240);
/// A download and install of a bundle under emulation.
const UPDATE_LIMIT: Duration = Duration::from_secs(600);

/// Prepares everything that needs the network or the host (packages, the image, bundles,
/// binaries), then runs the test itself inside a new network namespace.
pub fn run_test(opts: TestOptions) -> Result<()> {
    if !crate::setup::is_root() {
        bail!("the image test needs root (image build, network namespace)");
    }
    ensure_qemu()?;
    crate::setup::ensure_packages(&["openssh-client", "mtools", "iproute2", "util-linux"])?;
    let built = Path::new("target/image/stagebox-qemu.img");
    let img = if opts.reuse_image && built.exists() {
        built.to_path_buf()
    } else {
        crate::image::build(Board::Qemu, None)?
    };
    let work = fresh_dir(WORK)?;
    prepare(&work, &img, opts.power_cuts)?;
    let exe = std::env::current_exe()?;
    run(Command::new("unshare")
        .args(["--net", "--"])
        .arg(exe)
        .args(["image", "--test", "--in-namespace"])
        .arg(format!("--power-cuts={}", opts.power_cuts))
        .arg(format!("--healthy-reboots={}", opts.healthy_reboots)))
}

/// qemu-system-arm from Debian. Some machines carry a newer qemu-utils from backports that
/// bookworm's qemu-system-arm cannot sit beside: then bookworm's is installed over it.
fn ensure_qemu() -> Result<()> {
    if crate::setup::installed("qemu-system-arm") {
        return Ok(());
    }
    if crate::setup::ensure_packages(&["qemu-system-arm"]).is_ok() {
        return Ok(());
    }
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "--allow-downgrades",
            "qemu-system-arm",
            "qemu-utils/bookworm",
            "qemu-system-common/bookworm",
            "qemu-system-data/bookworm",
        ]))
}

fn fresh_dir(path: &str) -> Result<PathBuf> {
    let p = Path::new(path);
    if p.exists() {
        fs::remove_dir_all(p)?;
    }
    fs::create_dir_all(p)?;
    Ok(fs::canonicalize(p)?)
}

/// The versions the test publishes, from the image's own.
struct Versions {
    v1: String,
    v2: String,
    v3: String,
    later: u32,
    prefix: String,
}

impl Versions {
    fn new() -> Result<Versions> {
        let v1 = crate::deb::version()?;
        let (prefix, patch) = v1.rsplit_once('.').context("version MAJOR.MINOR.PATCH")?;
        let patch: u32 = patch.parse()?;
        Ok(Versions {
            v2: format!("{prefix}.{}", patch + 1),
            v3: format!("{prefix}.{}", patch + 2),
            later: patch + 3,
            prefix: prefix.to_string(),
            v1,
        })
    }

    /// The `n`th version after v3 (for refusals and power cuts).
    fn after(&self, n: u32) -> String {
        format!("{}.{}", self.prefix, self.later + n)
    }
}

/// The bundles, the release key, the speech, the SSH key and the disk, outside the namespace.
fn prepare(work: &Path, img: &Path, cuts: u32) -> Result<()> {
    let v = Versions::new()?;
    let dev = bundle::dev_signer()?;
    let stranger = bundle::make_signer("stranger")?;
    let b = bundles_dir()?;
    let fresh = |name: &str| is_newer(&b.join(name), img);
    if !fresh("v2.raucb") {
        bundle::make(Board::Qemu, &v.v2, &dev, &[], &b.join("v2.raucb"))?;
    }
    if !fresh("v3.raucb") {
        let broken = b.join("stationd-broken");
        fs::write(
            &broken,
            "#!/bin/sh\necho 'stationd: this build is broken on purpose (image test)' >&2\nexit 1\n",
        )?;
        set_mode(&broken, 0o755)?;
        bundle::make(
            Board::Qemu,
            &v.v3,
            &dev,
            &[("/usr/bin/stationd", &broken)],
            &b.join("v3.raucb"),
        )?;
    }
    // good-0 for the refusals, good-1… for the power cuts (three cuts per update).
    for n in 0..=releases_for(cuts) {
        let name = format!("good-{n}.raucb");
        if !fresh(&name) {
            bundle::make(Board::Qemu, &v.after(n), &dev, &[], &b.join(name))?;
        }
    }
    // Signed by a key the image does not trust.
    let _ = fs::remove_file(b.join("wrong-key.raucb"));
    run(Command::new("rauc")
        .arg("resign")
        .arg(format!("--cert={}", stranger.cert.display()))
        .arg(format!("--key={}", stranger.key))
        .arg(format!("--keyring={}", dev.cert.display()))
        .arg(format!("--signing-keyring={}", stranger.cert.display()))
        .arg(b.join("good-0.raucb"))
        .arg(b.join("wrong-key.raucb")))?;
    // One byte of the payload changed after signing.
    let mut tampered = fs::read(b.join("good-0.raucb"))?;
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x5a;
    fs::write(b.join("tampered.raucb"), tampered)?;

    run(crate::sh::cargo().args(["build", "--release", "--quiet", "-p", "stagebox-release"]))?;
    demo::build_binaries()?;
    run(crate::sh::cargo().args(["build", "--release", "--quiet", "-p", "stagebox-diag"]))?;
    let release = fs::canonicalize("target/release/stagebox-release")?;
    run(Command::new(&release)
        .arg("keygen")
        .arg("--out")
        .arg(work.join("release.pk8"))
        .stdout(Stdio::null()))?;
    demo::generated_speech(
        &work.join("speech.wav"),
        &["-s", "150"],
        "This is the station on the stage, speaking from slot A.",
        0.3,
    )?;
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(work.join("id_ed25519")))?;
    // The card: the image on a larger disk (the data partition grows into it on first boot).
    let disk = work.join("disk.img");
    run(Command::new("cp")
        .arg("--sparse=always")
        .arg(img)
        .arg(&disk))?;
    run(Command::new("truncate").args(["-s", "+1536M"]).arg(&disk))?;
    Ok(())
}

/// The test's bundles: kept between runs, made again when the image is newer.
fn bundles_dir() -> Result<PathBuf> {
    fs::create_dir_all(BUNDLES)?;
    Ok(fs::canonicalize(BUNDLES)?)
}

/// Whether `path` exists and is newer than `than`.
fn is_newer(path: &Path, than: &Path) -> bool {
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((modified(path), modified(than)), (Some(a), Some(b)) if a > b)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// The host side of the test, inside the namespace.
struct Rig {
    work: PathBuf,
    admin_port: u16,
    gateway: u16,
    ssh_port: u16,
    release: PathBuf,
    qemu: Option<Proc>,
    boots: u32,
    /// When the last power-on or reboot from the shell began, until the station joins.
    boot_started: Option<Instant>,
    /// Every power-on or reboot to joined, seconds (under emulation: not a speed claim).
    boot_to_joined_s: Vec<f64>,
    _server: Proc,
}

pub fn run_inside(opts: TestOptions) -> Result<()> {
    run(Command::new("ip").args(["link", "set", "lo", "up"]))?;
    // The guest reaches the namespace's loopback as 10.0.2.2 (qemu's user-mode network); the
    // listener sends its media there too, so the server's media address is the same for
    // both. The namespace has no other interface: nothing leaves it.
    run(Command::new("ip").args(["addr", "add", "10.0.2.2/32", "dev", "lo"]))?;
    let started = Instant::now();
    let work = fs::canonicalize(WORK)?;
    let v = Versions::new()?;
    let bin = fs::canonicalize("target/release")?;
    let (gateway, media, admin_port) = (
        demo::free_tcp_port()?,
        demo::free_port()?,
        demo::free_tcp_port()?,
    );
    let updates = work.join("updates");
    fs::create_dir_all(&updates)?;
    let server_cfg = work.join("server.toml");
    fs::write(
        &server_cfg,
        format!(
            "[listen]\ngateway = \"127.0.0.1:{gateway}\"\nmedia = \"0.0.0.0:{media}\"\n\
             admin = \"127.0.0.1:{admin_port}\"\n\
             # The guest reaches the host's loopback as 10.0.2.2 (qemu's user-mode network).\n\
             media_public_host = \"10.0.2.2\"\n\n\
             [tls]\ncert = \"{dir}/cert.pem\"\nkey = \"{dir}/key.pem\"\n\n\
             [admin]\ntoken = \"{token}\"\n\n[updates]\ndir = \"{updates}\"\n\n\
             [[stage]]\nid = \"townhall\"\n\n\
             [[station]]\nid = \"{GUEST}\"\ntoken = \"token-{GUEST}-image\"\n\n\
             [[station]]\nid = \"{LISTENER}\"\ntoken = \"token-{LISTENER}-image\"\n",
            dir = work.display(),
            token = demo::ADMIN_TOKEN,
            updates = updates.display(),
        ),
    )?;
    let (server, pin) = demo::start_server(&bin, &work, &server_cfg)?;
    let release = bin.join("stagebox-release");
    let public_key = String::from_utf8(
        Command::new(&release)
            .arg("public-key")
            .arg("--key")
            .arg(work.join("release.pk8"))
            .output()?
            .stdout,
    )?
    .trim()
    .to_string();
    write_boot_partition(&work, gateway, &pin, &public_key)?;
    let mut rig = Rig {
        work: work.clone(),
        admin_port,
        gateway,
        ssh_port: demo::free_tcp_port()?,
        release,
        qemu: None,
        boots: 0,
        boot_started: None,
        boot_to_joined_s: Vec::new(),
        _server: server,
    };
    let listener = start_listener(&bin, &work, gateway, &pin)?;
    let mut report = json!({});

    // 1. Slot A joins; the listener hears it.
    rig.power_on()?;
    let first = rig.joined(&v.v1, None)?;
    rig.expect_slot("A")?;
    let heard = rig.speak_and_listen(&listener)?;
    report["heard"] = heard;
    println!("image test: slot A joined; the listener heard the station");
    report["console"] = console::check(&rig)?;
    println!(
        "image test: the console on its serial line answers stagebox-diag with the label's PIN"
    );

    // 2. v2 while live: installed, the reboot held until PTT is let go.
    rig.guest(&format!("{} ptt down", control_cmd()))?;
    rig.publish("v2.raucb", &v.v2, 30)?;
    rig.guest(&format!("{} update check", control_cmd()))?;
    rig.wait_update("awaiting_reboot", UPDATE_LIMIT)?;
    let held_from = Instant::now();
    std::thread::sleep(Duration::from_secs(15));
    if rig.boot_id()? != first || rig.firmware()?["update"] != "awaiting_reboot" {
        bail!("the station rebooted (or gave up the update) while it was live");
    }
    rig.guest(&format!("{} ptt up", control_cmd()))?;
    let second = rig.joined(&v.v2, Some(&first))?;
    rig.expect_slot("B")?;
    rig.expect_marked("B")?;
    report["reboot_held_while_live_s"] = json!(held_from.elapsed().as_secs_f64());
    println!("image test: v2 installed while live, rebooted when released, B marked good");

    // The owner's settings, after the live update (their check restarts the daemon, which
    // rejoins as audience).
    report["owner_settings"] = owner::check(&rig)?;
    println!(
        "image test: the owner's time zone and Wi-Fi are set; a mistake is reported and waits"
    );

    // 3. Healthy reboots stay; spent tries are counted afresh; a corrupted env copy is survived.
    let mut boot = second;
    for i in 0..opts.healthy_reboots {
        rig.reboot();
        boot = rig.joined(&v.v2, Some(&boot))?;
        rig.expect_slot("B")?;
        rig.expect_marked("B")?;
        println!("image test: healthy reboot {} stayed on B", i + 1);
    }
    rig.guest("fw_setenv BOOT_A_LEFT 0 && fw_setenv BOOT_B_LEFT 0")?;
    let log_mark = rig.serial_len();
    rig.reboot();
    boot = rig.joined(&v.v2, Some(&boot))?;
    rig.expect_slot("B")?;
    if !rig
        .serial_since(log_mark)?
        .contains("no tries left on either slot")
    {
        bail!("U-Boot did not say it counted afresh after both slots' tries were spent");
    }
    rig.expect_marked("B")?;
    println!("image test: both slots' tries spent: U-Boot counted afresh and booted B");
    rig.power_cut()?;
    corrupt_env_copy(&work.join("disk.img"))?;
    rig.power_on()?;
    boot = rig.joined(&v.v2, Some(&boot))?;
    rig.expect_slot("B")?;
    println!("image test: one copy of U-Boot's environment corrupted: booted B from the other");

    // 4. Refusals: nothing installed, nothing rebooted.
    let mut refusals = Vec::new();
    for (what, bundle_file, version, days, expect) in [
        (
            "an older version",
            "v2.raucb",
            v.v1.as_str(),
            30,
            "not newer",
        ),
        (
            "an expired manifest",
            "good-0.raucb",
            &v.after(0),
            0,
            "expired",
        ),
        (
            "a bundle signed with another key",
            "wrong-key.raucb",
            &v.after(0),
            30,
            "install",
        ),
        (
            "a tampered bundle",
            "tampered.raucb",
            &v.after(0),
            30,
            "install",
        ),
    ] {
        let before = rig.firmware()?["last_problem"].clone();
        rig.publish(bundle_file, version, days)?;
        rig.guest(&format!("{} update check", control_cmd()))?;
        let problem = rig.wait_problem(&before, UPDATE_LIMIT)?;
        if !problem.to_lowercase().contains(expect) {
            bail!("{what}: refused, but for another reason: {problem}");
        }
        if rig.boot_id()? != boot || rig.firmware()?["running"] != v.v2.as_str() {
            bail!("{what}: the station did not keep running v2");
        }
        println!("image test: {what} refused: {problem}");
        refusals.push(json!({"case": what, "station_said": problem}));
    }
    // A full data partition (the daemon's share of it, filled by root): the download
    // stops and says why; v2 runs on. Freed, the agent's next try carries on with the same
    // update: step 5's v3.
    rig.guest("fallocate -l \"$(df --output=avail -B1 /data | tail -n 1)\" /data/filler")?;
    let before = rig.firmware()?["last_problem"].clone();
    rig.publish("v3.raucb", &v.v3, 30)?;
    rig.guest(&format!("{} update check", control_cmd()))?;
    let problem = rig.wait_problem(&before, UPDATE_LIMIT);
    rig.guest("rm -f /data/filler")?;
    let problem = problem?;
    if !problem.contains("the data partition is full") {
        bail!("a full data partition: the station said {problem:?}");
    }
    if rig.boot_id()? != boot || rig.firmware()?["running"] != v.v2.as_str() {
        bail!("a full data partition: the station did not keep running v2");
    }
    println!("image test: a full data partition said plainly: {problem}");
    refusals.push(json!({"case": "a full data partition", "station_said": problem}));
    report["refusals"] = json!(refusals);

    // 5. v3 cannot start its daemon: back on v2 by itself (v3 is published; the agent
    // retries it now that there is room).
    let rollback_from = Instant::now();
    // Download, install, three failed boots of A, then B again.
    boot = rig
        .joined_any(UPDATE_LIMIT + 3 * BOOT_LIMIT, &[&v.v2], Some(&boot))?
        .0;
    rig.expect_slot("B")?;
    let problem = rig.firmware()?["last_problem"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !problem.contains("did not prove itself") {
        bail!("after the rollback the station does not say v3 failed: {problem:?}");
    }
    report["rollback_s"] = json!(rollback_from.elapsed().as_secs_f64());
    println!("image test: v3 failed its boots; back on v2: {problem}");

    // 6. Power cuts.
    let cuts = power_cuts(&mut rig, &v, opts.power_cuts, boot)?;
    report["power_cuts"] = cuts;

    report["qemu_power_ons"] = json!(rig.boots);
    report["power_on_or_reboot_to_joined_s"] = json!(rig.boot_to_joined_s);
    report["image_bytes"] = json!(fs::metadata("target/image/stagebox-qemu.img")?.len());
    report["image_zst_bytes"] = json!(fs::metadata("target/image/stagebox-qemu.img.zst")?.len());
    report["bundle_bytes"] = json!(fs::metadata(bundles_dir()?.join("v2.raucb"))?.len());
    report["wall_time_s"] = json!(started.elapsed().as_secs_f64());
    fs::write(
        work.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let times = &rig.boot_to_joined_s;
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    println!(
        "image test: passed — {} power-ons, power-on or reboot to joined {mean:.0} s on average \
         under emulation (max {:.0} s), report in {}",
        rig.boots,
        times.iter().cloned().fold(0.0, f64::max),
        work.join("report.json").display()
    );
    drop(listener);
    rig.power_cut()?;
    // The test's copy of the disk is as big as the image; the report and logs stay.
    fs::remove_file(work.join("disk.img"))?;
    Ok(())
}

/// Fails unless `text` (what `what` printed) contains each of `wanted`.
fn expect(what: &str, text: &str, wanted: &[&str]) -> Result<()> {
    for w in wanted {
        if !text.contains(w) {
            bail!("{what}: expected {w:?} in:\n{text}");
        }
    }
    Ok(())
}

fn control_cmd() -> String {
    format!("stationd --control {CONTROL}")
}

/// How many updates `cuts` power cuts take (each is cut while downloading, installing and in
/// its first boot).
fn releases_for(cuts: u32) -> u32 {
    cuts.div_ceil(3)
}

/// The phases a cut falls in, in turn.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Download,
    Install,
    FirstBoot,
}

/// Cuts the power `count` times: each update is cut while downloading, while installing and
/// in its first boot (as many as remain), then allowed to finish; the next update continues.
fn power_cuts(rig: &mut Rig, v: &Versions, count: u32, mut boot: String) -> Result<Value> {
    let mut running = v.v2.clone();
    let mut records = Vec::new();
    let mut n = 0;
    let mut seed = 0x5eed_u64 ^ u64::from(count);
    let mut random_ms = |max: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % max.max(1)
    };
    let mut release = 1;
    while n < count {
        let version = v.after(release);
        let file = format!("good-{release}.raucb");
        if !bundles_dir()?.join(&file).exists() {
            bundle::make(
                Board::Qemu,
                &version,
                &bundle::dev_signer()?,
                &[],
                &bundles_dir()?.join(&file),
            )?;
        }
        rig.publish(&file, &version, 30)?;
        rig.guest(&format!("{} update check", control_cmd()))?;
        for phase in [Phase::Download, Phase::Install, Phase::FirstBoot] {
            if n >= count {
                break;
            }
            let seen = match phase {
                Phase::Download | Phase::Install => {
                    let (state, within_ms) = match phase {
                        Phase::Download => ("downloading", 8000),
                        _ => ("installing", 20000),
                    };
                    rig.wait_update(state, UPDATE_LIMIT)?;
                    std::thread::sleep(Duration::from_millis(random_ms(within_ms)));
                    rig.firmware()?["update"]
                        .as_str()
                        .unwrap_or("?")
                        .to_string()
                }
                Phase::FirstBoot => {
                    rig.wait_disconnected(UPDATE_LIMIT)?;
                    std::thread::sleep(Duration::from_millis(2000 + random_ms(25000)));
                    "first boot of the new slot".to_string()
                }
            };
            rig.power_cut()?;
            n += 1;
            rig.power_on()?;
            let up = Instant::now();
            // After a cut in the first boot the new version may or may not have proven
            // itself yet; either way a good slot runs and rejoins.
            let (id, now_running) =
                rig.joined_any(BOOT_LIMIT, &[&running, &version], Some(&boot))?;
            boot = id;
            rig.expect_marked_running()?;
            println!(
                "image test: power cut {n} ({phase:?}, station was {seen}): rejoined on {now_running}"
            );
            records.push(json!({
                "cut": n,
                "phase": format!("{phase:?}"),
                "station_was": seen,
                "came_up_on": now_running,
                "rejoined_after_s": up.elapsed().as_secs_f64(),
            }));
            if now_running == version {
                running = version.clone();
            }
            if matches!(phase, Phase::Download | Phase::Install) && now_running == version {
                break;
            }
            if !matches!(phase, Phase::FirstBoot) {
                // The agent looks again by itself after a while; ask now.
                rig.guest(&format!("{} update check", control_cmd()))?;
            }
        }
        // Let this one finish before the next.
        if running != version {
            boot = rig.joined_any(UPDATE_LIMIT, &[&version], Some(&boot))?.0;
            rig.expect_marked_running()?;
            running = version.clone();
        }
        release += 1;
    }
    Ok(json!(records))
}

impl Rig {
    fn qemu_command(&self) -> Result<Command> {
        let uboot = fs::canonicalize("target/image/u-boot/qemu_arm64/u-boot.bin")?;
        let mut cmd = Command::new("qemu-system-aarch64");
        cmd.args([
            "-M",
            "virt",
            "-cpu",
            "cortex-a57",
            "-smp",
            "2",
            "-m",
            "1024",
        ])
        .args(["-display", "none", "-monitor", "none"])
        .arg("-serial")
        .arg(format!("file:{}", self.serial_log().display()))
        // The technician's console line (hvc0 in the guest), a socket here.
        .args(["-device", "virtio-serial-device"])
        .arg("-chardev")
        .arg(format!(
            "socket,id=console,path={},server=on,wait=off",
            self.work.join("console.sock").display()
        ))
        .args(["-device", "virtconsole,chardev=console"])
        .arg("-bios")
        .arg(uboot)
        .arg("-drive")
        .arg(format!(
            "if=none,id=hd0,file={},format=raw",
            self.work.join("disk.img").display()
        ))
        .args(["-device", "virtio-blk-device,drive=hd0"])
        .arg("-netdev")
        .arg(format!(
            "user,id=n0,hostfwd=tcp:127.0.0.1:{}-:22",
            self.ssh_port
        ))
        .args(["-device", "virtio-net-device,netdev=n0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
        Ok(cmd)
    }

    fn serial_log(&self) -> PathBuf {
        self.work.join(format!("serial-{}.log", self.boots))
    }

    fn power_on(&mut self) -> Result<()> {
        self.boots += 1;
        let err = fs::File::create(self.work.join(format!("qemu-{}.log", self.boots)))?;
        let child = self
            .qemu_command()?
            .stderr(err)
            .spawn()
            .context("starting qemu-system-aarch64")?;
        self.qemu = Some(Proc(child, "qemu-system-aarch64"));
        self.boot_started = Some(Instant::now());
        Ok(())
    }

    /// Pulls the plug: qemu is killed, nothing is flushed or shut down.
    fn power_cut(&mut self) -> Result<()> {
        if let Some(mut p) = self.qemu.take() {
            let _ = p.0.kill();
            let _ = p.0.wait();
        }
        Ok(())
    }

    fn serial_len(&self) -> u64 {
        fs::metadata(self.serial_log()).map_or(0, |m| m.len())
    }

    fn serial_since(&self, from: u64) -> Result<String> {
        let text = fs::read(self.serial_log())?;
        Ok(String::from_utf8_lossy(&text[(from as usize).min(text.len())..]).into_owned())
    }

    /// Runs `command` on the station as root over SSH; its output.
    fn guest(&self, command: &str) -> Result<String> {
        let out = Command::new("ssh")
            .arg("-i")
            .arg(self.work.join("id_ed25519"))
            .args(["-p", &self.ssh_port.to_string()])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=20",
                "-o",
                "ServerAliveInterval=10",
                "-o",
                "LogLevel=ERROR",
                "root@127.0.0.1",
            ])
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .context("ssh")?;
        if !out.status.success() {
            bail!(
                "on the station: {command}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Reboots the station as a person would from its shell (the connection drops with it).
    fn reboot(&mut self) {
        let _ = self.guest("systemctl reboot");
        self.boot_started = Some(Instant::now());
    }

    fn boot_id(&self) -> Result<String> {
        self.guest("cat /proc/sys/kernel/random/boot_id")
    }

    /// This station's entry in the server's admin view.
    fn station_view(&self) -> Result<Value> {
        let all = admin(self.admin_port, &json!({"action": "stations"}))?;
        all["stations"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["station_id"] == GUEST).cloned())
            .context("the server does not list the station")
    }

    fn firmware(&self) -> Result<Value> {
        Ok(self.station_view()?["firmware"].clone())
    }

    /// Waits for a boot other than `previous` in which the station joined the stage running
    /// `version`; returns that boot's id.
    fn joined(&mut self, version: &str, previous: Option<&str>) -> Result<String> {
        Ok(self.joined_any(BOOT_LIMIT, &[version], previous)?.0)
    }

    /// Waits up to `limit` for a boot other than `previous` in which the station joined
    /// running one of `versions`; returns the boot's id and the version.
    fn joined_any(
        &mut self,
        limit: Duration,
        versions: &[&str],
        previous: Option<&str>,
    ) -> Result<(String, String)> {
        let mut found = None;
        let result = wait_for("the station to boot and join", limit, || {
            let id = self.boot_id()?;
            if Some(id.as_str()) == previous {
                return Ok(false);
            }
            let stats: Value =
                serde_json::from_str(&self.guest(&format!("{} stats", control_cmd()))?)?;
            let joined = stats["milestones"]["ready_unix_ns"].as_u64().unwrap_or(0) > 0;
            let view = self.station_view()?;
            let running = view["firmware"]["running"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if joined && view["connected"] == true && versions.contains(&running.as_str()) {
                found = Some((id, running));
                return Ok(true);
            }
            Ok(false)
        });
        if let Err(e) = result {
            bail!(
                "{e:#} (wanted {versions:?}); the console is in {}",
                self.serial_log().display()
            );
        }
        let found = found.context("joined")?;
        if let Some(t) = self.boot_started.take() {
            self.boot_to_joined_s.push(t.elapsed().as_secs_f64());
        }
        Ok(found)
    }

    fn expect_slot(&self, slot: &str) -> Result<()> {
        let cmdline = self.guest("cat /proc/cmdline")?;
        if !cmdline.contains(&format!("rauc.slot={slot}")) {
            bail!("expected slot {slot}, the kernel says: {cmdline}");
        }
        Ok(())
    }

    /// The station marked `slot` good this boot: its tries are full and it is first.
    fn expect_marked(&self, slot: &str) -> Result<()> {
        wait_for(
            "the slot to be marked good",
            Duration::from_secs(60),
            || Ok(self.guest("test -e /run/stagebox/marked-good && echo yes")? == "yes"),
        )?;
        let env = self.guest("fw_printenv BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT")?;
        if !env.contains(&format!("BOOT_ORDER={slot}"))
            || !env.contains(&format!("BOOT_{slot}_LEFT=3"))
        {
            bail!("slot {slot} is not first with its tries full: {env}");
        }
        Ok(())
    }

    fn expect_marked_running(&self) -> Result<()> {
        let cmdline = self.guest("cat /proc/cmdline")?;
        let slot = if cmdline.contains("rauc.slot=B") {
            "B"
        } else {
            "A"
        };
        self.expect_marked(slot)
    }

    fn wait_update(&self, state: &str, limit: Duration) -> Result<()> {
        wait_for(&format!("the update to be {state}"), limit, || {
            Ok(self.firmware()?["update"] == state)
        })
    }

    /// Waits for the station to refuse what was published: a new problem reported, or (for
    /// a bundle RAUC refuses, whose report may read as the last one did) an install seen to
    /// start and end without a reboot. Returns what the station said.
    fn wait_problem(&self, before: &Value, limit: Duration) -> Result<String> {
        let mut installing = false;
        let mut said = String::new();
        wait_for("the station to refuse", limit, || {
            let fw = self.firmware()?;
            installing |= fw["update"] == "installing";
            let new_problem = fw["last_problem"] != *before;
            let install_failed = installing && fw["update"] == "idle";
            if fw["last_problem"].is_string() && (new_problem || install_failed) {
                said = fw["last_problem"].as_str().unwrap_or_default().to_string();
                return Ok(true);
            }
            Ok(false)
        })?;
        Ok(said)
    }

    fn wait_disconnected(&self, limit: Duration) -> Result<()> {
        wait_for("the station to go away to reboot", limit, || {
            Ok(self.station_view()?["connected"] == false)
        })
    }

    /// Puts a signed manifest for `bundle_file` at `version`, valid `days`, where the station
    /// looks.
    fn publish(&self, bundle_file: &str, version: &str, days: u64) -> Result<()> {
        let updates = self.work.join("updates");
        let served = updates.join(bundle_file);
        if !served.exists() {
            fs::hard_link(bundles_dir()?.join(bundle_file), &served)?;
        }
        let url = format!("https://10.0.2.2:{}/updates/{bundle_file}", self.gateway);
        let staged = self.work.join("manifest.next");
        run(Command::new(&self.release)
            .arg("manifest")
            .arg("--key")
            .arg(self.work.join("release.pk8"))
            .args(["--board", "qemu", "--version", version, "--url", &url])
            .arg("--bundle")
            .arg(&served)
            .arg(format!("--valid-days={days}"))
            .arg("--out")
            .arg(&staged)
            .stdout(Stdio::null()))?;
        fs::rename(&staged, updates.join("manifest.json"))?;
        Ok(())
    }

    /// The station is invited, accepts, holds PTT and plays its sample; the listener on the
    /// host must hear it. Returns what was measured.
    fn speak_and_listen(&self, listener: &Listener) -> Result<Value> {
        admin(
            self.admin_port,
            &json!({"action": "invite", "stage": "townhall", "station": GUEST}),
        )?;
        wait_for("the invitation", Duration::from_secs(30), || {
            Ok(self
                .guest(&format!("{} stats", control_cmd()))?
                .contains("\"led\":\"invited\""))
        })?;
        self.guest(&format!("{} ptt click", control_cmd()))?;
        wait_for(
            "the station to be a speaker",
            Duration::from_secs(30),
            || {
                Ok(self
                    .guest(&format!("{} stats", control_cmd()))?
                    .contains("\"led\":\"speaker\""))
            },
        )?;
        std::thread::sleep(Duration::from_millis(600));
        let before = listener.frames_played()?;
        self.guest(&format!("{c} ptt down && {c} mic play", c = control_cmd()))?;
        let speech = crate::analysis::read_wav(&self.work.join("speech.wav"))?;
        std::thread::sleep(Duration::from_secs_f64(
            speech.len() as f64 / 48_000.0 + 2.0,
        ));
        self.guest(&format!("{} ptt up", control_cmd()))?;
        let played = listener.frames_played()? - before;
        let speech_frames = speech.len() as u64 / 960;
        if played < speech_frames * 8 / 10 {
            bail!("the listener played {played} frames of the station's {speech_frames}");
        }
        Ok(json!({"speech_frames": speech_frames, "listener_frames_played": played}))
    }
}

/// The listening sim station on the host.
struct Listener {
    socket: PathBuf,
    _proc: Proc,
}

impl Listener {
    fn frames_played(&self) -> Result<u64> {
        let stats: Value = serde_json::from_str(&demo::control(&self.socket, "stats")?)?;
        Ok(stats["playout"]["frames_played"].as_u64().unwrap_or(0))
    }
}

fn start_listener(bin: &Path, work: &Path, gateway: u16, pin: &str) -> Result<Listener> {
    let cfg = work.join("listener.toml");
    let socket = work.join("listener.sock");
    fs::write(
        &cfg,
        format!(
            "[station]\nid = \"{LISTENER}\"\ntoken = \"token-{LISTENER}-image\"\n\n\
             [server]\ngateway = \"wss://127.0.0.1:{gateway}/signal\"\nstage = \"townhall\"\n\
             pin_sha256 = \"{pin}\"\n\n[board]\nprofile = \"sim\"\n\n\
             [sim]\nspeaker_wav = \"{dir}/listener-speaker.wav\"\ncontrol_socket = \"{}\"\n\
             draw_leds = false\n",
            socket.display(),
            dir = work.display()
        ),
    )?;
    let log = fs::File::create(work.join("listener.log"))?;
    let child = Command::new(bin.join("stationd"))
        .arg("--config")
        .arg(&cfg)
        .stderr(log)
        .spawn()
        .context("starting the listener")?;
    Ok(Listener {
        socket,
        _proc: Proc(child, "stationd"),
    })
}

/// The owner's edits on the boot partition, made as an owner would on any computer: the
/// station's `stagebox.toml`, an SSH key, and the sim board's speech.
fn write_boot_partition(work: &Path, gateway: u16, pin: &str, public_key: &str) -> Result<()> {
    let toml = work.join("stagebox.toml");
    fs::write(
        &toml,
        format!(
            "# The image test's station: the sim board, the stage server on the host.\n\
             [station]\nid = \"{GUEST}\"\ntoken = \"token-{GUEST}-image\"\n\n\
             [server]\ngateway = \"wss://10.0.2.2:{gateway}/signal\"\nstage = \"townhall\"\n\
             pin_sha256 = \"{pin}\"\n\n[board]\nprofile = \"sim\"\n\n\
             [sim]\nmic_wav = \"/boot/firmware/speech.wav\"\ndraw_leds = false\n\n\
             [update]\nmanifest_url = \"https://10.0.2.2:{gateway}/updates/manifest.json\"\n\
             keys = [\"{public_key}\"]\nretry_after_s = 10\nhealth_within_s = 90\n\n{}",
            owner::SETTINGS
        ),
    )?;
    let fat = format!("{}@@4M", work.join("disk.img").display());
    run(Command::new("mcopy")
        .args(["-o", "-i", &fat])
        .arg(&toml)
        .arg("::stagebox.toml"))?;
    run(Command::new("mcopy")
        .args(["-o", "-i", &fat])
        .arg(work.join("speech.wav"))
        .arg("::speech.wav"))?;
    let _ = Command::new("mmd")
        .args(["-i", &fat, "::ssh"])
        .stderr(Stdio::null())
        .status();
    run(Command::new("mcopy")
        .args(["-o", "-i", &fat])
        .arg(work.join("id_ed25519.pub"))
        .arg("::ssh/authorized_keys"))
}

/// Garbles one of the two copies of U-Boot's environment on the boot partition (as a cut in
/// the middle of writing it would).
fn corrupt_env_copy(disk: &Path) -> Result<()> {
    let fat = format!("{}@@4M", disk.display());
    let garbage = disk.with_file_name("garbage.env");
    let bytes: Vec<u8> = (0..0x4000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(&garbage, bytes)?;
    run(Command::new("mcopy")
        .args(["-o", "-i", &fat])
        .arg(&garbage)
        .arg("::uboot.env"))
}
