//! `cargo xtask deb [--test]`: the station as an arm64 Debian package for Raspberry Pi OS /
//! Debian bookworm, assembled with dpkg-deb from the cross build: the daemon, the systemd
//! unit (notify + watchdog), the default configuration (a conffile), the board profiles and
//! their files, the udev rules, and maintainer scripts that create the `stagebox` user.
//!
//! With `--test`: builds an arm64 bookworm root with mmdebstrap (maintainer scripts run under
//! qemu-user through binfmt_misc), installs the package into it with dpkg, and checks the
//! files, the user, the enabled unit, and `stationd --version` / `--check-config` running in
//! that root under emulation; then that an upgrade keeps a disabled unit and an edited
//! configuration; then boots that root under systemd and waits for the packaged daemon to
//! come up and join a stage (`deb_boot`); and that remove and purge clean up.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::sh::run;

const PACKAGE: &str = "stagebox-stationd";

/// What the package test runs: the root's builder, the emulator, systemd-nspawn.
pub const TEST_TOOLS: &[&str] = &[
    "mmdebstrap",
    "arch-test",
    "qemu-user-static",
    "dpkg-dev",
    "systemd-container",
];

pub fn version() -> Result<String> {
    let text = fs::read_to_string("Cargo.toml")?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("version = \"")
                .and_then(|v| v.strip_suffix('"'))
        })
        .map(str::to_string)
        .context("workspace version in Cargo.toml")
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::copy(from, to).with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn write(to: &Path, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(to, text)?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            copy(&entry.path(), &target, 0o644)?;
        }
    }
    Ok(())
}

const POSTINST: &str = r#"#!/bin/sh
set -e
if [ "$1" = configure ]; then
    for g in gpio spi; do
        getent group "$g" >/dev/null || addgroup --system "$g"
    done
    # The daemon's state directory (systemd's StateDirectory= keeps it owned by the user).
    install -d -m 0750 /var/lib/stagebox
    if ! getent passwd stagebox >/dev/null; then
        adduser --system --group --no-create-home --home /var/lib/stagebox stagebox
    fi
    chown stagebox:stagebox /var/lib/stagebox
    adduser stagebox audio >/dev/null
    adduser stagebox gpio >/dev/null
    adduser stagebox spi >/dev/null
    chgrp stagebox /etc/stagebox/station.toml
    chmod 0640 /etc/stagebox/station.toml
    if [ -d /run/udev ] && command -v udevadm >/dev/null; then
        udevadm control --reload-rules || true
        udevadm trigger --subsystem-match=gpio --subsystem-match=spidev || true
    fi
fi
if [ "$1" = configure ] || [ "$1" = abort-upgrade ]; then
    deb-systemd-helper unmask stagebox-stationd.service >/dev/null || true
    # A new installation enables the unit; deb-systemd-helper remembers that it did, so an
    # upgrade keeps what the owner chose since with `systemctl enable/disable`.
    if deb-systemd-helper --quiet was-enabled stagebox-stationd.service; then
        deb-systemd-helper enable stagebox-stationd.service >/dev/null || true
    else
        deb-systemd-helper update-state stagebox-stationd.service >/dev/null || true
    fi
    # The console PIN is made at the first boot (or now, on a running system), never here:
    # an image built from this package must not carry one.
    deb-systemd-helper unmask stagebox-console-pin.service >/dev/null || true
    deb-systemd-helper enable stagebox-console-pin.service >/dev/null || true
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        deb-systemd-invoke restart stagebox-stationd.service >/dev/null || true
        deb-systemd-invoke start stagebox-console-pin.service >/dev/null || true
        if [ -f /etc/stagebox/console-pin.txt ]; then
            echo "stagebox: the console PIN for this station is in /etc/stagebox/console-pin.txt"
        fi
    fi
fi
"#;

const PRERM: &str = r#"#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    deb-systemd-invoke stop stagebox-stationd.service >/dev/null || true
    systemctl stop 'stagebox-console@*.service' >/dev/null 2>&1 || true
fi
"#;

const POSTRM: &str = r#"#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = purge ]; then
    deb-systemd-helper purge stagebox-stationd.service >/dev/null || true
    deb-systemd-helper purge stagebox-console-pin.service >/dev/null || true
    rm -rf /var/lib/stagebox /var/lib/stagebox-console
    rm -f /etc/stagebox/console-pin.txt
fi
"#;

/// Builds the package; returns its path.
pub fn build() -> Result<PathBuf> {
    build_as(&version()?)
}

