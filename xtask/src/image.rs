//! `cargo xtask image --board NAME`: the SD card image of a station.
//!
//! An arm64 Debian bookworm root built by mmdebstrap from Debian's packages and the
//! station's own package; a read-only root (`systemd.volatile=state`: /var is a tmpfs, what
//! must persist is on the data partition); laid out by genimage as boot (FAT: U-Boot's boot
//! script, its environment in two redundant files, `stagebox.toml`; on a Pi the firmware and
//! U-Boot too), root A, root B (RAUC's slots) and data. U-Boot is built from Debian's source
//! (`uboot.rs`); RAUC's system.conf and the boot script come from `appliance/`.
//!
//! Output: `target/image/stagebox-BOARD.img`, its `.zst`, their sizes and SHA-256.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::sh::run;
use crate::uboot;

/// A board the image is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Board {
    /// qemu-system-aarch64 `-M virt` with a virtio disk (the image test).
    Qemu,
    /// Raspberry Pi 4 (and CM4, and Zero 2 W: the same firmware and kernel).
    Pi4,
}

/// What differs between boards.
struct Flavour {
    name: &'static str,
    uboot: uboot::Recipe,
    /// The disk's partitions, as Linux names them: `{disk}1` … `{disk}4`.
    disk: &'static str,
    /// The whole disk (to grow its last partition).
    whole_disk: &'static str,
    /// The Pi's firmware, device trees and config.txt on the boot partition.
    pi_firmware: bool,
    /// The UART the technician's console serves (the board profile's `console_uart`).
    console_uart: &'static str,
    /// A USB port that can be a gadget, for the console's USB serial port.
    usb_gadget: bool,
}

impl Board {
    pub fn name(self) -> &'static str {
        self.flavour().name
    }

    fn flavour(self) -> Flavour {
        match self {
            Board::Qemu => Flavour {
                name: "qemu",
                uboot: uboot::Recipe {
                    defconfig: "qemu_arm64",
                    fragment: "appliance/u-boot/qemu_arm64.cfg",
                },
                disk: "/dev/vda",
                whole_disk: "/dev/vda",
                pi_firmware: false,
                // qemu's virtio console (the PL011 carries the kernel's log to the test).
                console_uart: "hvc0",
                usb_gadget: false,
            },
            Board::Pi4 => Flavour {
                name: "pi4",
                uboot: uboot::Recipe {
                    defconfig: "rpi_arm64",
                    fragment: "appliance/u-boot/rpi_arm64.cfg",
                },
                disk: "/dev/mmcblk0p",
                whole_disk: "/dev/mmcblk0",
                pi_firmware: true,
                // board/socs/pi4.toml's console_uart (checked by a test below).
                console_uart: "ttyS0",
                // The USB-C port.
                usb_gadget: true,
            },
        }
    }
}

/// Debian packages of the root, besides the station's own.
const ROOT_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "systemd-timesyncd",
    "udev",
    "dbus",
    "kmod",
    "linux-image-arm64",
    "initramfs-tools",
    "zstd",
    "rauc",
    "rauc-service",
    "libubootenv-tool",
    "wpasupplicant",
    "iproute2",
    "e2fsprogs",
    "dosfstools",
    "cloud-guest-utils",
    "fdisk",
    "openssh-server",
    "ca-certificates",
    "alsa-utils",
    "adduser",
    "libasound2",
    "libopus0",
    "libwebrtc-audio-processing1",
];

/// dpkg's path filters for the root (see `dpkg --path-exclude`).
const DPKG_EXCLUDES: &[&str] = &[
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
];

/// What the initramfs loads to find the root: virtio (qemu), the Pi 4's and the Zero 2 W's
/// SD controllers, ext4.
const INITRAMFS_MODULES: &str =
    "virtio_mmio\\nvirtio_pci\\nvirtio_blk\\nsdhci_iproc\\nbcm2835\\nmmc_block\\next4\\n";

/// Sizes on the card.
const BOOT_MIB: u32 = 128;
const SLOT_MIB: u32 = 1280;
const DATA_MIB: u32 = 128;

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, text).with_context(|| path.display().to_string())
}

fn chroot(root: &Path, args: &[&str]) -> Result<()> {
    run(Command::new("chroot").arg(root).args(args))
}

