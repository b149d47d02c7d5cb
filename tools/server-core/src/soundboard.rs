//! The soundboard's playback, sans-IO: a clip (20 ms Opus frames, prepared by the plumbing)
//! played into a stage as its own source — one SSRC per stage, not a member — one frame per
//! 20 ms from the core's timer, through the same delivery as a speaker's audio (stations
//! sealed, browsers on a line of their own). Everyone on the stage hears it; a priority
//! speaker ducks it like anyone else. Starting a clip while one plays replaces it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use stagebox_proto::PT_OPUS;
use stagebox_proto::rtp::RtpHeader;

use crate::admin::AdminError;
use crate::media::{Outgoing, deliver};
use crate::server::StageServer;

/// One frame of a clip.
pub const CLIP_FRAME: Duration = Duration::from_millis(20);
/// Its RTP time, at 48 kHz.
const CLIP_FRAME_TICKS: u32 = 960;

/// A stage's soundboard source.
#[derive(Debug)]
pub(crate) struct ClipPlayer {
    pub(crate) ssrc: u32,
    /// The clip playing, its name, the next frame and when frame 0 was due.
    playing: Option<Playing>,
    /// The RTP time of the next frame; a new clip goes on from here (after the gap in time).
    next_timestamp: u32,
    /// When the last frame was due (for that gap).
    last_frame_at: Option<Instant>,
}

#[derive(Debug)]
struct Playing {
    name: String,
    frames: Arc<[Arc<[u8]>]>,
    next: usize,
    started: Instant,
}

impl ClipPlayer {
    fn due(&self) -> Option<Instant> {
        let p = self.playing.as_ref()?;
        Some(p.started + CLIP_FRAME * u32::try_from(p.next).unwrap_or(u32::MAX))
    }
}

impl StageServer {
    /// Plays `frames` (20 ms Opus frames, 48 kHz) into `stage` from `now`, under `name`.
    pub fn play_clip(
        &mut self,
        now: Instant,
        stage: &str,
        name: &str,
        frames: Arc<[Arc<[u8]>]>,
    ) -> Result<(), AdminError> {
        if !self.stages.contains_key(stage) {
            return Err(AdminError::NoStage(stage.into()));
        }
        if !self.clip_players.contains_key(stage) {
            let ssrc = self.random_ssrc();
            self.clip_players.insert(
                stage.to_string(),
                ClipPlayer {
                    ssrc,
                    playing: None,
                    next_timestamp: 0,
                    last_frame_at: None,
                },
            );
        }
        let Some(player) = self.clip_players.get_mut(stage) else {
            return Err(AdminError::NoStage(stage.into()));
        };
        // The timeline goes on across clips: the gap since the last frame, in frames.
        if let Some(last) = player.last_frame_at {
            let gap = now.saturating_duration_since(last).as_millis() / CLIP_FRAME.as_millis();
            let gap = u32::try_from(gap).unwrap_or(u32::MAX).max(1);
            player.next_timestamp = player
                .next_timestamp
                .wrapping_add(CLIP_FRAME_TICKS.wrapping_mul(gap - 1));
        }
        player.playing = Some(Playing {
            name: name.to_string(),
            frames,
            next: 0,
            started: now,
        });
        Ok(())
    }

    /// Stops what the stage's soundboard plays.
    pub fn stop_clip(&mut self, stage: &str) -> Result<(), AdminError> {
        if !self.stages.contains_key(stage) {
            return Err(AdminError::NoStage(stage.into()));
        }
        if let Some(p) = self.clip_players.get_mut(stage) {
            p.playing = None;
        }
        Ok(())
    }

    /// The clip `stage` plays now, and how far it is (seconds).
    pub fn clip_playing(&self, stage: &str) -> Option<(String, f64)> {
        let p = self.clip_players.get(stage)?.playing.as_ref()?;
        Some((p.name.clone(), p.next as f64 * CLIP_FRAME.as_secs_f64()))
    }

    /// When the next clip frame is due.
    pub(crate) fn soundboard_deadline(&self) -> Option<Instant> {
        self.clip_players.values().filter_map(ClipPlayer::due).min()
    }

