//! How a speaker protects its audio against the loss its listeners report, and the sending
//! half of redundant audio (RFC 2198, [`stagebox_proto::red`]).
//!
//! Opus's in-band FEC carries a coarse copy of frame n−1 inside frame n, paid for out of the
//! frame's own bitrate. Redundant audio carries the earlier frames whole, next to the current
//! one: a listener that lost a packet plays the frame from the next packet at full quality,
//! and with two or three earlier frames as many losses in a row are repaired too (each costs
//! the listener a frame of delay while frames are being lost). So where the session
//! negotiated it, loss is met with redundancy and the encoder spends no bits on FEC; where
//! not (an older server), with FEC as before.
//!
//! One earlier frame rides along even when nobody reports loss (as WebRTC sends its RED for
//! Opus): it costs bandwidth only — a listener keeps no extra delay until it finds frames
//! missing — and the first losses on a link that turns bad are repaired at once, not after
//! the listener's report has made the round trip.
//!
//! | listeners lose | redundancy (earlier frames per packet) | encoder FEC for |
//! |----------------|----------------------------------------|-----------------|
//! | 0–4 %          | 1                                      | —               |
//! | 5–14 %         | 2                                      | —               |
//! | ≥ 15 %         | 3                                      | —               |
//! | (not negotiated, or mode [`ProtectionMode::Fec`]) | none     | the reported loss |
//!
//! [`ProtectionMode::Off`] sends plain Opus without FEC whatever is lost (for comparison, or
//! a link too narrow for either).

use stagebox_proto::PT_OPUS;
use stagebox_proto::red::{self, Block, MAX_REDUNDANT_SENT, PT_RED};

/// Largest redundant payload sent: what a receiver takes as one packet (the largest Opus
/// packet, RFC 6716 §3.4). Earlier frames that would not fit are left out.
pub const MAX_RED_PAYLOAD: usize = 1275;

/// How a speaker may meet loss (the station's `audio.loss_protection`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProtectionMode {
    /// Redundant earlier frames where the session negotiated them, else FEC.
    #[default]
    Redundancy,
    /// The encoder's in-band FEC only (a third of the bandwidth of two redundant copies).
    Fec,
    /// Nothing: the listeners conceal what they lose.
    Off,
}

/// What the loss a speaker's listeners report asks of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossProtection {
    /// Earlier frames each packet carries.
    pub redundancy: usize,
    /// Loss the encoder's in-band FEC is tuned for, in percent.
    pub fec_loss_percent: u8,
}

impl LossProtection {
    pub fn for_loss(
        loss_percent: u8,
        red_negotiated: bool,
        mode: ProtectionMode,
    ) -> LossProtection {
        if mode == ProtectionMode::Off {
            return LossProtection {
                redundancy: 0,
                fec_loss_percent: 0,
            };
        }
        if !red_negotiated || mode == ProtectionMode::Fec {
            return LossProtection {
                redundancy: 0,
                fec_loss_percent: loss_percent,
            };
        }
        let redundancy = match loss_percent {
            0..=4 => 1,
            5..=14 => 2,
            _ => MAX_REDUNDANT_SENT,
        };
        LossProtection {
            redundancy,
            fec_loss_percent: 0,
        }
    }
}

#[derive(Debug, Clone)]
struct Earlier {
    timestamp: u32,
    payload: Vec<u8>,
}

/// The frames most recently sent, and the payload being built.
#[derive(Debug, Clone)]
pub struct RedundantSender {
    /// Most recent last; at most [`MAX_REDUNDANT_SENT`].
    history: Vec<Earlier>,
    scratch: Vec<u8>,
}

impl Default for RedundantSender {
    fn default() -> Self {
        RedundantSender {
            history: Vec::with_capacity(MAX_REDUNDANT_SENT),
            scratch: vec![0; MAX_RED_PAYLOAD],
        }
    }
}

impl RedundantSender {
    /// The payload type and payload to send for the frame `payload` at `timestamp`, with up to
    /// `redundancy` earlier frames of the same talk spurt (`marker` starts one).
    pub fn next_payload<'a>(
        &'a mut self,
        timestamp: u32,
        marker: bool,
        payload: &'a [u8],
        redundancy: usize,
    ) -> (u8, &'a [u8]) {
        if marker {
            self.history.clear();
        }
        let primary = Block {
            payload_type: PT_OPUS,
            timestamp,
            payload,
        };
        let mut blocks = [primary; MAX_REDUNDANT_SENT];
        let mut count = 0;
        let mut size = 1 + payload.len();
        for e in self.history.iter().rev().take(redundancy) {
            let block = Block {
                payload_type: PT_OPUS,
                timestamp: e.timestamp,
                payload: &e.payload,
            };
            size += 4 + e.payload.len();
            if !red::fits_as_redundant(&block, timestamp) || size > MAX_RED_PAYLOAD {
                break;
            }
            if let Some(slot) = blocks.get_mut(count) {
                *slot = block;
                count += 1;
            }
        }
        let earlier = blocks.get_mut(..count).unwrap_or_default();
        earlier.reverse();
        let written = if redundancy > 0 {
            red::write(&primary, earlier, &mut self.scratch).ok()
        } else {
            None
        };
        remember(&mut self.history, timestamp, payload);
        match written {
            Some(n) => (PT_RED, self.scratch.get(..n).unwrap_or_default()),
            None => (PT_OPUS, payload),
        }
    }
}