/// Builds the image for `board`, trusting bundles signed by `keyring` (the development
/// key's certificate when `None`); returns its path.
/// What building an image runs.
pub const TOOLS: &[&str] = &[
    "mmdebstrap",
    "arch-test",
    "qemu-user-static",
    "genimage",
    "mtools",
    "dosfstools",
    "e2fsprogs",
    "u-boot-tools",
    "zstd",
];

pub fn build(board: Board, keyring: Option<&Path>) -> Result<PathBuf> {
    if !crate::setup::is_root() {
        bail!("building the image needs root (mmdebstrap, chroot, binfmt_misc)");
    }
    crate::setup::ensure_packages(TOOLS)?;
    let f = board.flavour();
    let deb = fs::canonicalize(crate::deb::build()?)?;
    crate::deb::ensure_binfmt()?;
    let uboot = uboot::build(f.uboot)?;
    let work = fs::canonicalize("target")?.join("image").join(f.name);
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    let root = work.join("root");
    let input = work.join("input");
    fs::create_dir_all(&input)?;
    let name = deb
        .file_name()
        .and_then(|n| n.to_str())
        .context("package file name")?;
    let mut packages = ROOT_PACKAGES.join(",");
    if f.pi_firmware {
        // The boot firmware, and the Wi-Fi chips' firmware and radio rules.
        packages.push_str(",raspi-firmware,firmware-brcm80211,wireless-regdb");
    }
    run(Command::new("mmdebstrap")
        .args(["--arch=arm64", "--variant=minbase", "--mode=root"])
        .arg(format!("--include={packages}"))
        .arg("--components=main,non-free-firmware")
        // No manuals, documentation or translations on a station (its console speaks
        // English): the qemu root went from 719 to 659 MiB (`du -sh`), every slot and every
        // update with it. The licences stay.
        .args(DPKG_EXCLUDES.iter().map(|rule| format!("--dpkgopt={rule}")))
        // The slot's initramfs: only the modules that find the root (virtio under qemu, the
        // SD card on a Pi), made once at the end instead of at every kernel trigger — under
        // qemu-user each run takes minutes.
        .arg(format!(
            "--essential-hook=mkdir -p \"$1/etc/initramfs-tools/conf.d\" \"$1/usr/share/initramfs-tools/modules.d\" && \
             printf 'MODULES=list\\nCOMPRESS=zstd\\n' > \"$1/etc/initramfs-tools/conf.d/stagebox\" && \
             printf '{INITRAMFS_MODULES}' > \"$1/usr/share/initramfs-tools/modules.d/stagebox\" && \
             chroot \"$1\" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs && \
             ln -s /bin/true \"$1/usr/sbin/update-initramfs\""
        ))
        .arg(format!("--customize-hook=copy-in {} /tmp", deb.display()))
        .arg(format!("--customize-hook=chroot \"$1\" dpkg -i /tmp/{name}"))
        .arg(format!("--customize-hook=rm \"$1/tmp/{name}\""))
        .arg(
            "--customize-hook=rm \"$1/usr/sbin/update-initramfs\" && \
             chroot \"$1\" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs && \
             chroot \"$1\" update-initramfs -c -k all",
        )
        .arg("bookworm")
        .arg(&root)
        .arg("http://deb.debian.org/debian")
        .stdin(std::process::Stdio::null()))?;
    customize(&root, &f)?;
    let keyring = match keyring {
        Some(k) => k.to_path_buf(),
        None => crate::bundle::dev_signer()?.cert,
    };
    fs::copy(&keyring, root.join("etc/rauc/keyring.pem"))
        .with_context(|| format!("keyring {}", keyring.display()))?;
    boot_partition(&root, &input, &f, &uboot)?;
    let img = layout(&root, &input, &work, &f)?;
    let compressed = img.with_extension("img.zst");
    run(Command::new("zstd")
        .args(["-q", "-f", "-T0", "-10"])
        .arg(&img)
        .arg("-o")
        .arg(&compressed))?;
    for file in [&img, &compressed] {
        let out = Command::new("sha256sum").arg(file).output()?;
        let sum = String::from_utf8_lossy(&out.stdout);
        let sum = sum.split_whitespace().next().unwrap_or("?");
        let bytes = fs::metadata(file)?.len();
        println!(
            "{}: {:.1} MiB, SHA-256 {sum}",
            file.display(),
            bytes as f64 / 1048576.0
        );
        write(
            &file.with_extension(format!(
                "{}.sha256",
                file.extension().and_then(|e| e.to_str()).unwrap_or("img")
            )),
            &format!(
                "{sum}  {}\n",
                file.file_name().and_then(|n| n.to_str()).unwrap_or("")
            ),
        )?;
    }
    Ok(img)
}

