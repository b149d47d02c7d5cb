//! The station's end of the media channel, sans-IO: keys and counters of the current session,
//! sealing outgoing audio, opening incoming packets, and the keepalives that let the server
//! learn and keep our UDP address. The plumbing owns the socket and resolves the address.
//!
//! Where the session negotiated redundant audio, outgoing frames carry as many earlier frames
//! as the listeners' reported loss asks for ([`crate::redundancy`]), and incoming redundant
//! packets are let through to the jitter buffer, which takes them apart.

use std::time::{Duration, Instant};

use stagebox_proto::media::{
    MAX_DATAGRAM, MEDIA_MODE, MediaError, MediaKey, Opened, Opener, Sealer,
};
use stagebox_proto::red::PT_RED;
use stagebox_proto::rtp::RtpHeader;
use stagebox_proto::signal::MediaParams;
use stagebox_proto::{PT_KEEPALIVE, PT_OPUS};
use thiserror::Error;

use crate::redundancy::{LossProtection, ProtectionMode, RedundantSender};

/// First keepalives go out at once and soon after; then every this long.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const EARLY_KEEPALIVES: [Duration; 2] = [Duration::ZERO, Duration::from_millis(250)];

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MediaLinkError {
    #[error("server offered media mode {0:?}, this station speaks only {MEDIA_MODE}")]
    Mode(String),
    #[error("server sent a malformed {0} key")]
    Key(&'static str),
}

/// Counters for diagnostics and reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    pub sent: u64,
    pub keepalives: u64,
    pub received: u64,
    pub dropped_unauthenticated: u64,
    pub dropped_replayed: u64,
    pub dropped_malformed: u64,
    pub dropped_not_audio: u64,
}

struct Active {
    host: String,
    port: u16,
    ssrc: u32,
    sealer: Sealer,
    opener: Opener,
    /// One sequence space for everything sent with our SSRC, audio and keepalives alike.
    next_seq: u16,
    next_keepalive: Instant,
    early_left: usize,
    /// Redundant audio negotiated for this session.
    red: bool,
    red_sender: RedundantSender,
}

#[derive(Default)]
pub struct MediaLink {
    active: Option<Active>,
    /// Loss the listeners report (or the configured floor), percent.
    expected_loss: u8,
    protection_mode: ProtectionMode,
    stats: MediaStats,
}

impl MediaLink {
    pub fn new() -> MediaLink {
        MediaLink::default()
    }

    /// Switches to a new session's media parameters. `initial_seq` should be random
    /// (RFC 3550 §5.1).
    pub fn handle_params(
        &mut self,
        now: Instant,
        p: &MediaParams,
        initial_seq: u16,
    ) -> Result<(), MediaLinkError> {
        if p.mode != MEDIA_MODE {
            return Err(MediaLinkError::Mode(p.mode.clone()));
        }
        let station_key =
            MediaKey::from_hex(&p.station_key).ok_or(MediaLinkError::Key("station"))?;
        let server_key = MediaKey::from_hex(&p.server_key).ok_or(MediaLinkError::Key("server"))?;
        self.active = Some(Active {
            host: p.host.clone(),
            port: p.port,
            ssrc: p.ssrc,
            sealer: Sealer::new(&station_key),
            opener: Opener::new(&server_key),
            next_seq: initial_seq,
            next_keepalive: now + EARLY_KEEPALIVES[0],
            early_left: EARLY_KEEPALIVES.len() - 1,
            red: p.red,
            red_sender: RedundantSender::default(),
        });
        Ok(())
    }

    /// The loss this station's listeners report (at least the configured floor), percent.
    pub fn handle_expected_loss(&mut self, loss_percent: u8) {
        self.expected_loss = loss_percent;
    }

    /// The loss the listeners report (at least the configured floor), percent.
    pub fn expected_loss(&self) -> u8 {
        self.expected_loss
    }

    /// How loss may be met (the station's configuration).
    pub fn set_protection_mode(&mut self, mode: ProtectionMode) {
        self.protection_mode = mode;
    }

    /// How outgoing audio is protected now: the encoder's FEC follows
    /// [`LossProtection::fec_loss_percent`].
    pub fn protection(&self) -> LossProtection {
        let red = self.active.as_ref().is_some_and(|a| a.red);
        LossProtection::for_loss(self.expected_loss, red, self.protection_mode)
    }

    /// Where datagrams go: host and port, once a session gave them.
    pub fn destination(&self) -> Option<(&str, u16)> {
        self.active.as_ref().map(|a| (a.host.as_str(), a.port))
    }

    pub fn ssrc(&self) -> Option<u32> {
        self.active.as_ref().map(|a| a.ssrc)
    }

    pub fn stats(&self) -> MediaStats {
        self.stats
    }

    /// Seals one Opus frame into `out` (with earlier frames, when loss asks for redundancy),
    /// numbering it; returns its length. Silence shows as a jump in `timestamp`, never in the
    /// sequence.
    pub fn seal_audio(
        &mut self,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        out: &mut [u8; MAX_DATAGRAM],
    ) -> Option<usize> {
        let redundancy = self.protection().redundancy;
        let a = self.active.as_mut()?;
        let (pt, body) = a
            .red_sender
            .next_payload(timestamp, marker, payload, redundancy);
        let header = RtpHeader::new(pt, a.next_seq, timestamp, a.ssrc, marker);
        let n = a.sealer.seal(&header, body, out).ok()?;
        a.next_seq = a.next_seq.wrapping_add(1);
        self.stats.sent += 1;
        Some(n)
    }

