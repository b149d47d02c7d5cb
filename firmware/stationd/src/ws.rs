//! One signaling connection: TCP, TLS, WebSocket upgrade, then frames in both directions.
//! Plumbing only: it reports what happens as [`Input`]s and sends what it is given.

use std::sync::Arc;
use std::time::Duration;

use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::{Error as WsError, Message};
use futures_lite::future;
use futures_util::StreamExt;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use stagebox_core::gateway::host_port;
use stagebox_core::{ConnId, ConnectFailure};
use stagebox_logging::Untrusted;
use stagebox_proto::signal::MAX_MESSAGE_LEN;
use stagebox_ws_link::LinkReceiver;

use crate::input::Input;

/// Frames queued for one connection at most (the station sends little: heartbeats, stage
/// intents, reports). Beyond that the server is not reading; the heartbeat timeout ends it.
pub const SEND_QUEUE: usize = 64;

/// The longest a connection attempt (TCP, TLS, upgrade) may take, whatever the core does.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs connection `conn` to `url` until it ends; reports through `inputs`. The attempt is
/// abandoned — its socket closed — as soon as the core closes it (it timed out there) or
/// forgets it, so a handshake that never completes cannot hold a descriptor.
pub async fn run(
    conn: ConnId,
    url: String,
    tls: Arc<ClientConfig>,
    inputs: async_channel::Sender<Input>,
    outgoing: LinkReceiver,
) {
    let attempt = async { Some(connect(&url, tls).await) };
    let abandoned = async {
        // Nothing is sent before `hello`: anything here is the core's close, or its end.
        let _ = outgoing.next().await;
        None
    };
    let timeout = async {
        smol::Timer::after(CONNECT_TIMEOUT).await;
        Some(Err(ConnectError::unreachable("timed out".into())))
    };
    let ws = match future::or(attempt, future::or(abandoned, timeout)).await {
        None => {
            log::info!("connection attempt to {} abandoned", Untrusted(&url));
            return;
        }
        Some(Ok(ws)) => ws,
        Some(Err(e)) => {
            match e.failure {
                ConnectFailure::ServerNotTrusted => log::error!(
                    "connect to {} failed: {}; the server is not the one in the \
                     configuration (check [server] pin_sha256 or ca_file)",
                    Untrusted(&url),
                    e.message
                ),
                ConnectFailure::Unreachable => {
                    log::warn!("connect to {} failed: {}", Untrusted(&url), e.message);
                }
            }
            let failure = e.failure;
            let _ = inputs.send(Input::ConnectFailed { conn, failure }).await;
            return;
        }
    };
    log::info!("connected to {}", Untrusted(&url));
    let _ = inputs.send(Input::Connected { conn }).await;
    let (mut sink, mut stream) = ws.split();
    let reader = async {
        loop {
            let Some(msg) = stream.next().await else {
                break None;
            };
            let malformed = match msg {
                Ok(Message::Text(t)) => {
                    let text = t.to_string();
                    if inputs.send(Input::Text { conn, text }).await.is_err() {
                        break None;
                    }
                    continue;
                }
                Ok(Message::Close(frame)) => break frame.map(|f| u16::from(f.code)),
                Ok(Message::Binary(_)) => "a binary frame",
                Err(WsError::Utf8(_)) => "a text frame that is not UTF-8",
                Ok(_) => continue,
                Err(e) => {
                    log::info!("signaling connection lost: {e}");
                    break None;
                }
            };
            // The core answers like any malformed message (close 4002, then resume); the
            // writer carries its close out while nothing more is read.
            log::warn!("the server sent {malformed}");
            let _ = inputs.send(Input::Malformed { conn }).await;
            future::pending::<()>().await;
        }
    };
    let writer = async {
        outgoing.write_to(&mut sink).await;
        None
    };
    let code = future::or(reader, writer).await;
    let _ = inputs.send(Input::Closed { conn, code }).await;
}

type Ws =
    async_tungstenite::WebSocketStream<futures_rustls::client::TlsStream<async_net::TcpStream>>;

/// Why [`connect`] failed, and what kind of failure it is for the session.
#[derive(Debug)]
struct ConnectError {
    message: String,
    failure: ConnectFailure,
}

impl ConnectError {
    fn unreachable(message: String) -> ConnectError {
        ConnectError {
            message,
            failure: ConnectFailure::Unreachable,
        }
    }
}

/// A TLS handshake error is about the server's identity when rustls refused its
/// certificate; anything else (reset, timeout, protocol) is the network's.
fn classify_tls(e: &std::io::Error) -> ConnectFailure {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(_)) => ConnectFailure::ServerNotTrusted,
        _ => ConnectFailure::Unreachable,
    }
}

async fn connect(url: &str, tls: Arc<ClientConfig>) -> Result<Ws, ConnectError> {
    let (host, port) =
        host_port(url).map_err(|e| ConnectError::unreachable(format!("gateway URL: {e}")))?;
    let tcp = async_net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| ConnectError::unreachable(format!("TCP: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(host.clone())
        .map_err(|e| ConnectError::unreachable(format!("server name {host}: {e}")))?;
    let stream = futures_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| ConnectError {
            message: format!("TLS: {e}"),
            failure: classify_tls(&e),
        })?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_LEN))
        .max_frame_size(Some(MAX_MESSAGE_LEN));
    let (ws, _) = async_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .map_err(|e| ConnectError::unreachable(format!("WebSocket: {e}")))?;
    Ok(ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_certificate_is_an_untrusted_server_and_the_rest_is_the_network() {
        use std::io::{Error, ErrorKind};
        let refused = Error::new(
            ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ),
        );
        assert_eq!(classify_tls(&refused), ConnectFailure::ServerNotTrusted);
        let garbled = Error::new(
            ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        assert_eq!(classify_tls(&garbled), ConnectFailure::Unreachable);
        let reset = Error::from(ErrorKind::ConnectionReset);
        assert_eq!(classify_tls(&reset), ConnectFailure::Unreachable);
    }
}
