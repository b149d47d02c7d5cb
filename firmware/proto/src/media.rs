//! Media encryption, mode `chacha20_poly1305_rtpsize`.
//!
//! Packet layout (all lengths in bytes):
//!
//! ```text
//! | RTP header (12+, AAD) | ciphertext of payload (n) | Poly1305 tag (16) | counter (4, BE) |
//! ```
//!
//! The AEAD is ChaCha20-Poly1305 (RFC 8439) from `aws-lc-rs`, the same provider the TLS stack
//! uses. The 96-bit nonce is the 32-bit counter big-endian in bytes 0..4 followed by eight
//! zero bytes. Each direction of a session has its own key, so counters may overlap between
//! directions without reusing a nonce. A sender never wraps its counter: when it is used up
//! the session must be re-keyed (re-identify), and [`MediaError::CounterExhausted`] says so.
//! Nothing here allocates: sealing writes into a caller's buffer, opening decrypts in place.

use core::fmt;
use core::ops::Range;

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use thiserror::Error;

use crate::replay::ReplayWindow;
use crate::rtp::{RtpError, RtpHeader};

/// Name of the only media mode, as negotiated in signaling.
pub const MEDIA_MODE: &str = "chacha20_poly1305_rtpsize";
/// Key length in bytes.
pub const KEY_LEN: usize = 32;
/// Authentication tag length in bytes.
pub const TAG_LEN: usize = 16;
/// Length of the trailing nonce counter.
pub const COUNTER_LEN: usize = 4;
/// Bytes a sealed packet carries on top of header and plaintext payload.
pub const SEAL_OVERHEAD: usize = TAG_LEN + COUNTER_LEN;
/// Largest datagram either side sends or accepts.
pub const MAX_DATAGRAM: usize = 1400;

/// Why a media packet could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MediaError {
    #[error("malformed RTP header: {0}")]
    Rtp(#[from] RtpError),
    #[error("packet too short for tag and counter")]
    Truncated,
    #[error("packet larger than {MAX_DATAGRAM} bytes")]
    Oversized,
    #[error("authentication failed (wrong key or tampered packet)")]
    Unauthenticated,
    #[error("nonce counter {0} was already used or is too old")]
    Replayed(u32),
    #[error("nonce counter used up: the session must be re-keyed")]
    CounterExhausted,
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// A 256-bit media key. Its `Debug` does not print the key.
#[derive(Clone, PartialEq, Eq)]
pub struct MediaKey(pub [u8; KEY_LEN]);

impl fmt::Debug for MediaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MediaKey(..)")
    }
}

