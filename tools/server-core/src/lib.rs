//! # stagebox-server-core — the reference stage server's logic, sans-IO
//!
//! The gateway, signaling and selective forwarding unit of the reference stage server, as one
//! state machine with no clock and no sockets: the `stage-server` binary accepts connections
//! and datagrams and calls [`StageServer`]'s `handle_*`, then sends what `poll_transmit` and
//! `poll_datagram` yield. The same core drives the two-peer virtual-time tests against the
//! station core.
//!
//! - `signal`: connections, identify/resume, heartbeats, stage ops from stations, expiry.
//! - `media`: authenticate, latch addresses, forward speakers' audio with per-receiver keys,
//!   counters and consecutive sequence numbers; drop and count the rest. Nothing is allocated
//!   per datagram: sealed copies wait in the `outbox`'s reused buffers.
//! - [`browser`]: a browser's media — one str0m WebRTC peer (ICE-lite, DTLS-SRTP, Opus in
//!   RTP mode), a line per speaker it hears; `web`: `join_web` and `web_offer`.
//! - `admin`: moderator actions (invite, move to audience, mute, priority, kick, end the
//!   stage) and moves; [`overview`]: the stages as a moderator's console shows them.
//! - [`soundboard`]: clips played into a stage as their own source, a frame every 20 ms.
//! - [`admission`]: caps on connections that have not logged in, per source and in total.
//! - [`config`]: stations, stages, timings, and the [`config::Entropy`] keys come from.

pub mod admin;
pub mod admission;
pub mod browser;
pub mod config;
pub mod media;
mod outbox;
pub mod overview;
mod server;
mod signal;
pub mod soundboard;
mod web;

pub use admin::{AdminCmd, AdminError, AdminReply};
pub use config::{Entropy, SeededEntropy, ServerConfig, StationCredential};
pub use media::MediaOutcome;
pub use server::{ConnId, ServerStats, ServerTransmit, StageServer};
pub use signal::MAX_PRE_AUTH_LEN;