    /// Sends every clip frame due by `now`.
    pub(crate) fn drive_soundboard(&mut self, now: Instant) {
        let StageServer {
            clip_players,
            stages,
            sessions,
            outbox,
            stats,
            ..
        } = self;
        for (stage_id, player) in clip_players.iter_mut() {
            let Some(stage) = stages.get(stage_id) else {
                continue;
            };
            while let Some(due) = player.due().filter(|d| *d <= now) {
                let Some(playing) = player.playing.as_mut() else {
                    break;
                };
                let Some(frame) = playing.frames.get(playing.next).cloned() else {
                    player.playing = None;
                    break;
                };
                let header = RtpHeader::new(
                    PT_OPUS,
                    0,
                    player.next_timestamp,
                    player.ssrc,
                    playing.next == 0,
                );
                playing.next += 1;
                player.next_timestamp = player.next_timestamp.wrapping_add(CLIP_FRAME_TICKS);
                player.last_frame_at = Some(due);
                let packet = Outgoing {
                    header: &header,
                    payload: &frame,
                    primary: &frame,
                };
                let sent = deliver(now, stage, sessions, outbox, None, &packet);
                stats.media_forwarded += sent as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use stagebox_proto::media::{MediaKey, Opener, Sealer};
    use stagebox_proto::rtp::RtpHeader;
    use stagebox_proto::signal::{Role, ServerMsg};
    use stagebox_proto::{PT_KEEPALIVE, PT_OPUS};

    use super::CLIP_FRAME;
    use crate::{SeededEntropy, ServerConfig, ServerTransmit, StageServer, StationCredential};

    #[allow(clippy::disallowed_methods)]
    fn start() -> Instant {
        Instant::now()
    }

    /// A station on stage "hall", its media address latched: its opener.
    fn station(s: &mut StageServer, t: Instant, conn: u64, id: &str, port: u16) -> Opener {
        crate::overview::tests::station(s, t, conn, id);
        let mut media = None;
        while let Some(x) = s.poll_transmit() {
            if let ServerTransmit::Text {
                msg: ServerMsg::Ready { media: m, .. },
                ..
            } = x
            {
                media = Some(m);
            }
        }
        let media = media.unwrap();
        let mut sealer = Sealer::new(&MediaKey::from_hex(&media.station_key).unwrap());
        let mut pkt = vec![0u8; 100];
        let h = RtpHeader::new(PT_KEEPALIVE, 0, 0, media.ssrc, false);
        let n = sealer.seal(&h, &[], &mut pkt).unwrap();
        pkt.truncate(n);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        s.handle_datagram(t, addr, &mut pkt);
        Opener::new(&MediaKey::from_hex(&media.server_key).unwrap())
    }

    fn server() -> StageServer {
        let mut cfg = ServerConfig::new("127.0.0.1", 50000);
        cfg.stages.push("hall".into());
        for id in ["a", "b"] {
            cfg.stations.insert(
                id.into(),
                StationCredential {
                    token: format!("token-{id}"),
                    role: Role::Audience,
                },
            );
        }
        StageServer::new(cfg, Box::new(SeededEntropy::new(5)))
    }

    /// (receiver port, sequence, timestamp, marker, first payload byte) of what went out.
    fn sent(s: &mut StageServer, openers: &mut [(u16, Opener)]) -> Vec<(u16, u16, u32, bool, u8)> {
        let mut out = Vec::new();
        while let Some((to, d)) = s.poll_datagram() {
            let mut d = d.to_vec();
            let (port, opener) = openers.iter_mut().find(|(p, _)| *p == to.port()).unwrap();
            let o = opener.open(&mut d).unwrap();
            assert_eq!(o.header.payload_type, PT_OPUS);
            out.push((
                *port,
                o.header.sequence,
                o.header.timestamp,
                o.header.marker,
                d[o.payload][0],
            ));
        }
        out
    }

    #[test]
    fn a_clip_plays_one_frame_every_20_ms_to_everyone_on_the_stage() {
        let mut s = server();
        let t = start();
        let mut openers = vec![
            (4001, station(&mut s, t, 1, "a", 4001)),
            (4002, station(&mut s, t, 2, "b", 4002)),
        ];
        let frames: Arc<[Arc<[u8]>]> = (0..5u8).map(|i| Arc::from(vec![i, 0xfc])).collect();
        assert!(s.play_clip(t, "nowhere", "x", frames.clone()).is_err());
        s.play_clip(t, "hall", "Applause", frames.clone()).unwrap();
        assert_eq!(s.poll_timeout(), Some(t), "the first frame is due at once");

        let mut got = Vec::new();
        let mut now = t;
        for _ in 0..10 {
            s.handle_timeout(now);
            got.extend(sent(&mut s, &mut openers));
            now += CLIP_FRAME;
        }
        let to_a: Vec<_> = got.iter().filter(|g| g.0 == 4001).collect();
        assert_eq!(to_a.len(), 5, "each frame once");
        for (i, g) in to_a.iter().enumerate() {
            assert_eq!(
                (g.1, g.2, g.3, g.4),
                (i as u16, 960 * i as u32, i == 0, i as u8)
            );
        }
        assert_eq!(got.len(), 10, "and to b");
        assert_eq!(s.clip_playing("hall"), None, "over after its last frame");

        // Played again a second later: the timeline goes on after the gap, marked.
        let later = now + Duration::from_secs(1);
        s.play_clip(later, "hall", "Applause", frames).unwrap();
        assert_eq!(s.clip_playing("hall").map(|p| p.0), Some("Applause".into()));
        s.handle_timeout(later);
        let first = sent(&mut s, &mut openers);
        let a = first.iter().find(|g| g.0 == 4001).unwrap();
        assert_eq!((a.1, a.3), (5, true), "numbers go on, a new spurt");
        assert!(
            a.2 > 960 * 4 + 960 * 40,
            "the gap shows in the timestamps: {}",
            a.2
        );
        s.stop_clip("hall").unwrap();
        s.handle_timeout(later + CLIP_FRAME * 3);
        assert!(sent(&mut s, &mut openers).is_empty(), "stopped");
    }
}
