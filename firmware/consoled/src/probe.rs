//! Which certificate the stage server shows: a TLS handshake to the gateway that records the
//! server's certificate and then refuses it, so nothing is ever sent to an unverified server.
//! The technician compares what is seen with what the station pins.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

/// The most a probe waits for each step.
const STEP: Duration = Duration::from_secs(5);

/// Records the presented certificate's SHA-256, then fails the handshake.
#[derive(Debug)]
struct Recorder {
    seen: Mutex<Option<[u8; 32]>>,
    schemes: Vec<SignatureScheme>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut seen) = self.seen.lock() {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, end_entity);
            let mut fingerprint = [0u8; 32];
            fingerprint.copy_from_slice(digest.as_ref());
            *seen = Some(fingerprint);
        }
        Err(refused())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(refused())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(refused())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

/// The probe trusts nothing: every step of the handshake after the certificate fails.
fn refused() -> rustls::Error {
    rustls::Error::General("probe only".into())
}

/// `host:port` of a `wss://host[:port]/path` URL.
pub fn gateway_address(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("wss://")?;
    let authority = rest.split('/').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, tail) = v6.split_once(']')?;
        let port = tail
            .strip_prefix(':')
            .map_or(Some(443), |p| p.parse().ok())?;
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
        None => Some((authority.to_string(), 443)),
    }
}

/// The SHA-256 of the certificate the server at `host:port` presents (blocking: run it off
/// the event loop).
pub fn server_fingerprint(host: &str, port: u16) -> Result<[u8; 32], String> {
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let mut tcp = TcpStream::connect_timeout(&addr, STEP).map_err(|e| format!("{addr}: {e}"))?;
    tcp.set_read_timeout(Some(STEP))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(STEP))
        .map_err(|e| e.to_string())?;
    // The station's one crypto provider.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let recorder = Arc::new(Recorder {
        seen: Mutex::new(None),
        schemes: provider
            .signature_verification_algorithms
            .supported_schemes(),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let mut conn = ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    // Drive the handshake until the certificate was seen (and refused) or the server stops.
    let mut buf = [0u8; 16 * 1024];
    for _ in 0..32 {
        while conn.wants_write() {
            let mut out = Vec::new();
            conn.write_tls(&mut out).map_err(|e| e.to_string())?;
            tcp.write_all(&out).map_err(|e| e.to_string())?;
        }
        if let Some(seen) = recorder.seen.lock().ok().and_then(|s| *s) {
            return Ok(seen);
        }
        let n = tcp.read(&mut buf).map_err(|e| format!("{addr}: {e}"))?;
        if n == 0 {
            break;
        }
        let _ = conn.read_tls(&mut &buf[..n]);
        if conn.process_new_packets().is_err() {
            break;
        }
    }
    recorder
        .seen
        .lock()
        .ok()
        .and_then(|s| *s)
        .ok_or_else(|| format!("{addr} showed no certificate (is it a TLS server?)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_urls_give_host_and_port() {
        assert_eq!(
            gateway_address("wss://stage.example.org:8443/signal"),
            Some(("stage.example.org".into(), 8443))
        );
        assert_eq!(
            gateway_address("wss://stage.example.org/signal"),
            Some(("stage.example.org".into(), 443))
        );
        assert_eq!(
            gateway_address("wss://[::1]:9000/s"),
            Some(("::1".into(), 9000))
        );
        assert_eq!(gateway_address("ws://x/s"), None);
    }
}
