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
/// How long the test watches a live station keep an installed update waiting.
const LIVE_HOLD: Duration = Duration::from_secs(5);

/// Prepares everything that needs the network or the host (packages, the image, bundles,
/// binaries), then runs the test itself inside a new network namespace.
pub fn run_test(opts: TestOptions) -> Result<()> {
    ensure_tools()?;
    prepare_all(opts)?;
    run_prepared(opts)
}

/// Installs what the image's build and its test run (the Debian packages, binfmt_misc for
/// arm64): done before [`prepare_all`] runs beside other steps, which must not both call
/// apt-get.
pub fn ensure_tools() -> Result<()> {
    if !crate::setup::is_root() {
        bail!("the image test needs root (image build, network namespace)");
    }
    ensure_qemu()?;
    crate::setup::ensure_packages(&["openssh-client", "mtools", "iproute2", "util-linux"])?;
    for tools in [
        crate::image::TOOLS,
        crate::uboot::TOOLS,
        crate::bundle::TOOLS,
        crate::deb::TEST_TOOLS,
    ] {
        crate::setup::ensure_packages(tools)?;
    }
    crate::cross::ensure_cross_tools()?;
    crate::deb::ensure_binfmt()
}

/// The image (unless reused), the bundles, the binaries, the keys and the disk: everything
/// the test needs from the host and the network, before its namespace.
pub fn prepare_all(opts: TestOptions) -> Result<()> {
    let built = Path::new("target/image/stagebox-qemu.img");
    let img = if opts.reuse_image && built.exists() {
        built.to_path_buf()
    } else {
        crate::image::build(Board::Qemu, None)?
    };
    let work = fresh_dir(WORK)?;
    prepare(&work, &img, opts.power_cuts)
}

