//! Gateway URLs (`wss://host[:port]/path`): the configured one, and the ones a server names
//! when it moves a station; and update sources (`https://`). A server's word is outside
//! input: what it names is checked here before the station goes there.

use thiserror::Error;

/// Longest gateway URL a station follows.
pub const MAX_GATEWAY_URL: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GatewayError {
    #[error("not a wss:// URL")]
    NotWss,
    #[error("not an https:// URL")]
    NotHttps,
    #[error("longer than {MAX_GATEWAY_URL} bytes")]
    TooLong,
    #[error("contains spaces or control characters")]
    BadCharacters,
    #[error("no host")]
    NoHost,
    #[error("bad IPv6 literal")]
    BadIpv6,
    #[error("bad port")]
    BadPort,
}

/// The host and port of a `wss://` URL (443 when none is given).
pub fn host_port(url: &str) -> Result<(String, u16), GatewayError> {
    split(url, "wss://", GatewayError::NotWss).map(|(host, port, _)| (host, port))
}

/// The host, port (443 when none is given) and path (at least `/`) of an `https://` URL: an
/// update source, checked like a gateway.
pub fn https_target(url: &str) -> Result<(String, u16, String), GatewayError> {
    split(url, "https://", GatewayError::NotHttps)
}

fn split(
    url: &str,
    scheme: &str,
    wrong: GatewayError,
) -> Result<(String, u16, String), GatewayError> {
    if url.len() > MAX_GATEWAY_URL {
        return Err(GatewayError::TooLong);
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(GatewayError::BadCharacters);
    }
    let rest = url.strip_prefix(scheme).ok_or(wrong)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let port = |p: Option<&str>| -> Result<u16, GatewayError> {
        match p {
            None => Ok(443),
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or(GatewayError::BadPort),
        }
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(GatewayError::BadIpv6)?;
        let p = match after {
            "" => None,
            a => Some(a.strip_prefix(':').ok_or(GatewayError::BadPort)?),
        };
        (host, port(p)?)
    } else {
        match authority.rsplit_once(':') {
            Some((host, p)) => (host, port(Some(p))?),
            None => (authority, 443),
        }
    };
    if host.is_empty() {
        return Err(GatewayError::NoHost);
    }
    Ok((host.to_string(), port, path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_sources_are_https_with_a_path() {
        assert_eq!(
            https_target("https://updates.example:8443/pi4/manifest.json").unwrap(),
            ("updates.example".into(), 8443, "/pi4/manifest.json".into())
        );
        assert_eq!(
            https_target("https://[::1]").unwrap(),
            ("::1".into(), 443, "/".into())
        );
        assert_eq!(
            https_target("http://updates.example/m.json"),
            Err(GatewayError::NotHttps)
        );
        assert_eq!(https_target("https:///m.json"), Err(GatewayError::NoHost));
    }

    #[test]
    fn accepts_what_a_station_can_dial() {
        assert_eq!(
            host_port("wss://127.0.0.1:8443/signal").unwrap(),
            ("127.0.0.1".into(), 8443)
        );
        assert_eq!(
            host_port("wss://stage.example.org/signal").unwrap(),
            ("stage.example.org".into(), 443)
        );
        assert_eq!(
            host_port("wss://[::1]:9000/x").unwrap(),
            ("::1".into(), 9000)
        );
        assert_eq!(host_port("wss://[::1]/x").unwrap(), ("::1".into(), 443));
    }

    #[test]
    fn refuses_what_a_server_should_not_send_a_station_to() {
        let long = format!("wss://{}.example/", "a".repeat(10_000));
        for (url, err) in [
            ("https://h/", GatewayError::NotWss),
            ("http://127.0.0.1:8443/signal", GatewayError::NotWss),
            ("wss:///signal", GatewayError::NoHost),
            ("wss://:8443/", GatewayError::NoHost),
            ("wss://h:99999/", GatewayError::BadPort),
            ("wss://h:0/", GatewayError::BadPort),
            ("wss://h:/", GatewayError::BadPort),
            ("wss://[::1/", GatewayError::BadIpv6),
            ("wss://h\0ost/", GatewayError::BadCharacters),
            ("wss://h ost/", GatewayError::BadCharacters),
            (long.as_str(), GatewayError::TooLong),
            ("", GatewayError::NotWss),
        ] {
            assert_eq!(host_port(url), Err(err), "{url:?}");
        }
    }
}