/// The root as an appliance: read-only, its state on the data partition, RAUC and U-Boot's
/// environment configured.
fn customize(root: &Path, f: &Flavour) -> Result<()> {
    // The kernel and initrd at the names the boot script loads (hard links, no copies).
    let boot = root.join("boot");
    for (prefix, fixed) in [("vmlinuz-", "vmlinuz"), ("initrd.img-", "initrd.img")] {
        let found = fs::read_dir(&boot)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .with_context(|| format!("no /boot/{prefix}* in the root"))?;
        let _ = fs::remove_file(boot.join(fixed));
        fs::hard_link(&found, boot.join(fixed))?;
    }
    let d = f.disk;
    write(
        &root.join("etc/fstab"),
        &format!(
            "# stagebox: the root is read-only and /var a tmpfs (systemd.volatile=state);\n\
             # what must persist lives on the data partition.\n\
             tmpfs /tmp tmpfs nosuid,nodev,mode=1777 0 0\n\
             {d}1 /boot/firmware vfat rw,noatime,fmask=0022,dmask=0022,flush 0 2\n\
             {d}4 /data ext4 rw,noatime 0 2\n"
        ),
    )?;
    write(&root.join("etc/hostname"), "stagebox\n")?;
    // Without it every login logs an error (pam_env), which the console's `status` shows.
    write(&root.join("etc/default/locale"), "LANG=C.UTF-8\n")?;
    write(
        &root.join("etc/systemd/network/20-wired.network"),
        "[Match]\nName=en* eth*\n[Network]\nDHCP=yes\n",
    )?;
    write(
        &root.join("etc/systemd/network/25-wireless.network"),
        "[Match]\nName=wl*\n[Network]\nDHCP=yes\n",
    )?;
    write(
        &root.join("etc/systemd/system/var-lib-stagebox.mount"),
        "[Unit]\nDescription=The station's state, on the data partition\n\
         RequiresMountsFor=/data /var\n\n[Mount]\nWhat=/data/stagebox\nWhere=/var/lib/stagebox\n\
         Type=none\nOptions=bind\n\n[Install]\nWantedBy=local-fs.target\n",
    )?;
    // The console's PIN verifier and spool: root's alone, kept apart from the daemon's.
    write(
        &root.join("etc/systemd/system/var-lib-stagebox\\x2dconsole.mount"),
        "[Unit]\nDescription=The technician console's PIN and spool, on the data partition\n\
         RequiresMountsFor=/data /var\n\n[Mount]\nWhat=/data/stagebox-console\n\
         Where=/var/lib/stagebox-console\nType=none\nOptions=bind\n\n\
         [Install]\nWantedBy=local-fs.target\n",
    )?;
    fs::create_dir_all(root.join("var/lib/stagebox-console"))?;
    fs::create_dir_all(root.join("data/stagebox-console"))?;
    set_mode(&root.join("data/stagebox-console"), 0o700)?;
    fs::create_dir_all(root.join("var/lib/stagebox"))?;
    fs::create_dir_all(root.join("data/stagebox"))?;
    fs::create_dir_all(root.join("data/rauc"))?;
    fs::create_dir_all(root.join("boot/firmware"))?;
    chroot(root, &["chown", "stagebox:stagebox", "/data/stagebox"])?;
    chroot(
        root,
        &[
            "systemctl",
            "enable",
            "--quiet",
            "systemd-networkd",
            "systemd-timesyncd",
            "var-lib-stagebox.mount",
            "var-lib-stagebox\\x2dconsole.mount",
        ],
    )?;
    // The owner's configuration is the boot partition's `stagebox.toml`. Root's
    // stagebox-settings.service applies its Wi-Fi and time zone and writes the report beside
    // it (`stagebox-report.txt`); the daemon reads it and, on a mistake, shows `error` on the
    // LEDs and waits for the owner instead of exiting.
    write(
        &root.join("etc/systemd/system/stagebox-stationd.service.d/boot-partition.conf"),
        "[Unit]\nRequiresMountsFor=/boot/firmware /var/lib/stagebox\n\
         Wants=stagebox-settings.service\nAfter=stagebox-settings.service\n\n[Service]\n\
         ExecStart=\nExecStart=/usr/bin/stationd --config /boot/firmware/stagebox.toml \
         --wait-on-mistake --control-socket /run/stagebox/control.sock\n",
    )?;
    appliance_units(root, f)?;
    remote_shell(root)?;
    let system_conf = fs::read_to_string("appliance/rauc/system.conf.in")?
        .replace("@COMPATIBLE@", &format!("stagebox-{}", f.name))
        .replace("@SLOT_A@", &format!("{d}2"))
        .replace("@SLOT_B@", &format!("{d}3"));
    write(&root.join("etc/rauc/system.conf"), &system_conf)?;
    let fw_env = fs::read_to_string("appliance/u-boot/fw_env.config.in")?
        .replace("@BOOT_MOUNT@", "/boot/firmware");
    write(&root.join("etc/fw_env.config"), &fw_env)?;
    write(&root.join("etc/stagebox/board"), &format!("{}\n", f.name))?;
    write(
        &root.join("etc/stagebox/version"),
        &format!("{}\n", crate::deb::version()?),
    )?;
    Ok(())
}

