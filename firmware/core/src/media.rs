//! The station's end of the media channel, sans-IO: the media offer checked into types
//! ([`MediaOffer`]), keys and counters of the current session, sealing outgoing audio, opening
//! incoming packets, and the keepalives that let the server learn and keep our UDP address.
//! Where the datagrams go is [`crate::media_route`]'s; the plumbing owns the socket.
//!
//! Where the session negotiated redundant audio, outgoing frames carry as many earlier frames
//! as the listeners' reported loss asks for ([`crate::redundancy`]), and incoming redundant
//! packets are let through to the jitter buffer, which takes them apart.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use stagebox_proto::close::CloseCode;
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

/// Why a media offer (the `media` of `ready`) cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MediaOfferError {
    #[error("the server offered media mode {0:?}; this station speaks only {MEDIA_MODE}")]
    Mode(String),
    #[error("the server sent a malformed {0} key (64 hex digits expected)")]
    Key(&'static str),
    #[error("the server offered media port 0")]
    Port,
    #[error("the server offered an unusable media host (empty, too long, or not a host name)")]
    Host,
}

impl MediaOfferError {
    /// The close code the station answers the offer with: an unknown mode is the documented
    /// 4013 (wait, identify), anything malformed is a decode error.
    pub fn close_code(&self) -> CloseCode {
        match self {
            MediaOfferError::Mode(_) => CloseCode::UnsupportedMode,
            _ => CloseCode::DecodeError,
        }
    }
}

/// Where the voice server listens: an address, or a name to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaHost {
    Ip(IpAddr),
    Name(String),
}

/// Longest host name (RFC 1035, in text form).
const MAX_HOST_NAME: usize = 253;

impl MediaHost {
    /// An IP literal (IPv6 with or without brackets) or a DNS name: letters, digits, `-`, `_`
    /// and dots, 1 to 253 bytes.
    pub fn parse(host: &str) -> Option<MediaHost> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Some(MediaHost::Ip(ip));
        }
        let name_ok = !host.is_empty()
            && host.len() <= MAX_HOST_NAME
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && host
                .split('.')
                .all(|label| !label.is_empty() || host.ends_with('.'));
        name_ok.then(|| MediaHost::Name(host.to_string()))
    }
}

/// A media offer the station can use, checked from the wire's [`MediaParams`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaOffer {
    pub host: MediaHost,
    /// Never 0.
    pub port: u16,
    pub ssrc: u32,
    pub station_key: MediaKey,
    pub server_key: MediaKey,
    /// Redundant audio negotiated.
    pub red: bool,
}

impl MediaOffer {
    pub fn check(p: &MediaParams) -> Result<MediaOffer, MediaOfferError> {
        if p.mode != MEDIA_MODE {
            return Err(MediaOfferError::Mode(p.mode.chars().take(64).collect()));
        }
        let station_key =
            MediaKey::from_hex(&p.station_key).ok_or(MediaOfferError::Key("station"))?;
        let server_key = MediaKey::from_hex(&p.server_key).ok_or(MediaOfferError::Key("server"))?;
        if p.port == 0 {
            return Err(MediaOfferError::Port);
        }
        let host = MediaHost::parse(&p.host).ok_or(MediaOfferError::Host)?;
        Ok(MediaOffer {
            host,
            port: p.port,
            ssrc: p.ssrc,
            station_key,
            server_key,
            red: p.red,
        })
    }
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
    /// From anywhere but the media server.
    pub dropped_foreign: u64,
}

struct Active {
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

impl std::fmt::Debug for MediaLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaLink")
            .field("ssrc", &self.ssrc())
            .field("expected_loss", &self.expected_loss)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl MediaLink {
    pub fn new() -> MediaLink {
        MediaLink::default()
    }

    /// Switches to a new session's media. `initial_seq` should be random (RFC 3550 §5.1).
    pub fn handle_offer(&mut self, now: Instant, offer: &MediaOffer, initial_seq: u16) {
        self.active = Some(Active {
            ssrc: offer.ssrc,
            sealer: Sealer::new(&offer.station_key),
            opener: Opener::new(&offer.server_key),
            next_seq: initial_seq,
            next_keepalive: now + EARLY_KEEPALIVES[0],
            early_left: EARLY_KEEPALIVES.len() - 1,
            red: offer.red,
            red_sender: RedundantSender::default(),
        });
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

    /// Counts a datagram that came from anywhere but the media server.
    pub fn count_foreign(&mut self) {
        self.stats.dropped_foreign += 1;
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

    fn offer() -> MediaOffer {
        MediaOffer::check(&params()).unwrap()
    }

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
        link.handle_offer(t, &offer(), 100);
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
        link.handle_offer(t, &offer(), 0);
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
    fn an_offer_the_station_cannot_use_is_refused_with_its_close_code() {
        let bad = |edit: fn(&mut MediaParams)| {
            let mut p = params();
            edit(&mut p);
            MediaOffer::check(&p).map(|_| ())
        };
        assert_eq!(
            bad(|p| p.mode = "xsalsa20".into()),
            Err(MediaOfferError::Mode("xsalsa20".into()))
        );
        assert_eq!(
            bad(|p| p.mode = String::new()).map_err(|e| e.close_code()),
            Err(CloseCode::UnsupportedMode)
        );
        assert_eq!(
            bad(|p| p.server_key = "zz".into()),
            Err(MediaOfferError::Key("server"))
        );
        assert_eq!(
            bad(|p| p.station_key = "11".repeat(31)),
            Err(MediaOfferError::Key("station"))
        );
        assert_eq!(bad(|p| p.port = 0), Err(MediaOfferError::Port));
        for host in [
            "",
            " ",
            "a b",
            "host\0",
            "http://x",
            "a..b",
            &"a".repeat(254),
        ] {
            let mut p = params();
            p.host = host.to_string();
            assert_eq!(
                MediaOffer::check(&p),
                Err(MediaOfferError::Host),
                "{host:?}"
            );
            assert_eq!(MediaOfferError::Host.close_code(), CloseCode::DecodeError);
        }
        for (host, want) in [
            ("127.0.0.1", MediaHost::Ip([127, 0, 0, 1].into())),
            ("::1", MediaHost::Ip(std::net::Ipv6Addr::LOCALHOST.into())),
            ("[::1]", MediaHost::Ip(std::net::Ipv6Addr::LOCALHOST.into())),
            (
                "voice-1.example.org",
                MediaHost::Name("voice-1.example.org".into()),
            ),
        ] {
            let mut p = params();
            p.host = host.to_string();
            assert_eq!(MediaOffer::check(&p).unwrap().host, want);
        }
    }
}
