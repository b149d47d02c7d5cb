//! # stagebox-ws-link — one WebSocket connection's sending half, for station and server
//!
//! Both ends of signaling send the same way: whoever decides (the station core, the server
//! core) queues frames, and a writer task drains them into the socket. Written once here:
//!
//! - the queue is **bounded** ([`link`]): a peer that stops reading fills it, and the next
//!   [`LinkSender::send`] says so ([`Overflow`]) instead of growing memory;
//! - [`LinkSender::hang_up`] ends the connection from outside at once, even while the writer
//!   is blocked on a peer that does not read (the server's answer to an overflow);
//! - a close frame is given [`CLOSE_GRACE`] to leave: a dead peer cannot hold the task.
//!
//! Plumbing only: what to send and when to give up is decided by the cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_tungstenite::tungstenite::protocol::frame::CloseFrame;
use async_tungstenite::tungstenite::{Error as WsError, Message};
use futures_util::{Sink, SinkExt};

/// How long a close frame may take to leave before the connection is dropped anyway.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// A frame to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Text(String),
    /// Send a close frame with this code, then end.
    Close(u16),
}

/// The queue is full: the peer has not read the last `capacity` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

impl std::fmt::Display for Overflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the peer is not reading: its send queue is full")
    }
}

impl std::error::Error for Overflow {}

/// The deciding side's end of a connection's send queue.
#[derive(Debug, Clone)]
pub struct LinkSender {
    frames: async_channel::Sender<Outgoing>,
    hangup: async_channel::Sender<()>,
    hung_up: Arc<AtomicBool>,
}

/// The writer's end.
#[derive(Debug)]
pub struct LinkReceiver {
    frames: async_channel::Receiver<Outgoing>,
    hangup: async_channel::Receiver<()>,
    hung_up: Arc<AtomicBool>,
}

/// A send queue of at most `capacity` frames.
pub fn link(capacity: usize) -> (LinkSender, LinkReceiver) {
    let (frames_tx, frames_rx) = async_channel::bounded(capacity.max(1));
    let (hangup_tx, hangup_rx) = async_channel::bounded(1);
    let hung_up = Arc::new(AtomicBool::new(false));
    (
        LinkSender {
            frames: frames_tx,
            hangup: hangup_tx,
            hung_up: hung_up.clone(),
        },
        LinkReceiver {
            frames: frames_rx,
            hangup: hangup_rx,
            hung_up,
        },
    )
}

impl LinkSender {
    /// Queues a frame without waiting. A connection that has ended takes anything silently
    /// (its end is reported by its reader).
    pub fn send(&self, frame: Outgoing) -> Result<(), Overflow> {
        match self.frames.try_send(frame) {
            Ok(()) | Err(async_channel::TrySendError::Closed(_)) => Ok(()),
            Err(async_channel::TrySendError::Full(_)) => Err(Overflow),
        }
    }

    /// Ends the connection now, whatever is queued or being written.
    pub fn hang_up(&self) {
        self.hung_up.store(true, Ordering::Relaxed);
        let _ = self.hangup.try_send(());
    }
}

impl LinkReceiver {
    /// Whether the sending side hung up. The connection's reader checks it between messages:
    /// a peer that floods never lets its reader wait, so the reader must end the connection
    /// itself (the writer may not be polled again while the reader is always ready).
    pub fn is_hung_up(&self) -> bool {
        self.hung_up.load(Ordering::Relaxed)
    }

    /// The next frame, or `None` when the sending side is gone or hung up.
    pub async fn next(&self) -> Option<Outgoing> {
        futures_lite::future::or(async { self.frames.recv().await.ok() }, async {
            self.hung_up().await;
            None
        })
        .await
    }

    /// Resolves when the sending side hangs up (never, if it only goes away).
    pub async fn hung_up(&self) {
        if self.hangup.recv().await.is_err() {
            futures_lite::future::pending::<()>().await;
        }
    }

    /// Drains the queue into `sink` until a close is sent, the socket fails, the sending side
    /// goes away or hangs up.
    pub async fn write_to<S>(&self, sink: &mut S)
    where
        S: Sink<Message, Error = WsError> + Unpin,
    {
        let writer = async {
            while let Ok(frame) = self.frames.recv().await {
                match frame {
                    Outgoing::Text(t) => {
                        if sink.send(Message::text(t)).await.is_err() {
                            return;
                        }
                    }
                    Outgoing::Close(code) => {
                        let frame = CloseFrame {
                            code: code.into(),
                            reason: "".into(),
                        };
                        let _ = futures_lite::future::or(
                            async {
                                let _ = sink.send(Message::Close(Some(frame))).await;
                            },
                            smol_sleep(CLOSE_GRACE),
                        )
                        .await;
                        return;
                    }
                }
            }
        };
        futures_lite::future::or(writer, self.hung_up()).await;
    }
}

async fn smol_sleep(d: Duration) {
    smol::Timer::after(d).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_hang_up_is_seen_by_the_reader_without_waiting() {
        let (tx, rx) = link(2);
        assert!(!rx.is_hung_up());
        tx.clone().hang_up();
        assert!(rx.is_hung_up());
    }

    #[test]
    fn a_full_queue_overflows_instead_of_growing() {
        let (tx, _rx) = link(2);
        assert_eq!(tx.send(Outgoing::Text("a".into())), Ok(()));
        assert_eq!(tx.send(Outgoing::Text("b".into())), Ok(()));
        assert_eq!(tx.send(Outgoing::Text("c".into())), Err(Overflow));
    }

    #[test]
    fn a_hang_up_ends_a_writer_blocked_on_a_peer_that_does_not_read() {
        /// A sink that never accepts anything: the peer's window is shut.
        struct Stalled;
        impl Sink<Message> for Stalled {
            type Error = WsError;
            fn poll_ready(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), WsError>> {
                std::task::Poll::Pending
            }
            fn start_send(self: std::pin::Pin<&mut Self>, _: Message) -> Result<(), WsError> {
                Ok(())
            }
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), WsError>> {
                std::task::Poll::Pending
            }
            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), WsError>> {
                std::task::Poll::Pending
            }
        }
        let (tx, rx) = link(4);
        tx.send(Outgoing::Text("stuck".into())).unwrap();
        let hang_up = tx.clone();
        smol::block_on(async {
            let mut sink = Stalled;
            let writer = rx.write_to(&mut sink);
            let later = async {
                smol::Timer::after(Duration::from_millis(20)).await;
                hang_up.hang_up();
                futures_lite::future::pending::<()>().await;
            };
            futures_lite::future::or(writer, later).await;
        });
        // A close to a dead peer is given up after the grace period.
        let (tx, rx) = link(4);
        tx.send(Outgoing::Close(1000)).unwrap();
        smol::block_on(async {
            let mut sink = Stalled;
            rx.write_to(&mut sink).await;
        });
    }
}