/// What makes the root an appliance (files from `appliance/`, shared with the Yocto layer):
/// the daemon may ask for a reboot, a daemon that keeps failing reboots the station (so a
/// broken update falls back), the data partition grows to fill the card, only root and the
/// daemon may drive RAUC.
fn appliance_units(root: &Path, f: &Flavour) -> Result<()> {
    let units = root.join("etc/systemd/system");
    for (from, to) in [
        (
            "systemd/stagebox-reboot.path",
            units.join("stagebox-reboot.path"),
        ),
        (
            "systemd/stagebox-reboot.service",
            units.join("stagebox-reboot.service"),
        ),
        (
            "systemd/stagebox-stationd-appliance.conf",
            units.join("stagebox-stationd.service.d/appliance.conf"),
        ),
        (
            "systemd/wpa_supplicant-stagebox.conf",
            units.join("wpa_supplicant@wlan0.service.d/stagebox.conf"),
        ),
        (
            "dbus/stagebox-rauc.conf",
            root.join("etc/dbus-1/system.d/stagebox-rauc.conf"),
        ),
        (
            "systemd/stagebox-console-appliance.conf",
            units.join("stagebox-console@.service.d/appliance.conf"),
        ),
        (
            "systemd/stagebox-console-pin-appliance.conf",
            units.join("stagebox-console-pin.service.d/appliance.conf"),
        ),
        (
            "stagebox-apply-settings",
            root.join("usr/lib/stagebox/apply-settings"),
        ),
    ] {
        write(&to, &appliance_file(from)?)?;
    }
    set_mode(&root.join("usr/lib/stagebox/apply-settings"), 0o755)?;
    console(root, f)?;
    write(
        &units.join("stagebox-grow-data.service"),
        &appliance_file("systemd/stagebox-grow-data.service.in")?
            .replace("@DISK@", f.whole_disk)
            .replace("@DATA@", &format!("{}4", f.disk)),
    )?;
    write(
        &units.join("stagebox-settings.service"),
        &appliance_file("systemd/stagebox-settings.service.in")?
            .replace("@CONFIG@", "/boot/firmware/stagebox.toml")
            .replace("@REPORT@", "/boot/firmware/stagebox-report.txt"),
    )?;
    // The read-only root's time zone and Wi-Fi configuration are what the settings service
    // writes at boot; wpa_supplicant starts when a wlan0 appears.
    for (link, target) in [
        ("etc/localtime", "/run/stagebox-settings/localtime"),
        (
            "etc/wpa_supplicant/wpa_supplicant-wlan0.conf",
            "/run/stagebox-settings/wpa_supplicant-wlan0.conf",
        ),
        (
            "etc/systemd/system/sys-subsystem-net-devices-wlan0.device.wants/wpa_supplicant@wlan0.service",
            "/lib/systemd/system/wpa_supplicant@.service",
        ),
    ] {
        let link = root.join(link);
        if let Some(dir) = link.parent() {
            fs::create_dir_all(dir)?;
        }
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(target, &link).with_context(|| link.display().to_string())?;
    }
    chroot(
        root,
        &[
            "systemctl",
            "enable",
            "--quiet",
            "stagebox-reboot.path",
            "stagebox-grow-data.service",
            "stagebox-settings.service",
        ],
    )?;
    // One supplicant, for wlan0 and the owner's network: not Debian's D-Bus one beside it.
    chroot(
        root,
        &["systemctl", "disable", "--quiet", "wpa_supplicant.service"],
    )
}