/// The test itself, in a network namespace of its own, once [`prepare_all`] is done.
pub fn run_prepared(opts: TestOptions) -> Result<()> {
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
    println!(
        "image test: slot A joined; the listener heard what the station said (correlation \
         {:.2}, PESQ {:.2})",
        heard["correlation"].as_f64().unwrap_or(0.0),
        heard["pesq_wb"].as_f64().unwrap_or(0.0)
    );
    report["heard"] = heard;
    report["console"] = console::check(&rig)?;
    println!(
        "image test: the console on its serial line answers stagebox-diag with the label's PIN"
    );

    // 2. v2 while live: installed, the reboot held until PTT is let go.
    rig.guest(&format!("{} ptt down", control_cmd()))?;
    rig.publish("v2.raucb", &v.v2, 30)?;
    // Kept to be replayed once newer manifests have been seen (step 4).
    fs::copy(
        work.join("updates/manifest.json"),
        work.join("manifest-v2.json"),
    )?;
    rig.guest(&format!("{} update check", control_cmd()))?;
    rig.wait_update("awaiting_reboot", UPDATE_LIMIT)?;
    let ready = Instant::now();
    // Live: the update waits, looked at every second for a while.
    let hold_checked = wait_for("a reboot while live", LIVE_HOLD, || {
        let view = rig.station_view()?;
        let still = view["connected"] == true
            && view["firmware"]["update"] == "awaiting_reboot"
            && rig.boot_id().is_ok_and(|id| id == first);
        Ok(!still)
    });
    if hold_checked.is_ok() {
        bail!("the station rebooted (or gave up the update) while it was live");
    }
    rig.guest(&format!("{} ptt up", control_cmd()))?;
    let released = Instant::now();
    rig.wait_disconnected(BOOT_LIMIT)?;
    let gone = Instant::now();
    let second = rig.joined(&v.v2, Some(&first))?;
    rig.expect_slot("B")?;
    rig.expect_marked("B")?;
    // Measured from when the server first showed the update ready (awaiting the reboot) to
    // when the station went away to reboot, and from PTT let go to that.
    report["update_ready_to_reboot_s"] = json!((gone - ready).as_secs_f64());
    report["ptt_released_to_reboot_s"] = json!((gone - released).as_secs_f64());
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
    let (garbled, expected) = corrupt_current_env_copy(&work.join("disk.img"))?;
    rig.power_on()?;
    boot = rig.joined(&v.v2, Some(&boot))?;
    rig.expect_slot("B")?;
    let serial = rig.serial_since(0)?;
    if !serial.contains(&expected) || serial.contains("using default environment") {
        bail!(
            "the current copy ({garbled}) garbled: U-Boot should have booted from the other \
             copy and said {expected:?}; the console is in {}",
            rig.serial_log().display()
        );
    }
    report["env_fallback"] = json!({"garbled": garbled, "u_boot_said": expected});
    println!(
        "image test: the current copy of U-Boot's environment ({garbled}) garbled: U-Boot took \
         the other and said {expected:?}"
    );

    // 4. Refusals: nothing installed, nothing rebooted. Each must be refused for its own
    // reason, read from a report the station sent after this case was published.
    let mut refusals = Vec::new();
    let replayed = work.join("manifest-v2.json");
    for case in [
        Refusal::Publish(
            "an older version",
            "v2.raucb",
            &v.v1,
            30,
            &["is not newer than"],
        ),
        Refusal::Replay("v2's manifest replayed after newer ones", &replayed),
        Refusal::ClockBack("an expired manifest, the station's clock set back to 2020"),
        Refusal::Publish(
            "a bundle signed with another key",
            "wrong-key.raucb",
            &v.after(0),
            30,
            &["signature verification failed"],
        ),
        Refusal::Publish(
            "a tampered bundle",
            "tampered.raucb",
            &v.after(0),
            30,
            &["bundle payload is corrupted", "Input/output error"],
        ),
    ] {
        let before = rig.firmware()?["last_problem"].clone();
        let (what, reasons, clock_back) = match case {
            Refusal::Publish(what, bundle_file, version, days, reasons) => {
                rig.publish(bundle_file, version, days)?;
                (what, reasons, false)
            }
            Refusal::Replay(what, manifest) => {
                let staged = work.join("manifest.next");
                fs::copy(manifest, &staged)?;
                fs::rename(&staged, work.join("updates/manifest.json"))?;
                (what, &["a replay"][..], false)
            }
            Refusal::ClockBack(what) => {
                rig.guest("date -s @1577836800 >/dev/null")?;
                rig.publish("good-0.raucb", &v.after(0), 0)?;
                (what, &["expired"][..], true)
            }
        };
        rig.guest(&format!("{} update check", control_cmd()))?;
        let refused = rig.wait_refusal(&before, reasons, UPDATE_LIMIT);
        let firmware = rig.firmware()?;
        if clock_back {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
            rig.guest(&format!("date -s @{} >/dev/null", now.as_secs()))?;
            if firmware["clock_unsynchronized"] != true {
                bail!("{what}: the station does not say its clock is unsynchronized: {firmware}");
            }
        }
        let problem =
            refused.with_context(|| format!("{what}: the station reported {firmware}"))?;
        if rig.boot_id()? != boot || firmware["running"] != v.v2.as_str() {
            bail!("{what}: the station did not keep running v2");
        }
        println!("image test: {what} refused: {problem}");
        refusals.push(json!({"case": what, "station_said": problem}));
    }
    // The floor is on the data partition: the newest manifest's signing time is kept.
    let floor: Value =
        serde_json::from_str(&rig.guest("cat /var/lib/stagebox/update/time-floor")?)?;
    if floor["newest_issued_unix"].as_u64().unwrap_or(0) < 1_600_000_000 {
        bail!("the station does not keep the newest manifest's signing time: {floor}");
    }
    report["time_floor"] = floor;
    // A full data partition (the daemon's share of it, filled by root): the download
    // stops and says why; v2 runs on. Freed, the agent's next try carries on with the same
    // update: step 5's v3.
    rig.guest("fallocate -l \"$(df --output=avail -B1 /data | tail -n 1)\" /data/filler")?;
    let before = rig.firmware()?["last_problem"].clone();
    rig.publish("v3.raucb", &v.v3, 30)?;
    rig.guest(&format!("{} update check", control_cmd()))?;
    let problem = rig.wait_refusal(&before, &["the data partition is full"], UPDATE_LIMIT);
    rig.guest("rm -f /data/filler")?;
    let problem = problem?;
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
    // Counted by where each cut landed, as the station had said, not by where it was aimed.
    let mut landed = std::collections::BTreeMap::<String, u32>::new();
    for cut in cuts.as_array().into_iter().flatten() {
        let place = cut["landed_in"].as_str().unwrap_or("?").to_string();
        *landed.entry(place).or_default() += 1;
    }
    println!(
        "image test: {} power cuts, where they landed: {landed:?}",
        opts.power_cuts
    );
    report["power_cuts"] = cuts;
    report["power_cuts_landed_in"] = json!(landed);

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

/// What step 4 publishes to be refused.
enum Refusal<'a> {
    /// `(what, bundle, version, valid days, the reasons the station may give)`.
    Publish(&'a str, &'a str, &'a str, u64, &'a [&'a str]),
    /// A manifest published before, served again.
    Replay(&'a str, &'a Path),
    /// A manifest that expires as it is signed, with the station's clock set back years.
    ClockBack(&'a str),
}

/// What the station last said of itself before a cut.
enum LastWord {
    /// Its update's state, in its report to the server.
    Update(String),
    /// It was booting: whether the server saw it joined on the new version.
    Booting { joined: bool },
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
            // What the station last said of itself before the plug was pulled: its own
            // report to the server (the update's state), or for a boot, its serial console.
            let reported = match phase {
                Phase::Download | Phase::Install => {
                    let (state, within_ms) = match phase {
                        Phase::Download => ("downloading", 8000),
                        _ => ("installing", 20000),
                    };
                    rig.wait_update(state, UPDATE_LIMIT)?;
                    std::thread::sleep(Duration::from_millis(random_ms(within_ms)));
                    let fw = rig.firmware()?;
                    let update = fw["update"].as_str().unwrap_or("?").to_string();
                    (LastWord::Update(update), Instant::now())
                }
                Phase::FirstBoot => {
                    rig.wait_disconnected(UPDATE_LIMIT)?;
                    std::thread::sleep(Duration::from_millis(2000 + random_ms(25000)));
                    let view = rig.station_view()?;
                    let joined = view["connected"] == true
                        && view["firmware"]["running"] == version.as_str();
                    (LastWord::Booting { joined }, Instant::now())
                }
            };
            rig.power_cut()?;
            let report_to_cut_ms = reported.1.elapsed().as_secs_f64() * 1000.0;
            let landed = match reported.0 {
                LastWord::Update(state) => state,
                LastWord::Booting { joined } => rig.boot_progress(&version, joined)?,
            };
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
                "image test: power cut {n} (aimed at {phase:?}; the station had said: \
                 {landed}): rejoined on {now_running}"
            );
            records.push(json!({
                "cut": n,
                "aimed_at": format!("{phase:?}"),
                "landed_in": landed,
                "report_to_cut_ms": report_to_cut_ms,
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

    /// How far the boot under way had got, from its serial console: the slot U-Boot chose
    /// (`stagebox: booting slot X`), whether Linux had started, and whether the station had
    /// joined again running `version` (`joined`, from the server's view just before the cut).
    fn boot_progress(&self, version: &str, joined: bool) -> Result<String> {
        let serial = self.serial_since(0)?;
        let Some(at) = serial.rfind("stagebox: booting slot ") else {
            return Ok("rebooting, before U-Boot chose a slot".into());
        };
        let this_boot = &serial[at..];
        let slot = this_boot.get(23..24).unwrap_or("?").to_string();
        if !this_boot.contains("Linux version") {
            return Ok(format!("U-Boot, slot {slot} chosen"));
        }
        if joined {
            return Ok(format!("slot {slot} running {version}, joined"));
        }
        Ok(format!("slot {slot} booting Linux"))
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
        demo::station_view(self.admin_port, GUEST)?.context("the server does not list the station")
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

    /// Waits for the station to refuse what was just published for one of `reasons`: its
    /// report's last problem says one of them, and it is a new report — the problem changed
    /// from `before`, or an install was seen to start and end. A problem left from an earlier
    /// case gives another reason, so it cannot pass for this one. Returns what the station
    /// said.
    fn wait_refusal(&self, before: &Value, reasons: &[&str], limit: Duration) -> Result<String> {
        let mut installing = false;
        let mut said = String::new();
        let waited = wait_for("the station to refuse", limit, || {
            let fw = self.firmware()?;
            installing |= fw["update"] == "installing";
            let fresh = fw["last_problem"] != *before || (installing && fw["update"] == "idle");
            said = fw["last_problem"].as_str().unwrap_or_default().to_string();
            Ok(fresh && reasons.iter().any(|r| said.contains(r)))
        });
        if waited.is_err() {
            bail!("expected a refusal saying one of {reasons:?}; the station last said {said:?}");
        }
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
        // Where the listener's loudspeaker recording stands as the station starts speaking.
        let from = crate::analysis::read_growing_wav(&listener.recording)?.len();
        self.guest(&format!("{c} ptt down && {c} mic play", c = control_cmd()))?;
        let speech = crate::analysis::read_wav(&self.work.join("speech.wav"))?;
        std::thread::sleep(Duration::from_secs_f64(
            speech.len() as f64 / 48_000.0 + 2.0,
        ));
        self.guest(&format!("{} ptt up", control_cmd()))?;
        let played = listener.frames_played()? - before;
        let speech_frames = speech.len() as u64 / 960;
        // What the listener heard, judged against what was spoken: the speech is found in
        // its loudspeaker's recording (from half a second before the station started), then
        // compared sample for sample (correlation) and by wideband PESQ.
        let recorded = crate::analysis::read_growing_wav(&listener.recording)?;
        let start = from.saturating_sub(24_000);
        let heard = recorded.get(start..).unwrap_or_default();
        let span = i64::try_from(heard.len().saturating_sub(speech.len())).unwrap_or(0);
        let alignment = stagebox_judge::align(&speech, heard, 0..=span)
            .context("the spoken sample is silent")?;
        let pesq = crate::quality::pesq_wb(
            &speech,
            &crate::quality::aligned(heard, alignment.lag_samples, speech.len()),
            &self.work,
            "image-listener",
        )?;
        let judged = json!({
            "speech_frames": speech_frames,
            "listener_frames_played": played,
            "correlation": alignment.correlation,
            "pesq_wb": pesq,
        });
        if alignment.correlation < MIN_HEARD_CORRELATION || pesq < MIN_HEARD_PESQ {
            bail!(
                "the listener did not hear what the station said (correlation at least \
                 {MIN_HEARD_CORRELATION}, PESQ at least {MIN_HEARD_PESQ}): {judged}"
            );
        }
        Ok(judged)
    }
}

/// What the listener on the host must hear of the station's spoken sample: it is the same
/// speech (normalized cross-correlation, as the demo judges), intelligible (wideband PESQ;
/// the station runs under full-system emulation, where a period's processing can overrun).
const MIN_HEARD_CORRELATION: f64 = 0.7;
const MIN_HEARD_PESQ: f64 = 2.5;

/// The listening sim station on the host.
struct Listener {
    socket: PathBuf,
    /// Its loudspeaker, recorded.
    recording: PathBuf,
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
        recording: work.join("listener-speaker.wav"),
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

/// U-Boot's two environment files on the boot partition.
const ENV_COPIES: [&str; 2] = ["uboot.env", "uboot-redund.env"];

/// One copy of U-Boot's redundant environment: `CRC32 | flags | NAME=VALUE\0…\0\0`.
struct EnvCopy {
    crc_ok: bool,
    flags: u8,
    vars: Vec<(String, String)>,
}

impl EnvCopy {
    fn parse(bytes: &[u8]) -> EnvCopy {
        let data = bytes.get(5..).unwrap_or_default();
        let stored = bytes
            .get(..4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(data);
        let vars = data
            .split(|b| *b == 0)
            .take_while(|v| !v.is_empty())
            .filter_map(|v| {
                let text = String::from_utf8_lossy(v);
                let (k, val) = text.split_once('=')?;
                Some((k.to_string(), val.to_string()))
            })
            .collect();
        EnvCopy {
            crc_ok: bytes.len() > 5 && crc == stored,
            flags: bytes.get(4).copied().unwrap_or(0),
            vars,
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Which of two valid copies U-Boot takes (env_import_redund: the newer by its flags counter,
/// which wraps from 255 to 0; the first on a tie).
fn current_copy(first: &EnvCopy, second: &EnvCopy) -> usize {
    match (first.crc_ok, second.crc_ok) {
        (true, false) => 0,
        (false, true) => 1,
        _ => match (first.flags, second.flags) {
            (a, b) if a == b => 0,
            (0xff, 0) => 1,
            (0, 0xff) => 0,
            (a, b) if a > b => 0,
            _ => 1,
        },
    }
}

/// Garbles the copy of U-Boot's environment that U-Boot would take now (as a cut in the middle
/// of writing it would), with the station off. Returns the garbled file's name and the
/// `stagebox: booting slot …` line U-Boot must then print, from the other copy's variables
/// (the boot script takes a try from the first slot in BOOT_ORDER with tries left).
fn corrupt_current_env_copy(disk: &Path) -> Result<(&'static str, String)> {
    let fat = format!("{}@@4M", disk.display());
    let mut copies = Vec::new();
    for name in ENV_COPIES {
        let local = disk.with_file_name(name);
        run(Command::new("mcopy")
            .args(["-o", "-i", &fat])
            .arg(format!("::{name}"))
            .arg(&local))?;
        copies.push(EnvCopy::parse(&fs::read(&local)?));
    }
    if !(copies[0].crc_ok && copies[1].crc_ok) {
        bail!("before the test garbled anything, a copy of U-Boot's environment was already bad");
    }
    let current = current_copy(&copies[0], &copies[1]);
    let other = &copies[1 - current];
    let left = |slot: &str| -> Result<u32> {
        other
            .get(&format!("BOOT_{slot}_LEFT"))
            .unwrap_or("3")
            .parse()
            .context("tries left")
    };
    let (mut a, mut b) = (left("A")?, left("B")?);
    let order = other.get("BOOT_ORDER").unwrap_or("A B").to_string();
    let slot = order
        .split_whitespace()
        .find(|s| (*s == "A" && a > 0) || (*s == "B" && b > 0))
        .context("the surviving copy leaves no tries (the test expects some)")?
        .to_string();
    if slot == "A" {
        a -= 1;
    } else {
        b -= 1;
    }
    let garbage = disk.with_file_name("garbage.env");
    let bytes: Vec<u8> = (0..0x4000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(&garbage, bytes)?;
    run(Command::new("mcopy")
        .args(["-o", "-i", &fat])
        .arg(&garbage)
        .arg(format!("::{}", ENV_COPIES[current])))?;
    Ok((
        ENV_COPIES[current],
        format!("stagebox: booting slot {slot} (tries left: A {a}, B {b})"),
    ))
}