/// Keeps `payload` as the newest earlier frame, reusing the oldest one's buffer when full.
fn remember(history: &mut Vec<Earlier>, timestamp: u32, payload: &[u8]) {
    let mut entry = if history.len() >= MAX_REDUNDANT_SENT {
        history.remove(0)
    } else {
        Earlier {
            timestamp: 0,
            payload: Vec::with_capacity(MAX_RED_PAYLOAD),
        }
    };
    entry.timestamp = timestamp;
    entry.payload.clear();
    entry.payload.extend_from_slice(payload);
    history.push(entry);
}

#[cfg(test)]
mod tests {
    use super::*;
    use stagebox_proto::red::RedPayload;

    #[test]
    fn protection_follows_the_reported_loss() {
        use ProtectionMode::*;
        let p = |loss, red, mode| {
            let p = LossProtection::for_loss(loss, red, mode);
            (p.redundancy, p.fec_loss_percent)
        };
        assert_eq!(p(0, true, Redundancy), (1, 0));
        assert_eq!(p(3, true, Redundancy), (1, 0));
        assert_eq!(p(10, true, Redundancy), (2, 0));
        assert_eq!(p(20, true, Redundancy), (3, 0));
        assert_eq!(p(20, false, Redundancy), (0, 20));
        assert_eq!(p(20, true, Fec), (0, 20));
        assert_eq!(p(20, true, Off), (0, 0));
    }

    #[test]
    fn carries_the_earlier_frames_of_the_spurt_oldest_first() {
        let mut s = RedundantSender::default();
        assert_eq!(
            s.next_payload(960, true, b"a", 2),
            (PT_RED, &[PT_OPUS, b'a'][..])
        );
        let (pt, bytes) = s.next_payload(1920, false, b"bb", 2);
        assert_eq!(pt, PT_RED);
        let red = RedPayload::parse(bytes, 1920).unwrap();
        let earlier: Vec<_> = red.redundant().map(|b| (b.timestamp, b.payload)).collect();
        assert_eq!(earlier, vec![(960, &b"a"[..])]);
        let (_, bytes) = s.next_payload(2880, false, b"ccc", 2);
        let bytes = bytes.to_vec();
        let red = RedPayload::parse(&bytes, 2880).unwrap();
        let earlier: Vec<_> = red.redundant().map(|b| (b.timestamp, b.payload)).collect();
        assert_eq!(earlier, vec![(960, &b"a"[..]), (1920, &b"bb"[..])]);
        assert_eq!(red.primary().payload, b"ccc");
        // One earlier frame when less loss is reported; none across a new spurt.
        let (_, bytes) = s.next_payload(3840, false, b"d", 1);
        let bytes = bytes.to_vec();
        assert_eq!(
            RedPayload::parse(&bytes, 3840)
                .unwrap()
                .find(2880)
                .unwrap()
                .payload,
            b"ccc"
        );
        let (_, bytes) = s.next_payload(99_000, true, b"e", 2);
        assert_eq!(
            RedPayload::parse(bytes, 99_000).unwrap().redundant_count(),
            0
        );
    }

    #[test]
    fn plain_opus_without_redundancy_and_nothing_too_large_or_too_old() {
        let mut s = RedundantSender::default();
        assert_eq!(s.next_payload(0, true, b"a", 0), (PT_OPUS, &b"a"[..]));
        // A frame 20 000 samples later cannot point back (14-bit offset).
        let (_, bytes) = s.next_payload(20_000, false, b"b", 2);
        assert_eq!(
            RedPayload::parse(bytes, 20_000).unwrap().redundant_count(),
            0
        );
        // Large frames: only what fits in one packet's worth.
        let big = vec![7u8; 600];
        s.next_payload(21_000, false, &big, 2);
        s.next_payload(22_000, false, &big, 2);
        let (_, bytes) = s.next_payload(23_000, false, &big, 2);
        assert!(bytes.len() <= MAX_RED_PAYLOAD);
        assert_eq!(
            RedPayload::parse(bytes, 23_000).unwrap().redundant_count(),
            1
        );
    }
}
