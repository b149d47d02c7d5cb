//! The server's TLS certificate: loaded from PEM files, or generated self-signed on first run,
//! with its SHA-256 fingerprint printed and written next to it for stations to pin. A venue's
//! own certificate (from its CA, or Let's Encrypt through certbot or acme.sh) goes in the same
//! files, and a renewal is taken up without a restart.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
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

/// How often the certificate files are looked at for a renewal (at a handshake, at most).
pub const RELOAD_CHECK: Duration = Duration::from_secs(60);

/// The certificate's and the key's modification times.
type Stamps = (Option<SystemTime>, Option<SystemTime>);

/// A certificate chain and key loaded from the PEM files, and its fingerprint.
struct Loaded {
    key: Arc<CertifiedKey>,
    fingerprint: String,
    /// The files' modification times when loaded.
    stamps: Stamps,
}

fn stamps(tls: &Tls) -> Stamps {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (modified(&tls.cert), modified(&tls.key))
}

fn load(tls: &Tls, provider: &CryptoProvider) -> Result<Loaded> {
    let stamps = stamps(tls);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .with_context(|| format!("{}", tls.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}", tls.cert.display()))?;
    let Some(first) = certs.first() else {
        bail!("{}: no certificate", tls.cert.display());
    };
    let fingerprint = fingerprint_hex(first);
    let key_der =
        PrivateKeyDer::from_pem_file(&tls.key).with_context(|| format!("{}", tls.key.display()))?;
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .with_context(|| format!("{}: not a key this server uses", tls.key.display()))?;
    let key = CertifiedKey::new(certs, signing);
    key.keys_match().with_context(|| {
        format!(
            "{} and {} do not match",
            tls.cert.display(),
            tls.key.display()
        )
    })?;
    let pin_path = tls.cert.with_extension("sha256");
    std::fs::write(&pin_path, format!("{fingerprint}\n"))
        .with_context(|| format!("writing {}", pin_path.display()))?;
    Ok(Loaded {
        key: Arc::new(key),
        fingerprint,
        stamps,
    })
}

/// The server's certificate, taken again from its files when they change (a venue's
/// certificate renewed by certbot, acme.sh or its own CA): looked at during a handshake at most
/// every [`RELOAD_CHECK`]. A renewal that does not load (half-written files, a key that does
/// not match) keeps the certificate in use and says so in the log.
#[derive(Debug)]
struct Reloading {
    tls: Tls,
    provider: Arc<CryptoProvider>,
    state: Mutex<(Arc<CertifiedKey>, Stamps, Instant)>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current(Instant::now())
    }
}

impl Reloading {
    /// The certificate to present at `now`, taken again from the files if they changed.
    fn current(&self, now: Instant) -> Option<Arc<CertifiedKey>> {
        let mut state = self.state.lock().ok()?;
        if now.saturating_duration_since(state.2) >= RELOAD_CHECK {
            state.2 = now;
            let current = stamps(&self.tls);
            if current != state.1 {
                state.1 = current;
                match load(&self.tls, &self.provider) {
                    Ok(loaded) => {
                        log::info!(
                            "certificate {} renewed: sha256 {}",
                            self.tls.cert.display(),
                            loaded.fingerprint
                        );
                        state.0 = loaded.key;
                    }
                    Err(e) => log::warn!("certificate not renewed, the old one stays: {e:#}"),
                }
            }
        }
        Some(state.0.clone())
    }
}

/// Loads (creating if needed) the certificate; returns the rustls config and the fingerprint.
/// The files are watched for renewals (see [`Reloading`]).
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
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let loaded = load(tls, &provider)?;
    let resolver = Reloading {
        tls: tls.clone(),
        provider: provider.clone(),
        state: Mutex::new((loaded.key, loaded.stamps, Instant::now())),
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    Ok((Arc::new(config), loaded.fingerprint))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(key: &CertifiedKey) -> String {
        fingerprint_hex(
            key.end_entity_cert()
                .map(|c| c.as_ref())
                .unwrap_or_default(),
        )
    }

    #[test]
    fn a_renewed_certificate_is_taken_up_and_a_broken_one_is_not() {
        let dir = std::env::temp_dir().join(format!("stagebox-cert-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let tls = Tls {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            names: vec!["localhost".into()],
        };
        generate(&tls).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let first = load(&tls, &provider).unwrap();
        #[allow(clippy::disallowed_methods)]
        let t = Instant::now();
        let r = Reloading {
            tls: tls.clone(),
            provider: provider.clone(),
            state: Mutex::new((first.key, first.stamps, t)),
        };
        let shown = |at: Duration| fingerprint(&r.current(t + at).unwrap());
        assert_eq!(shown(Duration::ZERO), first.fingerprint);

        // Renewed (both files written anew): taken up at the next look, not before.
        std::thread::sleep(Duration::from_millis(20));
        generate(&tls).unwrap();
        let renewed = load(&tls, &provider).unwrap().fingerprint;
        assert_ne!(renewed, first.fingerprint);
        assert_eq!(shown(RELOAD_CHECK / 2), first.fingerprint);
        assert_eq!(shown(RELOAD_CHECK), renewed);

        // A half-written renewal keeps the certificate in use.
        std::fs::write(&tls.cert, "-----BEGIN CERTIFICATE-----\ngarbage").unwrap();
        assert_eq!(shown(RELOAD_CHECK * 2), renewed);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
