//! One signaling connection: TCP, TLS, WebSocket upgrade, then frames in both directions.
//! Plumbing only: it reports what happens as [`Input`]s and sends what it is given.

use std::sync::Arc;
use std::time::Duration;

use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::protocol::frame::CloseFrame;
use futures_util::StreamExt;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use stagebox_core::gateway::host_port;
use stagebox_core::{ConnId, ConnectFailure};
use stagebox_proto::signal::MAX_MESSAGE_LEN;

use crate::input::Input;

/// What the station sends on a connection.
#[derive(Debug)]
pub enum WsOut {
    Text(String),
    Close(u16),
}

/// Runs connection `conn` to `url` until it ends; reports through `inputs`.
pub async fn run(
    conn: ConnId,
    url: String,
    tls: Arc<ClientConfig>,
    inputs: async_channel::Sender<Input>,
    outgoing: async_channel::Receiver<WsOut>,
) {
    let ws = match connect(&url, tls).await {
        Ok(ws) => ws,
        Err(e) => {
            match e.failure {
                ConnectFailure::ServerNotTrusted => log::error!(
                    "connect to {url} failed: {}; the server is not the one in the \
                     configuration (check [server] pin_sha256 or ca_file)",
                    e.message
                ),
                ConnectFailure::Unreachable => {
                    log::warn!("connect to {url} failed: {}", e.message);
                }
            }
            let failure = e.failure;
            let _ = inputs.send(Input::ConnectFailed { conn, failure }).await;
            return;
        }
    };
    log::info!("connected to {url}");
    let _ = inputs.send(Input::Connected { conn }).await;
    let (mut sink, mut stream) = ws.split();
    let writer = async {
        while let Ok(out) = outgoing.recv().await {
            match out {
                WsOut::Text(t) => {
                    if sink.send(Message::text(t)).await.is_err() {
                        break;
                    }
                }
                WsOut::Close(code) => {
                    let frame = CloseFrame {
                        code: code.into(),
                        reason: "".into(),
                    };
                    // A dead peer must not hold us: give the close a second.
                    let send = sink.send(Message::Close(Some(frame)));
                    let _ = futures_lite::future::or(async { send.await.map_err(|_| ()) }, async {
                        smol::Timer::after(Duration::from_secs(1)).await;
                        Err(())
                    })
                    .await;
                    break;
                }
            }
        }
    };
    let reader = async {
        let mut code = None;
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(Message::Text(t)) => {
                    if inputs
                        .send(Input::Text {
                            conn,
                            text: t.to_string(),
                        })
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                Ok(Message::Close(frame)) => {
                    code = frame.map(|f| u16::from(f.code));
                    break;
                }
                Ok(Message::Binary(_)) => {
                    log::warn!("server sent a binary frame; closing");
                    code = Some(stagebox_proto::close::CloseCode::DecodeError.as_u16());
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    log::info!("signaling connection lost: {e}");
                    break;
                }
            }
        }
        code
    };
    let code = futures_lite::future::or(reader, async {
        writer.await;
        None
    })
    .await;
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
