//! A stage on the server core with one speaker and `listeners` listeners, every address
//! latched by a keepalive, and the speaker's packets sealed ahead of time: what the forwarding
//! test and `cargo xtask bench forward` drive.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Instant;

use stagebox_proto::media::{MAX_DATAGRAM, MediaKey, Sealer};
use stagebox_proto::rtp::RtpHeader;
use stagebox_proto::signal::{ClientMsg, Role, ServerMsg};
use stagebox_proto::{PT_KEEPALIVE, PT_OPUS};
use stagebox_server_core::{
    ConnId, SeededEntropy, ServerConfig, ServerTransmit, StageServer, StationCredential,
};

pub struct Forwarding {
    pub server: StageServer,
    pub speaker: SocketAddr,
    speaker_sealer: Sealer,
    speaker_ssrc: u32,
}

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 20_000 + i))
}

impl Forwarding {
    pub fn new(listeners: u16, now: Instant) -> Forwarding {
        let mut cfg = ServerConfig::new("127.0.0.1", 50000);
        cfg.stages.push("hall".into());
        let ids: Vec<(String, Role)> = std::iter::once(("spk".to_string(), Role::Moderator))
            .chain((0..listeners).map(|i| (format!("l-{i}"), Role::Audience)))
            .collect();
        for (id, role) in &ids {
            cfg.stations.insert(
                id.clone(),
                StationCredential {
                    token: format!("token-{id}"),
                    role: *role,
                },
            );
        }
        let mut server = StageServer::new(cfg, Box::new(SeededEntropy::new(5)));
        let mut speaker = None;
        for (i, (id, _)) in ids.iter().enumerate() {
            let conn = ConnId(i as u64 + 1);
            server.handle_open(now, conn);
            server.handle_message(
                now,
                conn,
                ClientMsg::Identify {
                    v: 1,
                    station_id: id.clone(),
                    token: format!("token-{id}"),
                    stage: "hall".into(),
                    modes: vec!["chacha20_poly1305_rtpsize".into()],
                    audio_formats: vec!["red".into()],
                },
            );
            let mut media = None;
            while let Some(t) = server.poll_transmit() {
                if let ServerTransmit::Text {
                    conn: c,
                    msg: ServerMsg::Ready { media: m, .. },
                } = t
                    && c == conn
                {
                    media = Some(m);
                }
            }
            let media = media.expect("ready");
            let mut sealer = Sealer::new(&MediaKey::from_hex(&media.station_key).unwrap());
            let mut out = [0u8; MAX_DATAGRAM];
            let h = RtpHeader::new(PT_KEEPALIVE, 0, 0, media.ssrc, false);
            let n = sealer.seal(&h, &[], &mut out).unwrap();
            let from = addr(i as u16);
            server.handle_datagram(now, from, &mut out[..n]);
            if i == 0 {
                speaker = Some((sealer, media.ssrc));
            }
        }
        while server.poll_datagram().is_some() {}
        let (speaker_sealer, speaker_ssrc) = speaker.unwrap();
        Forwarding {
            server,
            speaker: addr(0),
            speaker_sealer,
            speaker_ssrc,
        }
    }

    /// `count` of the speaker's Opus packets (80-byte frames), sealed in order.
    pub fn packets(&mut self, count: u16) -> Vec<Vec<u8>> {
        (0..count)
            .map(|seq| {
                let mut out = [0u8; MAX_DATAGRAM];
                let h =
                    RtpHeader::new(PT_OPUS, seq, u32::from(seq) * 960, self.speaker_ssrc, false);
                let n = self.speaker_sealer.seal(&h, &[0x5a; 80], &mut out).unwrap();
                out[..n].to_vec()
            })
            .collect()
    }

    /// Forwards one packet and sends nothing (the bytes are looked at, not copied); returns the
    /// copies the server sealed.
    pub fn forward(&mut self, now: Instant, packet: &mut [u8]) -> usize {
        self.server.handle_datagram(now, self.speaker, packet);
        let mut copies = 0;
        while let Some((_, bytes)) = self.server.poll_datagram() {
            copies += usize::from(!bytes.is_empty());
        }
        copies
    }
}