impl MediaKey {
    /// Parses 64 hex digits, as keys travel in signaling.
    pub fn from_hex(s: &str) -> Option<MediaKey> {
        let mut key = [0u8; KEY_LEN];
        hex::decode_to_slice(s, &mut key).ok()?;
        Some(MediaKey(key))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn aead(&self) -> LessSafeKey {
        // CHACHA20_POLY1305 takes exactly KEY_LEN bytes, which the array type guarantees.
        match UnboundKey::new(&CHACHA20_POLY1305, &self.0) {
            Ok(k) => LessSafeKey::new(k),
            Err(_) => unreachable_key_len(),
        }
    }
}

#[allow(clippy::panic)]
#[cold]
fn unreachable_key_len() -> ! {
    panic!("ChaCha20-Poly1305 key length is fixed at 32 bytes")
}

fn nonce(counter: u32) -> Nonce {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Seals with an explicit counter: the building block of [`Sealer`] and of the test vectors.
/// Writes header ‖ ciphertext ‖ tag ‖ counter into `out` and returns its length.
pub fn seal_with_counter(
    key: &LessSafeKey,
    header: &RtpHeader,
    payload: &[u8],
    counter: u32,
    out: &mut [u8],
) -> Result<usize, MediaError> {
    let total = header.header_len + payload.len() + SEAL_OVERHEAD;
    if total > MAX_DATAGRAM {
        return Err(MediaError::Oversized);
    }
    let out = out.get_mut(..total).ok_or(MediaError::BufferTooSmall)?;
    let hlen = header.write(out)?;
    let (head, rest) = out.split_at_mut(hlen);
    let (body, trailer) = rest.split_at_mut(payload.len());
    body.copy_from_slice(payload);
    let tag = key
        .seal_in_place_separate_tag(nonce(counter), Aad::from(&*head), body)
        .map_err(|_| MediaError::Oversized)?;
    let (tag_out, counter_out) = trailer.split_at_mut(TAG_LEN);
    tag_out.copy_from_slice(tag.as_ref());
    counter_out.copy_from_slice(&counter.to_be_bytes());
    Ok(total)
}

/// A packet opened in place: the header and where the plaintext payload now lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub header: RtpHeader,
    pub payload: Range<usize>,
    pub counter: u32,
}

/// Reads the header and trailing counter of a sealed packet without authenticating it: lets a
/// receiver find the session by SSRC and check the replay window before decrypting.
pub fn peek(packet: &[u8]) -> Result<(RtpHeader, u32), MediaError> {
    if packet.len() > MAX_DATAGRAM {
        return Err(MediaError::Oversized);
    }
    let header = RtpHeader::parse(packet)?;
    if packet.len() < header.header_len + SEAL_OVERHEAD {
        return Err(MediaError::Truncated);
    }
    let counter_bytes: [u8; COUNTER_LEN] = packet
        .get(packet.len() - COUNTER_LEN..)
        .and_then(|c| c.try_into().ok())
        .ok_or(MediaError::Truncated)?;
    let counter = u32::from_be_bytes(counter_bytes);
    Ok((header, counter))
}

/// Authenticates and decrypts in place, without a replay check (see [`Opener`]).
pub fn open_in_place(key: &LessSafeKey, packet: &mut [u8]) -> Result<Opened, MediaError> {
    let (header, counter) = peek(packet)?;
    let len = packet.len();
    let (head, rest) = packet.split_at_mut(header.header_len);
    let (body, trailer) = rest.split_at_mut(len - header.header_len - SEAL_OVERHEAD);
    let tag = trailer.get(..TAG_LEN).ok_or(MediaError::Truncated)?;
    key.open_in_place_separate_tag(nonce(counter), Aad::from(&*head), tag, body)
        .map_err(|_| MediaError::Unauthenticated)?;
    let start = header.header_len;
    Ok(Opened {
        header,
        payload: start..start + body.len(),
        counter,
    })
}

/// The sending half of one direction of a session: one key, a counter that never repeats.
pub struct Sealer {
    key: LessSafeKey,
    next: Option<u32>,
}

impl Sealer {
    pub fn new(key: &MediaKey) -> Sealer {
        Sealer::starting_at(key, 0)
    }

    /// A sealer whose first packet uses `counter` (a resumed session continues its count).
    pub fn starting_at(key: &MediaKey, counter: u32) -> Sealer {
        Sealer {
            key: key.aead(),
            next: Some(counter),
        }
    }

    /// Seals one packet into `out`, returning its length.
    pub fn seal(
        &mut self,
        header: &RtpHeader,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, MediaError> {
        let counter = self.next.ok_or(MediaError::CounterExhausted)?;
        let n = seal_with_counter(&self.key, header, payload, counter, out)?;
        self.next = counter.checked_add(1);
        Ok(n)
    }

    /// The counter the next packet will carry, or `None` when used up.
    pub fn next_counter(&self) -> Option<u32> {
        self.next
    }
}

/// The receiving half of one direction of a session: authenticates, rejects replays.
pub struct Opener {
    key: LessSafeKey,
    window: ReplayWindow,
}

impl Opener {
    pub fn new(key: &MediaKey) -> Opener {
        Opener {
            key: key.aead(),
            window: ReplayWindow::new(),
        }
    }

