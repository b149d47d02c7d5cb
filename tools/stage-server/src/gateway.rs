//! The gateway: accepts TLS, upgrades to WebSocket, and feeds frames to the core.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::protocol::frame::CloseFrame;
use futures_rustls::TlsAcceptor;
use futures_util::StreamExt;
use rustls::ServerConfig;
use stagebox_proto::signal::MAX_MESSAGE_LEN;
use stagebox_server_core::ConnId;

use crate::hub::{Hub, Out};

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

pub async fn serve(listener: async_net::TcpListener, tls: Arc<ServerConfig>, hub: Arc<Hub>) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::warn!("accept: {e}");
                smol::Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let hub = hub.clone();
        smol::spawn(async move {
            // A client that never finishes its handshake is dropped after 10 s.
            let handshake = async {
                let tls = acceptor
                    .accept(tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                // The transport reads frames up to 16 × the protocol limit whole, so the core can
                // answer an oversized message with an error op (refusing mid-frame would reset
                // the connection and lose that answer); beyond that, the connection is cut.
                let config = WebSocketConfig::default()
                    .max_message_size(Some(16 * MAX_MESSAGE_LEN))
                    .max_frame_size(Some(16 * MAX_MESSAGE_LEN));
                async_tungstenite::accept_async_with_config(tls, Some(config))
                    .await
                    .map_err(|e| format!("WebSocket: {e}"))
            };
            let timeout = async {
                smol::Timer::after(Duration::from_secs(10)).await;
                Err("handshake timed out".to_string())
            };
            match futures_lite::future::or(handshake, timeout).await {
                Ok(ws) => connection(ws, hub).await,
                Err(e) => log::info!("{peer}: {e}"),
            }
        })
        .detach();
    }
}

async fn connection<S>(ws: async_tungstenite::WebSocketStream<S>, hub: Arc<Hub>)
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + Send + 'static,
{
    let conn = ConnId(NEXT_CONN.fetch_add(1, Ordering::Relaxed));
    let (tx, rx) = async_channel::unbounded();
    hub.register(conn, tx);
    hub.with_core(|core, now| core.handle_open(now, conn));
    let (mut sink, mut stream) = ws.split();
    let writer = async {
        while let Ok(out) = rx.recv().await {
            match out {
                Out::Text(t) => {
                    if sink.send(Message::text(t)).await.is_err() {
                        break;
                    }
                }
                Out::Close(code) => {
                    let frame = CloseFrame {
                        code: code.into(),
                        reason: "".into(),
                    };
                    let _ = futures_lite::future::or(
                        async {
                            let _ = sink.send(Message::Close(Some(frame))).await;
                        },
                        async {
                            smol::Timer::after(Duration::from_secs(1)).await;
                        },
                    )
                    .await;
                    break;
                }
            }
        }
    };
    let reader = async {
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(Message::Text(t)) => hub.with_core(|core, now| core.handle_text(now, conn, &t)),
                Ok(Message::Binary(_)) => hub.with_core(|core, now| {
                    core.handle_protocol_violation(now, conn, "binary frames are not allowed")
                }),
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    futures_lite::future::or(reader, writer).await;
    hub.with_core(|core, now| core.handle_closed(now, conn));
    hub.unregister(conn);
}