/// The package of this tree, labelled `version` (the package test also builds it as an
/// earlier release, to upgrade from).
fn build_as(version: &str) -> Result<PathBuf> {
    let stationd = crate::cross::build_release()?;
    let out = Path::new("target/deb");
    let deb = out.join(format!("{PACKAGE}_{version}_arm64.deb"));
    // The package's tree and the .deb are made beside and the .deb renamed into place: the
    // image's build (in a thread of its own during `cargo xtask test`) builds the same package
    // while the package test reads it.
    let root = crate::sh::unique_sibling(&out.join(format!("{PACKAGE}_{version}_arm64")));
    copy(&stationd, &root.join("usr/bin/stationd"), 0o755)?;
    copy(
        &crate::cross::stripped_console()?,
        &root.join("usr/bin/stagebox-console"),
        0o755,
    )?;
    for unit in [
        "stagebox-stationd.service",
        "stagebox-console@.service",
        "stagebox-console-pin.service",
    ] {
        copy(
            &Path::new("board/files/systemd").join(unit),
            &root.join("lib/systemd/system").join(unit),
            0o644,
        )?;
    }
    for rules in ["60-stagebox.rules", "61-stagebox-console.rules"] {
        copy(
            &Path::new("board/files/udev").join(rules),
            &root.join("lib/udev/rules.d").join(rules),
            0o644,
        )?;
    }
    copy(
        Path::new("board/files/stagebox-factory-reset"),
        &root.join("usr/lib/stagebox/factory-reset"),
        0o755,
    )?;
    // What a factory reset puts back.
    copy(
        Path::new("firmware/stationd/station.default.toml"),
        &root.join("usr/share/stagebox/station.default.toml"),
        0o644,
    )?;
    copy(
        Path::new("firmware/stationd/station.default.toml"),
        &root.join("etc/stagebox/station.toml"),
        0o640,
    )?;
    let boards = root.join("usr/share/stagebox/boards");
    for dir in ["hats", "socs", "files"] {
        copy_tree(&Path::new("board").join(dir), &boards.join(dir))?;
    }
    let doc = root.join(format!("usr/share/doc/{PACKAGE}"));
    copy(Path::new("README.md"), &doc.join("README.md"), 0o644)?;
    copy(Path::new("docs/leds.md"), &doc.join("leds.md"), 0o644)?;
    copy(Path::new("docs/console.md"), &doc.join("console.md"), 0o644)?;
    write(
        &doc.join("copyright"),
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: stagebox\n\nFiles: *\nCopyright: stagebox developers\nLicense: MIT OR Apache-2.0\n",
        0o644,
    )?;
    let installed_kib = du_kib(&root)?;
    let control = format!(
        "Package: {PACKAGE}\n\
         Version: {version}\n\
         Architecture: arm64\n\
         Maintainer: stagebox developers <dev@stagebox.invalid>\n\
         Installed-Size: {installed_kib}\n\
         Depends: libc6 (>= 2.36), libasound2 (>= 1.2), libopus0 (>= 1.3), libwebrtc-audio-processing1 (>= 0.3), adduser, systemd\n\
         Recommends: alsa-utils, iproute2, iputils-ping\n\
         Section: sound\n\
         Priority: optional\n\
         Homepage: https://stagebox.invalid\n\
         Description: stagebox station daemon for live-audio stages\n \
         Joins a stage over WebSocket + TLS, sends and plays Opus over encrypted RTP,\n \
         with push-to-talk and hand-raise buttons and status LEDs on Raspberry Pi\n \
         boards (ReSpeaker HATs, USB sound cards).\n"
    );
    let debian = root.join("DEBIAN");
    write(&debian.join("control"), &control, 0o644)?;
    write(
        &debian.join("conffiles"),
        "/etc/stagebox/station.toml\n",
        0o644,
    )?;
    write(&debian.join("postinst"), POSTINST, 0o755)?;
    write(&debian.join("prerm"), PRERM, 0o755)?;
    write(&debian.join("postrm"), POSTRM, 0o755)?;
    let partial = crate::sh::unique_sibling(&deb);
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&root)
        .arg(&partial))?;
    fs::rename(&partial, &deb)?;
    fs::remove_dir_all(&root)?;
    let size = fs::metadata(&deb)?.len();
    println!(
        "{}: {size} bytes ({:.2} MiB)",
        deb.display(),
        size as f64 / 1_048_576.0
    );
    Ok(deb)
}

