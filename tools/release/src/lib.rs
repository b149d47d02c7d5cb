//! # stagebox-release — publishing an update
//!
//! A venue (or the project) publishes an update as a RAUC bundle and a **signed manifest**
//! naming it (docs/updates.md): this crate makes the Ed25519 release key and the manifest. The
//! stations check the manifest with [`stagebox_core::update::check_manifest`]; the tests here
//! check that what this crate signs is exactly what they accept.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use stagebox_core::update::Version;

/// A new Ed25519 release key, PKCS#8 (v2) DER bytes.
pub fn generate_key() -> Result<Vec<u8>> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let doc = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    Ok(doc.as_ref().to_vec())
}

/// The key pair in `pkcs8` bytes.
pub fn key_pair(pkcs8: &[u8]) -> Result<Ed25519KeyPair> {
    Ed25519KeyPair::from_pkcs8(pkcs8)
        .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8))
        .map_err(|e| anyhow::anyhow!("not an Ed25519 PKCS#8 key: {e}"))
}

/// The public key stations are configured with, as 64 hex digits.
pub fn public_key_hex(key: &Ed25519KeyPair) -> String {
    hex::encode(key.public_key().as_ref())
}

/// What a manifest says.
#[derive(Debug, Clone)]
pub struct Release {
    pub board: String,
    pub version: Version,
    pub bundle_url: String,
    pub bundle_sha256: [u8; 32],
    pub bundle_size: u64,
    /// When it is signed: stations refuse a manifest signed before one they have seen.
    pub issued_unix: u64,
    pub expires_unix: u64,
}

/// SHA-256 and length of the bundle at `path`, read in pieces.
pub fn digest_file(path: &Path) -> Result<([u8; 32], u64)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("bundle {}", path.display()))?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(buf.get(..n).unwrap_or(&[]));
        len += n as u64;
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok((out, len))
}

/// The signed manifest for `release`, as the JSON text to publish.
pub fn sign_manifest(key: &Ed25519KeyPair, release: &Release) -> Result<String> {
    if !release.bundle_url.starts_with("https://") {
        bail!("the bundle URL must be https://");
    }
    let payload = serde_json::json!({
        "board": release.board,
        "version": release.version.to_string(),
        "bundle_url": release.bundle_url,
        "bundle_sha256": hex::encode(release.bundle_sha256),
        "bundle_size": release.bundle_size,
        "issued": release.issued_unix,
        "expires": release.expires_unix,
    })
    .to_string();
    let signature = key.sign(payload.as_bytes());
    Ok(serde_json::json!({
        "payload": payload,
        "signature": hex::encode(signature.as_ref()),
    })
    .to_string())
}
