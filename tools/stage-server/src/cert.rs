//! The server's TLS certificate: loaded from PEM files, or generated self-signed on first run,
//! with its SHA-256 fingerprint printed and written next to it for stations to pin.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls_pki_types::pem::PemObject;

use crate::config::Tls;

/// SHA-256 of a DER certificate, as lowercase hex.
pub fn fingerprint_hex(der: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref())
}

fn generate(tls: &Tls) -> Result<()> {
    let key = rcgen::KeyPair::generate().context("generating a key")?;
    let params = rcgen::CertificateParams::new(tls.names.clone()).context("certificate names")?;
    let cert = params.self_signed(&key).context("self-signing")?;
    std::fs::write(&tls.cert, cert.pem())
        .with_context(|| format!("writing {}", tls.cert.display()))?;
    write_private(&tls.key, key.serialize_pem().as_bytes())?;
    log::info!(
        "created a self-signed certificate {} for {:?}",
        tls.cert.display(),
        tls.names
    );
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// Loads (creating if needed) the certificate; returns the rustls config and the fingerprint.
pub fn server_tls(tls: &Tls) -> Result<(Arc<ServerConfig>, String)> {
    match (tls.cert.exists(), tls.key.exists()) {
        (false, false) => generate(tls)?,
        (true, true) => {}
        _ => bail!(
            "{} and {} must both exist (or neither, to create a self-signed pair)",
            tls.cert.display(),
            tls.key.display()
        ),
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .with_context(|| format!("{}", tls.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}", tls.cert.display()))?;
    let Some(first) = certs.first() else {
        bail!("{}: no certificate", tls.cert.display());
    };
    let fingerprint = fingerprint_hex(first);
    let key =
        PrivateKeyDer::from_pem_file(&tls.key).with_context(|| format!("{}", tls.key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    let pin_path = tls.cert.with_extension("sha256");
    std::fs::write(&pin_path, format!("{fingerprint}\n"))
        .with_context(|| format!("writing {}", pin_path.display()))?;
    Ok((Arc::new(config), fingerprint))
}