/// The technician's console on the board's UART (no login prompt there) and, where the board
/// has one, on the USB gadget serial port (the package's udev rule starts it when the port
/// appears).
fn console(root: &Path, f: &Flavour) -> Result<()> {
    let uart = f.console_uart;
    chroot(
        root,
        &[
            "systemctl",
            "mask",
            "--quiet",
            &format!("serial-getty@{uart}.service"),
        ],
    )?;
    chroot(
        root,
        &[
            "systemctl",
            "enable",
            "--quiet",
            &format!("stagebox-console@{uart}.service"),
        ],
    )?;
    if f.usb_gadget {
        write(
            &root.join("etc/modules-load.d/stagebox-console.conf"),
            "# The USB port as a serial port for the technician's console (ttyGS0).\ng_serial\n",
        )?;
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| path.display().to_string())
}

fn appliance_file(name: &str) -> Result<String> {
    let path = Path::new("appliance").join(name);
    fs::read_to_string(&path).with_context(|| path.display().to_string())
}

/// SSH: off unless the owner puts a public key in `ssh/authorized_keys` on the boot
/// partition; then root may log in with that key only. The host key is made on the
/// station's first such start and kept on the data partition (never one shared by every
/// card made from the image).
fn remote_shell(root: &Path) -> Result<()> {
    for entry in fs::read_dir(root.join("etc/ssh"))? {
        let p = entry?.path();
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("ssh_host_"))
        {
            fs::remove_file(&p)?;
        }
    }
    write(
        &root.join("etc/ssh/sshd_config.d/stagebox.conf"),
        &appliance_file("ssh/sshd-stagebox.conf")?,
    )?;
    write(
        &root.join("etc/systemd/system/ssh.service.d/stagebox.conf"),
        &appliance_file("ssh/ssh-service-stagebox.conf")?,
    )?;
    chroot(root, &["systemctl", "enable", "--quiet", "ssh.service"])
}

/// The boot partition's files: the boot script, U-Boot's environment (its defaults and the
/// slots' counters, in both copies), the owner's `stagebox.toml`; on a Pi also the firmware,
/// the device trees, config.txt and U-Boot.
fn boot_partition(root: &Path, input: &Path, f: &Flavour, uboot: &uboot::Built) -> Result<()> {
    run(Command::new("mkimage")
        .args([
            "-A", "arm64", "-O", "linux", "-T", "script", "-C", "none", "-q", "-d",
        ])
        .arg("appliance/u-boot/boot.cmd")
        .arg(input.join("boot.scr")))?;
    let mut env = fs::read_to_string(&uboot.initial_env)?;
    env.push_str("BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n");
    write(&input.join("env.txt"), &env)?;
    run(Command::new("mkenvimage")
        .args(["-r", "-s", "0x4000", "-o"])
        .arg(input.join("uboot.env"))
        .arg(input.join("env.txt")))?;
    fs::copy(input.join("uboot.env"), input.join("uboot-redund.env"))?;
    let owner = fs::read_to_string("appliance/stagebox.toml").context("appliance/stagebox.toml")?;
    let owner = if f.pi_firmware {
        owner
    } else {
        // Under qemu there is no sound HAT: the simulated board.
        owner.replace("profile = \"pi4-respeaker-2mic\"", "profile = \"sim\"")
    };
    write(&input.join("stagebox.toml"), &owner)?;
    // What the console's factory reset puts back.
    write(&root.join("usr/share/stagebox/stagebox.toml"), &owner)?;
    if f.pi_firmware {
        let firmware = root.join("usr/lib/raspi-firmware");
        for entry in fs::read_dir(&firmware).context("the Pi's firmware in the root")? {
            let p = entry?.path();
            if let Some(n) = p.file_name() {
                fs::copy(&p, input.join(n))?;
            }
        }
        fs::copy(&uboot.bin, input.join("u-boot.bin"))?;
        write(
            &input.join("config.txt"),
            "# stagebox: the Pi's firmware starts U-Boot, which boots slot A or B.\n\
             arm_64bit=1\nkernel=u-boot.bin\nenable_uart=1\ndtparam=i2c_arm=on\ndtparam=i2s=on\n\
             dtparam=spi=on\n\
             # The USB-C port as a USB device: the technician's console (a serial port).\n\
             dtoverlay=dwc2,dr_mode=peripheral\n",
        )?;
        let dtbs = fs::read_dir(root.join("usr/lib"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("linux-image-"))
            })
            .context("the kernel's device trees")?
            .join("broadcom");
        // Pi 4, Pi 400, CM4 on its IO board, Zero 2 W (Debian's kernel names); Pi 5 has none.
        for dtb in [
            "bcm2711-rpi-4-b.dtb",
            "bcm2711-rpi-400.dtb",
            "bcm2711-rpi-cm4-io.dtb",
            "bcm2837-rpi-zero-2-w.dtb",
        ] {
            fs::copy(dtbs.join(dtb), input.join(dtb))
                .with_context(|| format!("device tree {dtb} in Debian's kernel"))?;
        }
    }
    Ok(())
}