    /// Opens a received datagram in place; `Some` only for authentic audio (Opus, or
    /// redundant audio where negotiated).
    pub fn open(&mut self, packet: &mut [u8]) -> Option<Opened> {
        let a = self.active.as_mut()?;
        match a.opener.open(packet) {
            Ok(o)
                if o.header.payload_type == PT_OPUS
                    || (a.red && o.header.payload_type == PT_RED) =>
            {
                self.stats.received += 1;
                Some(o)
            }
            Ok(_) => {
                self.stats.dropped_not_audio += 1;
                None
            }
            Err(MediaError::Unauthenticated) => {
                self.stats.dropped_unauthenticated += 1;
                None
            }
            Err(MediaError::Replayed(_)) => {
                self.stats.dropped_replayed += 1;
                None
            }
            Err(_) => {
                self.stats.dropped_malformed += 1;
                None
            }
        }
    }

    /// A keepalive to send now, if one is due. `rtp_clock` is the audio clock's current RTP
    /// timestamp, so the stream's timestamps keep following real time between talk spurts.
    pub fn poll_keepalive(
        &mut self,
        now: Instant,
        rtp_clock: u32,
        out: &mut [u8; MAX_DATAGRAM],
    ) -> Option<usize> {
        let a = self.active.as_mut()?;
        if now < a.next_keepalive {
            return None;
        }
        let header = RtpHeader::new(PT_KEEPALIVE, a.next_seq, rtp_clock, a.ssrc, false);
        a.next_keepalive = if a.early_left > 0 {
            let step = EARLY_KEEPALIVES[EARLY_KEEPALIVES.len() - a.early_left];
            a.early_left -= 1;
            now + step
        } else {
            now + KEEPALIVE_INTERVAL
        };
        let n = a.sealer.seal(&header, &[], out).ok()?;
        a.next_seq = a.next_seq.wrapping_add(1);
        self.stats.keepalives += 1;
        Some(n)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.active.as_ref().map(|a| a.next_keepalive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> MediaParams {
        MediaParams {
            host: "127.0.0.1".into(),
            port: 50000,
            mode: MEDIA_MODE.into(),
            ssrc: 77,
            station_key: "11".repeat(32),
            server_key: "22".repeat(32),
            red: false,
        }
    }

    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn seals_with_the_station_key_and_opens_with_the_server_key() {
        let t = t0();
        let mut link = MediaLink::new();
        let mut out = [0u8; MAX_DATAGRAM];
        assert!(
            link.seal_audio(960, true, b"x", &mut out).is_none(),
            "no session yet"
        );
        link.handle_params(t, &params(), 100).unwrap();
        let n = link.seal_audio(960, true, b"opus", &mut out).unwrap();
        let mut server_side = Opener::new(&MediaKey([0x11; 32]));
        let o = server_side.open(&mut out[..n]).unwrap();
        assert_eq!(
            (o.header.ssrc, o.header.marker, o.header.sequence),
            (77, true, 100)
        );
        // Keepalives continue the same sequence, stamped with the audio clock.
        let n = link.poll_keepalive(t, 1920, &mut out).unwrap();
        let o = server_side.open(&mut out[..n]).unwrap();
        assert_eq!(
            (o.header.payload_type, o.header.sequence, o.header.timestamp),
            (PT_KEEPALIVE, 101, 1920)
        );

        let mut to_station = [0u8; MAX_DATAGRAM];
        let h = RtpHeader::new(PT_OPUS, 5, 0, 99, false);
        let n = Sealer::new(&MediaKey([0x22; 32]))
            .seal(&h, b"hi", &mut to_station)
            .unwrap();
        let o = link.open(&mut to_station[..n].to_vec()).unwrap();
        assert_eq!(o.header.ssrc, 99);
        // The same packet again is a replay.
        assert!(link.open(&mut to_station[..n].to_vec()).is_none());
        assert_eq!(link.stats().dropped_replayed, 1);
    }

    #[test]
    fn keepalives_early_then_every_interval() {
        let t = t0();
        let mut link = MediaLink::new();
        link.handle_params(t, &params(), 0).unwrap();
        let mut out = [0u8; MAX_DATAGRAM];
        let mut sent = Vec::new();
        for ms in (0..12_000).step_by(50) {
            let now = t + Duration::from_millis(ms);
            if link.poll_keepalive(now, 0, &mut out).is_some() {
                sent.push(ms);
            }
        }
        assert_eq!(sent, vec![0, 250, 5250, 10250]);
    }

    #[test]
    fn refuses_unknown_modes_and_bad_keys() {
        let t = t0();
        let mut link = MediaLink::new();
        let mut p = params();
        p.mode = "xsalsa20".into();
        assert_eq!(
            link.handle_params(t, &p, 0),
            Err(MediaLinkError::Mode("xsalsa20".into()))
        );
        let mut p = params();
        p.server_key = "zz".into();
        assert_eq!(
            link.handle_params(t, &p, 0),
            Err(MediaLinkError::Key("server"))
        );
    }
}
