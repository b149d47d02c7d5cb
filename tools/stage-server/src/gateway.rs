//! The gateway: accepts TLS, upgrades to WebSocket, and feeds frames to the core.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use futures_lite::{AsyncRead, AsyncWriteExt};
use futures_rustls::TlsAcceptor;
use futures_util::StreamExt;
use rustls::ServerConfig;
use stagebox_logging::Throttle;
use stagebox_proto::signal::MAX_MESSAGE_LEN;
use stagebox_server_core::ConnId;
use stagebox_server_core::admission::{Admission, AdmissionLimits, Refusal};

use crate::hub::Hub;
use crate::updates::Route;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// The transport reads a frame whole up to this size, so the core can answer an oversized
/// message with an error op (refusing mid-frame would reset the connection and lose that
/// answer); beyond it the connection is cut. Small enough that the connections allowed before
/// login (see [`AdmissionLimits`]) cannot hold much memory each.
const MAX_TRANSPORT_MESSAGE: usize = 2 * MAX_MESSAGE_LEN;

/// Bytes a connection may send before it has logged in: the TLS handshake, the upgrade
/// request and an identify (at most `MAX_PRE_AUTH_LEN`) fit with room to spare. Beyond it the
/// connection is cut, so a crowd that never logs in cannot park large frames in the server.
const PRE_LOGIN_BYTES: u64 = 32 * 1024;

/// The kernel's send buffer for one connection. Signaling is small text; a fixed buffer
/// keeps what a peer that stops reading holds in the kernel small, and makes the bounded send
/// queue (see `hub::SEND_QUEUE`) fill, and the peer be hung up on, soon after it stops
/// reading — instead of after the megabytes the kernel's auto-tuning would let it park.
const KERNEL_SEND_BUFFER: usize = 64 * 1024;

/// A connection's reader lets other tasks run after this many messages in a row.
const YIELD_EVERY: u32 = 32;

/// A client that never finishes its TLS handshake and upgrade is dropped after this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections before login, counted from accept until the core has them logged in or they
/// end (see [`Admission`]).
pub struct Gate {
    admission: Mutex<Admission>,
    refused_log: Mutex<Throttle>,
    failed_log: Mutex<Throttle>,
}

impl Gate {
    pub fn new(limits: AdmissionLimits) -> Gate {
        Gate {
            admission: Mutex::new(Admission::new(limits)),
            refused_log: Mutex::new(Throttle::per_second()),
            failed_log: Mutex::new(Throttle::per_second()),
        }
    }

    fn admit(self: &Arc<Gate>, peer: SocketAddr) -> Result<Pending, Refusal> {
        let ip = peer.ip().to_canonical();
        self.admission
            .lock()
            .map_err(|_| Refusal::Total)?
            .admit(ip)?;
        Ok(Pending {
            gate: Some(self.clone()),
            ip,
            budget: None,
        })
    }

    fn log(throttle: &Mutex<Throttle>, line: impl FnOnce(String)) {
        let allowed = throttle
            .lock()
            .ok()
            .and_then(|mut t| t.allow(Instant::now()));
        if let Some(suppressed) = allowed {
            line(Throttle::and_more(suppressed));
        }
    }
}

/// One admitted connection not logged in yet; counted until dropped or [`Pending::logged_in`],
/// which also lifts its read budget.
struct Pending {
    gate: Option<Arc<Gate>>,
    ip: IpAddr,
    budget: Option<Arc<AtomicU64>>,
}

impl Pending {
    fn with_budget(mut self, budget: Arc<AtomicU64>) -> Pending {
        self.budget = Some(budget);
        self
    }

