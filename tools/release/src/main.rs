//! `stagebox-release` — make a release key, and sign update manifests with it.
//!
//! ```text
//! stagebox-release keygen --out release.pk8          a new key (0600); prints its public key
//! stagebox-release public-key --key release.pk8      the public key stations trust
//! stagebox-release manifest --key release.pk8 --board qemu --version 1.3.0 \
//!     --bundle stagebox-qemu-1.3.0.raucb --url https://updates.example/… --valid-days 30 \
//!     --out manifest.json
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use stagebox_core::update::Version;
use stagebox_release::{
    Release, digest_file, generate_key, key_pair, public_key_hex, sign_manifest,
};

/// Publish stagebox updates: a release key, and signed manifests naming RAUC bundles.
#[derive(Debug, Parser)]
#[command(name = "stagebox-release", version)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Make a new Ed25519 release key (PKCS#8, readable by its owner only).
    Keygen {
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
    /// Print the public key stations are configured to trust.
    PublicKey {
        #[arg(long, value_name = "PATH")]
        key: PathBuf,
    },
    /// Sign a manifest for a bundle.
    Manifest {
        #[arg(long, value_name = "PATH")]
        key: PathBuf,
        #[arg(long)]
        board: String,
        /// MAJOR.MINOR.PATCH
        #[arg(long)]
        version: String,
        /// The RAUC bundle (hashed and measured here).
        #[arg(long, value_name = "PATH")]
        bundle: PathBuf,
        /// Where stations download it (https://).
        #[arg(long)]
        url: String,
        /// How long the manifest is valid: stations refuse it after that (a replayed old
        /// manifest cannot hold them back).
        #[arg(long, default_value_t = 30)]
        valid_days: u64,
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Task::Keygen { out } => {
            if out.exists() {
                bail!("{} exists; not overwriting a key", out.display());
            }
            let pkcs8 = generate_key()?;
            write_private(&out, &pkcs8)?;
            println!("{}", public_key_hex(&key_pair(&pkcs8)?));
        }
        Task::PublicKey { key } => {
            let pkcs8 = std::fs::read(&key).with_context(|| key.display().to_string())?;
            println!("{}", public_key_hex(&key_pair(&pkcs8)?));
        }
        Task::Manifest {
            key,
            board,
            version,
            bundle,
            url,
            valid_days,
            out,
        } => {
            let pkcs8 = std::fs::read(&key).with_context(|| key.display().to_string())?;
            let version = Version::parse(&version)
                .with_context(|| format!("version {version:?} is not MAJOR.MINOR.PATCH"))?;
            let (bundle_sha256, bundle_size) = digest_file(&bundle)?;
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
            let release = Release {
                board,
                version,
                bundle_url: url,
                bundle_sha256,
                bundle_size,
                issued_unix: now,
                expires_unix: now + valid_days * 86_400,
            };
            let manifest = sign_manifest(&key_pair(&pkcs8)?, &release)?;
            std::fs::write(&out, manifest).with_context(|| out.display().to_string())?;
            println!(
                "{}: version {version}, {bundle_size} bytes, valid {valid_days} days",
                out.display()
            );
        }
    }
    Ok(())
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| path.display().to_string())?;
    f.write_all(bytes)?;
    Ok(())
}