/// The partitions and the disk, by genimage.
fn layout(root: &Path, input: &Path, work: &Path, f: &Flavour) -> Result<PathBuf> {
    let boot_files: Vec<String> = fs::read_dir(input)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n != "env.txt")
        .map(|n| format!("\"{n}\""))
        .collect();
    let name = format!("stagebox-{}.img", f.name);
    let config = format!(
        "image boot.vfat {{\n  vfat {{\n    label = \"STAGEBOX\"\n    files = {{ {files} }}\n  }}\n  size = {BOOT_MIB}M\n}}\n\
         image rootfs-a.ext4 {{\n  ext4 {{\n    label = \"rootfs\"\n    use-mke2fs = true\n  }}\n  size = {SLOT_MIB}M\n}}\n\
         image rootfs-b.ext4 {{\n  ext4 {{\n    label = \"rootfs\"\n    use-mke2fs = true\n  }}\n  empty = true\n  size = {SLOT_MIB}M\n}}\n\
         image data.ext4 {{\n  ext4 {{\n    label = \"data\"\n    use-mke2fs = true\n  }}\n  mountpoint = \"/data\"\n  size = {DATA_MIB}M\n}}\n\
         image {name} {{\n  hdimage {{\n    partition-table-type = \"mbr\"\n    disk-signature = random\n  }}\n\
           partition boot {{\n    partition-type = 0x0C\n    bootable = true\n    image = \"boot.vfat\"\n    offset = 4M\n  }}\n\
           partition rootfs-a {{\n    partition-type = 0x83\n    image = \"rootfs-a.ext4\"\n  }}\n\
           partition rootfs-b {{\n    partition-type = 0x83\n    image = \"rootfs-b.ext4\"\n  }}\n\
           partition data {{\n    partition-type = 0x83\n    image = \"data.ext4\"\n  }}\n}}\n",
        files = boot_files.join(", ")
    );
    let cfg = work.join("genimage.cfg");
    write(&cfg, &config)?;
    let out = work.join("out");
    let tmp = work.join("genimage-tmp");
    run(Command::new("genimage")
        .arg("--rootpath")
        .arg(root)
        .arg("--inputpath")
        .arg(input)
        .arg("--outputpath")
        .arg(&out)
        .arg("--tmppath")
        .arg(&tmp)
        .arg("--config")
        .arg(&cfg))?;
    let img = fs::canonicalize("target/image")?.join(&name);
    fs::rename(out.join(&name), &img)?;
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pi_image_serves_the_console_on_the_uart_its_board_profile_names() {
        let profile = fs::read_to_string("../board/socs/pi4.toml").unwrap();
        let uart = Board::Pi4.flavour().console_uart;
        assert!(
            profile.contains(&format!("console_uart = \"{uart}\"")),
            "board/socs/pi4.toml names another console UART than {uart}"
        );
    }
}
