//! `cargo xtask bundle --board NAME [--version V] [--cert PEM --key PATH|pkcs11:URI]`: a
//! signed, verity-format RAUC bundle of the board's built root (`cargo xtask image` first).
//!
//! The root filesystem image is made from the same root the SD image's slot A holds, with
//! `/etc/stagebox/version` set to the bundle's version. Without `--cert`/`--key` the bundle
//! is signed with the development key: made once in `target/image/keys/` (never committed)
//! and trusted by images built from the same tree. A release is signed with the venue's key,
//! from a file or a PKCS#11 token (`--key 'pkcs11:token=…;object=…'`), and its certificate
//! (or the CA above it) is the keyring the image is built with (`cargo xtask image
//! --keyring PEM`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::image::Board;
use crate::sh::run;

/// Who signs a bundle: a certificate and its key (a file or a PKCS#11 URI).
#[derive(Debug, Clone)]
pub struct Signer {
    pub cert: PathBuf,
    pub key: String,
}

const KEYS: &str = "target/image/keys";

/// The development signer, made on first use: a self-signed certificate that is also the
/// keyring of development images.
pub fn dev_signer() -> Result<Signer> {
    make_signer("development")
}

/// A signer named `name` under `target/image/keys/`, made if missing (the image test makes a
/// second one, which no image trusts).
pub fn make_signer(name: &str) -> Result<Signer> {
    fs::create_dir_all(KEYS)?;
    let dir = fs::canonicalize(KEYS)?;
    let (cert, key) = (
        dir.join(format!("{name}.cert.pem")),
        dir.join(format!("{name}.key.pem")),
    );
    if !cert.exists() || !key.exists() {
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .arg("ec_paramgen_curve:prime256v1")
            .args(["-nodes", "-days", "3650", "-subj"])
            .arg(format!("/O=stagebox/CN=stagebox {name} bundles"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null()))?;
    }
    Ok(Signer {
        cert,
        key: key.display().to_string(),
    })
}

/// What making a bundle runs.
pub const TOOLS: &[&str] = &["rauc", "squashfs-tools", "e2fsprogs", "openssl"];

/// A file put into the bundle's root over what the built root has (the image test's broken
/// daemon), as `(path in the root, file on the host)`.
pub type Overlay<'a> = (&'a str, &'a Path);

/// Makes `out`, a bundle of `board`'s built root at `version`, signed by `signer`.
pub fn make(
    board: Board,
    version: &str,
    signer: &Signer,
    overlay: &[Overlay<'_>],
    out: &Path,
) -> Result<PathBuf> {
    crate::setup::ensure_packages(TOOLS)?;
    let name = board.name();
    let root = fs::canonicalize(format!("target/image/{name}/root")).with_context(|| {
        format!("no built root for {name}: run `cargo xtask image --board {name}`")
    })?;
    let work = root.with_file_name("bundle-work");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    let content = work.join("content");
    fs::create_dir_all(&content)?;
    // The root's size with room for ext4's own blocks; the slot is larger, and the root is
    // mounted read-only, so its free space does not matter.
    let used = dir_bytes(&root)?;
    let kib = (used * 115 / 100) / 1024 + 64 * 1024;
    let ext4 = content.join("rootfs.ext4");
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "rootfs", "-d"])
        .arg(&root)
        .arg(&ext4)
        .arg(format!("{kib}K")))?;
    let version_file = work.join("version");
    fs::write(&version_file, format!("{version}\n"))?;
    let mut files = vec![("/etc/stagebox/version", version_file.as_path())];
    files.extend_from_slice(overlay);
    for (inside, host) in files {
        replace_in_ext4(&ext4, inside, host)?;
    }
    fs::write(
        content.join("manifest.raucm"),
        format!(
            "[update]\ncompatible=stagebox-{name}\nversion={version}\n\n[bundle]\nformat=verity\n\n\
             [image.rootfs]\nfilename=rootfs.ext4\n"
        ),
    )?;
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir)?;
    }
    let _ = fs::remove_file(out);
    run(Command::new("rauc")
        .arg("bundle")
        .arg(format!("--cert={}", signer.cert.display()))
        .arg(format!("--key={}", signer.key))
        .arg("--mksquashfs-args=-comp zstd -Xcompression-level 15")
        .arg(&content)
        .arg(out))?;
    fs::remove_dir_all(&work)?;
    println!(
        "{}: version {version}, {:.1} MiB",
        out.display(),
        fs::metadata(out)?.len() as f64 / 1048576.0
    );
    Ok(out.to_path_buf())
}

/// Replaces (or adds) one file in an ext4 image, as root, keeping the host file's mode.
fn replace_in_ext4(ext4: &Path, inside: &str, host: &Path) -> Result<()> {
    let (dir, file) = inside
        .rsplit_once('/')
        .with_context(|| format!("{inside}: an absolute path"))?;
    let script = format!("cd {dir}\nrm {file}\nwrite {} {file}\n", host.display());
    let out = Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg("-")
        .arg(ext4)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .map(|mut stdin| stdin.write_all(script.as_bytes()))
                .transpose()?;
            child.wait_with_output()
        })
        .context("debugfs")?;
    let said = String::from_utf8_lossy(&out.stderr);
    // debugfs reports "File not found" for the rm of a new file; anything else is a failure.
    if !out.status.success()
        || said
            .lines()
            .any(|l| l.contains("write:") || l.contains("Allocate"))
    {
        bail!("putting {inside} into {}: {said}", ext4.display());
    }
    Ok(())
}

/// The bytes of every file under `dir` (apparent sizes), by du.
fn dir_bytes(dir: &Path) -> Result<u64> {
    let out = Command::new("du").arg("-sb").arg(dir).output()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .context("du")
}