fn du_kib(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        total += if entry.file_type()?.is_dir() {
            du_kib(&entry.path())? * 1024
        } else {
            entry.metadata()?.len()
        };
    }
    Ok(total.div_ceil(1024))
}

/// Lets the kernel run arm64 programs through qemu (for mmdebstrap's maintainer scripts and
/// for running the daemon inside the arm64 root).
pub fn ensure_binfmt() -> Result<()> {
    let dir = Path::new("/proc/sys/fs/binfmt_misc");
    if !dir.join("register").exists() {
        run(Command::new("mount")
            .args(["-t", "binfmt_misc", "binfmt_misc"])
            .arg(dir))?;
    }
    if dir.join("qemu-aarch64").exists() {
        return Ok(());
    }
    let conf = fs::read_to_string("/usr/lib/binfmt.d/qemu-aarch64.conf")
        .context("qemu-user-static's binfmt configuration")?;
    let line = conf
        .lines()
        .find(|l| l.starts_with(':'))
        .context("no registration line in qemu-aarch64.conf")?;
    fs::write(dir.join("register"), line).context("registering qemu-aarch64 with binfmt_misc")?;
    Ok(())
}

/// Builds the package, installs it into a fresh arm64 bookworm root and checks the result.
pub fn test() -> Result<()> {
    if !crate::setup::is_root() {
        bail!("the package test builds a Debian root and needs root (binfmt_misc, chroot)");
    }
    crate::setup::ensure_packages(TEST_TOOLS)?;
    // The release an owner upgrades from: this tree labelled as an earlier version.
    let release = version()?;
    let previous = fs::canonicalize(build_as(&previous_version(&release))?)?;
    let deb = fs::canonicalize(build_as(&release)?)?;
    ensure_binfmt()?;
    let rootfs = fs::canonicalize("target/deb")?.join("rootfs");
    if rootfs.exists() {
        fs::remove_dir_all(&rootfs)?;
    }
    // The package's dependencies come from the mirror with the root; the package itself is
    // copied in and installed by dpkg inside the root, its maintainer scripts under qemu.
    let name = previous
        .file_name()
        .and_then(|n| n.to_str())
        .context("package file name")?;
    run(Command::new("mmdebstrap")
        .args([
            "--arch=arm64",
            "--variant=apt",
            "--mode=root",
            "--include=systemd,udev,adduser,libasound2,libopus0,libwebrtc-audio-processing1",
        ])
        .arg(format!(
            "--customize-hook=copy-in {} /tmp",
            previous.display()
        ))
        .arg(format!(
            "--customize-hook=chroot \"$1\" dpkg -i /tmp/{name}"
        ))
        .arg("bookworm")
        .arg(&rootfs)
        .arg("http://deb.debian.org/debian")
        .stdin(std::process::Stdio::null()))?;
    let check = |rel: &str| -> Result<()> {
        // symlink_metadata: the unit's enablement is an absolute link into the root.
        if fs::symlink_metadata(rootfs.join(rel)).is_err() {
            bail!("installed root has no {rel}");
        }
        Ok(())
    };
    for rel in [
        "usr/bin/stationd",
        "lib/systemd/system/stagebox-stationd.service",
        "lib/udev/rules.d/60-stagebox.rules",
        "etc/stagebox/station.toml",
        "usr/share/stagebox/boards/hats/respeaker-2mic.toml",
        "usr/share/stagebox/boards/files/asound/respeaker-4mic.conf",
        "etc/systemd/system/multi-user.target.wants/stagebox-stationd.service",
        "usr/bin/stagebox-console",
        "lib/systemd/system/stagebox-console@.service",
        "lib/udev/rules.d/61-stagebox-console.rules",
        "usr/lib/stagebox/factory-reset",
        "etc/systemd/system/multi-user.target.wants/stagebox-console-pin.service",
    ] {
        check(rel)?;
    }
    // Made at the first boot: a package (and so an image) never carries a PIN.
    if rootfs.join("var/lib/stagebox-console/pin").exists() {
        bail!("the package made a console PIN at install time");
    }
    if !rootfs.join("var/lib/stagebox").is_dir() {
        bail!("the package did not create /var/lib/stagebox");
    }
    let passwd = fs::read_to_string(rootfs.join("etc/passwd"))?;
    if !passwd.lines().any(|l| l.starts_with("stagebox:")) {
        bail!("the package did not create the stagebox user");
    }
    let group = fs::read_to_string(rootfs.join("etc/group"))?;
    for g in ["audio", "gpio", "spi"] {
        if !group
            .lines()
            .any(|l| l.starts_with(&format!("{g}:")) && l.contains("stagebox"))
        {
            bail!("stagebox is not in the {g} group");
        }
    }
    let in_root = |args: &[&str]| -> Result<String> {
        let out = Command::new("chroot")
            .arg(&rootfs)
            .args(args)
            .output()
            .with_context(|| format!("chroot {args:?}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!("{args:?} in the arm64 root failed: {text}");
        }
        Ok(text)
    };
    let version = in_root(&["/usr/bin/stationd", "--version"])?;
    println!("in the arm64 root, under qemu: {}", version.trim());
    let checked = in_root(&[
        "/usr/bin/stationd",
        "--check-config",
        "/etc/stagebox/station.toml",
    ])?;
    println!("{}", checked.trim());
    let console = in_root(&["/usr/bin/stagebox-console", "--version"])?;
    println!("in the arm64 root, under qemu: {}", console.trim());
    for unit in [
        "stagebox-stationd.service",
        "stagebox-console-pin.service",
        "stagebox-console@ttyGS0.service",
    ] {
        let verify = in_root(&["systemd-analyze", "verify", unit])?;
        let template = unit.replace("@ttyGS0", "@");
        if verify.contains(&format!("{unit}:")) || verify.contains(&format!("{template}:")) {
            bail!("systemd-analyze verify complains about {unit}: {verify}");
        }
    }
    println!("package installs and runs in an arm64 bookworm root: ok");
    upgrade_remove_purge(&rootfs, &deb, &release, &in_root)?;
    Ok(())
}

/// The release the package test upgrades from: this tree as an earlier version (`~` sorts
/// before anything in Debian's version order).
fn previous_version(version: &str) -> String {
    format!("{version}~previous")
}

/// What an owner does after installing: disables the unit and edits the configuration, then
/// upgrades from the earlier release to this one (both choices must survive), removes (the
/// configuration stays) and purges (all goes).
fn upgrade_remove_purge(
    rootfs: &Path,
    deb: &Path,
    version: &str,
    in_root: &dyn Fn(&[&str]) -> Result<String>,
) -> Result<()> {
    let enabled = "etc/systemd/system/multi-user.target.wants/stagebox-stationd.service";
    let config = rootfs.join("etc/stagebox/station.toml");
    let exists = |rel: &str| fs::symlink_metadata(rootfs.join(rel)).is_ok();
    let installed = || -> Result<String> {
        Ok(in_root(&["dpkg-query", "-W", "-f=${Version}", PACKAGE])?
            .trim()
            .to_string())
    };
    in_root(&["systemctl", "disable", "stagebox-stationd.service"])?;
    if exists(enabled) {
        bail!("systemctl disable left the unit enabled");
    }
    let edited = fs::read_to_string(&config)? + "\n# edited by the owner\n";
    fs::write(&config, &edited)?;
    let before = installed()?;
    if before != previous_version(version) {
        bail!("the earlier release is not what is installed: {before}");
    }
    fs::copy(deb, rootfs.join("tmp/stagebox.deb"))?;
    in_root(&["dpkg", "-i", "/tmp/stagebox.deb"])?;
    let after = installed()?;
    if after != version {
        bail!("after the upgrade dpkg says {after}, not {version}");
    }
    if exists(enabled) {
        bail!("upgrading the package enabled a unit the owner had disabled");
    }
    if fs::read_to_string(&config)? != edited {
        bail!("upgrading the package replaced the owner's edited configuration");
    }
    println!("package upgrade from {before} to {after} keeps the owner's choices: ok");
    // The owner turns the station on again; it runs under systemd as it will on a Pi.
    in_root(&["systemctl", "enable", "stagebox-stationd.service"])?;
    crate::deb_boot::daemon_comes_up(rootfs, version)?;
    in_root(&["dpkg", "--remove", PACKAGE])?;
    if exists("usr/bin/stationd") || !config.exists() {
        bail!("dpkg --remove must remove the daemon and keep the configuration");
    }
    in_root(&["dpkg", "--purge", PACKAGE])?;
    for rel in ["etc/stagebox/station.toml", "var/lib/stagebox", enabled] {
        if exists(rel) {
            bail!("dpkg --purge left {rel} behind");
        }
    }
    println!("package remove keeps the configuration, purge cleans up: ok");
    Ok(())
}
