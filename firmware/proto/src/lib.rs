//! # stagebox-proto — the wire
//!
//! Everything a station and a stage server say to each other, as bytes, with no I/O and no
//! clock: this crate is the lowest layer and every other crate builds on it.
//!
//! - [`signal`]: the JSON signaling messages carried in WebSocket text frames over TLS, with
//!   bounded, total decoding ([`signal::SignalError`] names the close code to answer with).
//! - [`close`]: WebSocket close codes and whether a station resumes, re-identifies or waits
//!   after each.
//! - [`rtp`]: the RTP fixed header (RFC 3550), parsed against the buffer's length only.
//! - [`media`]: the `chacha20_poly1305_rtpsize` media AEAD (header as associated data,
//!   ciphertext ‖ tag ‖ 4-byte big-endian counter), allocation-free.
//! - [`red`]: redundant audio (RFC 2198): earlier frames ride along with the current one.
//! - [`replay`]: the sliding window that refuses replayed counters.
//! - [`seq`]: wrapping sequence-number arithmetic.
//!
//! `docs/protocol.md` is the specification; its test vectors are checked by this crate's
//! tests.
#![deny(clippy::indexing_slicing)]

pub mod close;
pub mod media;
pub mod red;
pub mod replay;
pub mod rtp;
pub mod seq;
pub mod signal;

/// RTP payload type of Opus audio.
pub const PT_OPUS: u8 = 120;
/// RTP payload type of a keepalive: an empty sealed packet that lets the server learn and
/// keep the station's UDP address. Never forwarded.
pub const PT_KEEPALIVE: u8 = 121;
/// Opus RTP clock rate.
pub const RTP_CLOCK_HZ: u32 = 48_000;