    fn logged_in(&mut self) {
        if let Some(budget) = self.budget.take() {
            budget.store(u64::MAX, Ordering::Relaxed);
        }
        if let Some(gate) = self.gate.take()
            && let Ok(mut a) = gate.admission.lock()
        {
            a.release(self.ip);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.logged_in();
    }
}

/// What the first request on a connection turned out to be.
enum Accepted<W, T> {
    WebSocket(W),
    /// `GET /updates/NAME` (see [`crate::updates`]).
    UpdateFile {
        tls: T,
        name: String,
        from: u64,
    },
    NoSuchUpdate(T),
    /// A page of the web app (see [`crate::web`]).
    Page {
        tls: T,
        page: crate::web::Page,
    },
    /// A request to the moderator console's interface (see [`crate::console_api`]).
    ConsoleApi {
        tls: T,
        head: Vec<u8>,
    },
}

/// Accepts stations and browsers on `listener`: signaling, the web app and the moderator
/// console's interface; with `updates`, also serves that directory's files at `/updates/`
/// (see [`crate::updates`]).
pub async fn serve(
    listener: async_net::TcpListener,
    tls: Arc<ServerConfig>,
    hub: Arc<Hub>,
    updates: Option<Arc<std::path::PathBuf>>,
    console: Arc<crate::console_api::Console>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let gate = Arc::new(Gate::new(AdmissionLimits::default()));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::warn!("accept: {e}");
                smol::Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let pending = match gate.admit(peer) {
            Ok(p) => p,
            Err(refusal) => {
                Gate::log(&gate.refused_log, |more| {
                    log::warn!("{peer}: refused, {refusal}{more}");
                });
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        if let Err(e) = socket2::SockRef::from(&tcp).set_send_buffer_size(KERNEL_SEND_BUFFER) {
            log::debug!("{peer}: send buffer: {e}");
        }
        let tcp = Budgeted::new(tcp, PRE_LOGIN_BYTES);
        let budget = tcp.budget();
        let acceptor = acceptor.clone();
        let hub = hub.clone();
        let gate = gate.clone();
        let updates = updates.clone();
        let console = console.clone();
        smol::spawn(async move {
            let handshake = async {
                let mut tls = acceptor
                    .accept(tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                let head = crate::updates::read_head(&mut tls)
                    .await
                    .map_err(|e| format!("request: {e}"))?;
                if let Some(page) = crate::web::route(&head) {
                    return Ok(Accepted::Page { tls, page });
                }
                if crate::console_api::is_api(&head) {
                    return Ok(Accepted::ConsoleApi { tls, head });
                }
                match (crate::updates::route(&head), updates.is_some()) {
                    (Route::File { name, from }, true) => {
                        return Ok(Accepted::UpdateFile { tls, name, from });
                    }
                    (Route::NotFound, true) => return Ok(Accepted::NoSuchUpdate(tls)),
                    _ => {}
                }
                let config = WebSocketConfig::default()
                    .max_message_size(Some(MAX_TRANSPORT_MESSAGE))
                    .max_frame_size(Some(MAX_TRANSPORT_MESSAGE));
                let replay = crate::updates::Replay::new(head, tls);
                async_tungstenite::accept_async_with_config(replay, Some(config))
                    .await
                    .map(Accepted::WebSocket)
                    .map_err(|e| format!("WebSocket: {e}"))
            };
            let timeout = async {
                smol::Timer::after(HANDSHAKE_TIMEOUT).await;
                Err("handshake timed out".to_string())
            };
            match futures_lite::future::or(handshake, timeout).await {
                Ok(Accepted::WebSocket(ws)) => {
                    connection(ws, hub, pending.with_budget(budget)).await;
                }
                Ok(Accepted::UpdateFile {
                    mut tls,
                    name,
                    from,
                }) => {
                    let dir = updates.as_deref().map_or(Path::new(""), |d| d.as_path());
                    match crate::updates::serve(&mut tls, dir, &name, from).await {
                        Ok(()) => log::info!("{peer}: update file {name} from byte {from}"),
                        Err(e) => log::info!("{peer}: update file {name}: {e}"),
                    }
                    let _ = tls.close().await;
                }
                Ok(Accepted::Page { mut tls, page }) => {
                    if let Err(e) = crate::web::serve(&mut tls, page).await {
                        log::debug!("{peer}: page: {e}");
                    }
                    let _ = tls.close().await;
                }
                Ok(Accepted::ConsoleApi { mut tls, head }) => {
                    let lift = || budget.store(u64::MAX, Ordering::Relaxed);
                    let served =
                        crate::console_api::serve(&mut tls, head, peer.ip(), &hub, &console, lift);
                    if let Err(e) = served.await {
                        log::debug!("{peer}: console: {e}");
                    }
                    let _ = tls.close().await;
                }
                Ok(Accepted::NoSuchUpdate(mut tls)) => {
                    let _ = crate::updates::not_found(&mut tls).await;
                    let _ = tls.close().await;
                }
                Err(e) => Gate::log(&gate.failed_log, |more| {
                    log::info!("{peer}: {e}{more}");
                }),
            }
        })
        .detach();
    }
}

async fn connection<S>(
    ws: async_tungstenite::WebSocketStream<S>,
    hub: Arc<Hub>,
    mut pending: Pending,
) where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + Send + 'static,
{
    let conn = ConnId(NEXT_CONN.fetch_add(1, Ordering::Relaxed));
    let (tx, rx) = stagebox_ws_link::link(crate::hub::SEND_QUEUE);
    hub.register(conn, tx);
    hub.with_core(|core, now| core.handle_open(now, conn));
    let (mut sink, mut stream) = ws.split();
    let reader = async {
        let mut read = 0u32;
        while let Some(msg) = stream.next().await {
            // A peer that floods is always ready to be read: end here once it has been hung
            // up on, and let the other connections run now and then.
            if rx.is_hung_up() {
                break;
            }
            read = read.wrapping_add(1);
            if read % YIELD_EVERY == 0 {
                futures_lite::future::yield_now().await;
            }
            match msg {
                Ok(Message::Text(t)) => {
                    let logged_in = hub.with_core(|core, now| {
                        core.handle_text(now, conn, &t);
                        core.is_authenticated(conn)
                    });
                    if logged_in {
                        pending.logged_in();
                    }
                }
                Ok(Message::Binary(_)) => hub.with_core(|core, now| {
                    core.handle_protocol_violation(now, conn, "binary frames are not allowed")
                }),
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    futures_lite::future::or(reader, rx.write_to(&mut sink)).await;
    hub.with_core(|core, now| core.handle_closed(now, conn));
    hub.unregister(conn);
}

/// A stream that may read at most its budget (shared, so the connection can lift it at
/// login); past it, reads fail and the connection ends.
struct Budgeted<S> {
    inner: S,
    budget: Arc<AtomicU64>,
}

impl<S> Budgeted<S> {
    fn new(inner: S, bytes: u64) -> Budgeted<S> {
        Budgeted {
            inner,
            budget: Arc::new(AtomicU64::new(bytes)),
        }
    }

    fn budget(&self) -> Arc<AtomicU64> {
        self.budget.clone()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Budgeted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let left = self.budget.load(Ordering::Relaxed);
        if left == 0 {
            return Poll::Ready(Err(std::io::Error::other(
                "too much sent before logging in",
            )));
        }
        let room = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let Some(window) = buf.get_mut(..room) else {
            return Poll::Ready(Ok(0));
        };
        let read = Pin::new(&mut self.inner).poll_read(cx, window);
        if let Poll::Ready(Ok(n)) = read
            && left != u64::MAX
        {
            let n = u64::try_from(n).unwrap_or(u64::MAX);
            let _ = self
                .budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                    (b != u64::MAX).then(|| b.saturating_sub(n))
                });
        }
        read
    }
}

write_through_inner!(Budgeted);