    /// Opens `packet` in place. A replayed or unauthenticated packet leaves the window as it
    /// was.
    pub fn open(&mut self, packet: &mut [u8]) -> Result<Opened, MediaError> {
        let (_, counter) = peek(packet)?;
        if !self.window.is_fresh(counter) {
            return Err(MediaError::Replayed(counter));
        }
        let opened = open_in_place(&self.key, packet)?;
        self.window.accept(counter);
        Ok(opened)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn key(b: u8) -> MediaKey {
        MediaKey([b; KEY_LEN])
    }

    fn sealed(sealer: &mut Sealer, seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = [0u8; MAX_DATAGRAM];
        let h = RtpHeader::new(120, seq, u32::from(seq) * 960, 7, false);
        let n = sealer.seal(&h, payload, &mut out).unwrap();
        out[..n].to_vec()
    }

    #[test]
    fn seal_open_round_trip() {
        let mut s = Sealer::new(&key(1));
        let mut o = Opener::new(&key(1));
        let mut p = sealed(&mut s, 42, b"opus frame");
        assert_eq!(p.len(), 12 + 10 + SEAL_OVERHEAD);
        let opened = o.open(&mut p).unwrap();
        assert_eq!(opened.header.sequence, 42);
        assert_eq!(opened.counter, 0);
        assert_eq!(&p[opened.payload], b"opus frame");
    }

    #[test]
    fn empty_payload_is_a_valid_keepalive() {
        let mut s = Sealer::new(&key(1));
        let mut p = sealed(&mut s, 1, b"");
        assert_eq!(p.len(), 32);
        let opened = Opener::new(&key(1)).open(&mut p).unwrap();
        assert!(opened.payload.is_empty());
    }

    #[test]
    fn wrong_key_and_tampering_are_rejected() {
        let mut s = Sealer::new(&key(1));
        let p = sealed(&mut s, 1, b"abc");
        assert_eq!(
            Opener::new(&key(2)).open(&mut p.clone()),
            Err(MediaError::Unauthenticated)
        );
        for i in 0..p.len() - COUNTER_LEN {
            let mut t = p.clone();
            t[i] ^= 0x01;
            let r = Opener::new(&key(1)).open(&mut t);
            assert!(r.is_err(), "flipping byte {i} went unnoticed");
        }
    }

    #[test]
    fn replayed_counter_is_rejected_and_forgery_does_not_move_window() {
        let mut s = Sealer::new(&key(1));
        let mut o = Opener::new(&key(1));
        let p0 = sealed(&mut s, 1, b"a");
        o.open(&mut p0.clone()).unwrap();
        assert_eq!(o.open(&mut p0.clone()), Err(MediaError::Replayed(0)));
        // A forged packet with a far-ahead counter must not shift the window.
        let mut forged = sealed(&mut Sealer::starting_at(&key(9), 1000), 2, b"x");
        assert_eq!(o.open(&mut forged), Err(MediaError::Unauthenticated));
        let mut p1 = sealed(&mut s, 2, b"b");
        assert_eq!(o.open(&mut p1).unwrap().counter, 1);
    }

    #[test]
    fn truncated_and_oversized_are_rejected() {
        let mut s = Sealer::new(&key(1));
        let p = sealed(&mut s, 1, b"abc");
        let mut o = Opener::new(&key(1));
        for len in 0..32 {
            assert!(o.open(&mut p[..len.min(p.len())].to_vec()).is_err());
        }
        let mut big = vec![0x80u8; MAX_DATAGRAM + 1];
        assert_eq!(o.open(&mut big), Err(MediaError::Oversized));
        let h = RtpHeader::new(120, 1, 1, 1, false);
        let mut out = vec![0u8; 2 * MAX_DATAGRAM];
        assert_eq!(
            s.seal(&h, &[0u8; MAX_DATAGRAM], &mut out),
            Err(MediaError::Oversized)
        );
        assert_eq!(
            s.seal(&h, b"abc", &mut [0u8; 20]),
            Err(MediaError::BufferTooSmall)
        );
    }

    #[test]
    fn counter_never_wraps() {
        let mut s = Sealer::starting_at(&key(1), u32::MAX);
        let h = RtpHeader::new(120, 1, 1, 1, false);
        let mut out = [0u8; 64];
        assert!(s.seal(&h, b"", &mut out).is_ok());
        assert_eq!(s.next_counter(), None);
        assert_eq!(s.seal(&h, b"", &mut out), Err(MediaError::CounterExhausted));
    }

    #[test]
    fn key_hex_round_trip_and_debug_hides_key() {
        let k = MediaKey::from_hex(&"ab".repeat(32)).unwrap();
        assert_eq!(k.to_hex(), "ab".repeat(32));
        assert!(MediaKey::from_hex("abc").is_none());
        assert!(MediaKey::from_hex(&"zz".repeat(32)).is_none());
        assert_eq!(format!("{k:?}"), "MediaKey(..)");
    }
}
