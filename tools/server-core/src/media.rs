//! Selective forwarding: authenticate each datagram with its sender's key, latch the sender's
//! address, forward speakers' audio to every other member with its own key, counter and
//! consecutive sequence numbers. Everything else is dropped and counted.
//!
//! Redundant audio ([`PT_RED`]) is accepted from a station that negotiated it, checked, and
//! forwarded whole to receivers that negotiated it too; others get its primary frame as
//! plain Opus.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use stagebox_proto::media::{MediaError, peek};
use stagebox_proto::red::{Block, MAX_REDUNDANT_BLOCKS, PT_RED, RedPayload};
use stagebox_proto::rtp::RtpHeader;
use stagebox_proto::{PT_KEEPALIVE, PT_OPUS};

use crate::server::{MediaLink, StageServer};

/// What became of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaOutcome {
    /// Audio forwarded to this many receivers.
    Forwarded(usize),
    /// A keepalive: address learned or refreshed.
    Keepalive,
    DroppedMalformed,
    DroppedUnknownSsrc,
    DroppedUnauthenticated,
    DroppedReplayed,
    /// Authenticated, but its sender may not speak now (audience, muted) or its payload type
    /// is not audio.
    DroppedNotAllowed,
    /// A datagram of a browser's WebRTC peer (ICE, DTLS, SRTP, RTCP), carrying this many
    /// audio packets: forwarded to so many receivers in all, or not allowed.
    Browser {
        audio: u32,
        forwarded: usize,
        not_allowed: u32,
    },
}

impl StageServer {
    /// A datagram arrived from `from`. `packet` is decrypted in place.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        packet: &mut [u8],
    ) -> MediaOutcome {
        let outcome = self.route(now, from, packet);
        let s = &mut self.stats;
        match outcome {
            MediaOutcome::Forwarded(n) => {
                s.media_received += 1;
                s.media_forwarded += n as u64;
            }
            MediaOutcome::Keepalive => s.keepalives += 1,
            MediaOutcome::DroppedMalformed => s.dropped_malformed += 1,
            MediaOutcome::DroppedUnknownSsrc => s.dropped_unknown_ssrc += 1,
            MediaOutcome::DroppedUnauthenticated => s.dropped_unauthenticated += 1,
            MediaOutcome::DroppedReplayed => s.dropped_replayed += 1,
            MediaOutcome::DroppedNotAllowed => s.dropped_not_allowed += 1,
            MediaOutcome::Browser {
                audio,
                forwarded,
                not_allowed,
            } => {
                s.media_received += u64::from(audio - not_allowed);
                s.media_forwarded += forwarded as u64;
                s.dropped_not_allowed += u64::from(not_allowed);
            }
        }
        outcome
    }

    fn route(&mut self, now: Instant, from: SocketAddr, packet: &mut [u8]) -> MediaOutcome {
        if let Some(key) = self.browser_for(now, from, packet) {
            return self.route_browser(now, key, from, packet);
        }
        let Ok((header, counter)) = peek(packet) else {
            return MediaOutcome::DroppedMalformed;
        };
        let Some(&key) = self.by_ssrc.get(&header.ssrc) else {
            return MediaOutcome::DroppedUnknownSsrc;
        };
        let Some(MediaLink::Station(media)) = self.sessions.get_mut(&key).map(|s| &mut s.media)
        else {
            return MediaOutcome::DroppedUnknownSsrc;
        };
        let sender_red = media.red;
        let opened = match media.opener.open(packet) {
            Ok(o) => o,
            Err(MediaError::Replayed(_)) => return MediaOutcome::DroppedReplayed,
            Err(MediaError::Unauthenticated) => return MediaOutcome::DroppedUnauthenticated,
            Err(_) => return MediaOutcome::DroppedMalformed,
        };
        // Learn the address from the first authenticated packet; follow a change only on a
        // packet newer than all before it, so a replayed old packet cannot hijack the stream.
        let newest = media.highest_counter.is_none_or(|h| counter > h);
        if newest {
            media.highest_counter = Some(counter);
            media.addr = Some(from);
        }
        match header.payload_type {
            PT_KEEPALIVE => return MediaOutcome::Keepalive,
            PT_OPUS => {}
            PT_RED if sender_red => {}
            _ => return MediaOutcome::DroppedNotAllowed,
        }
        let payload = packet.get(opened.payload.clone()).unwrap_or(&[]);
        // What a receiver without redundancy gets: the primary frame alone.
        let primary = if header.payload_type == PT_RED {
            match RedPayload::parse(payload, header.timestamp) {
                Ok(red) if red.all_of_type(PT_OPUS) => payload.get(red.primary_range()),
                _ => return MediaOutcome::DroppedMalformed,
            }
        } else {
            Some(payload)
        }
        .unwrap_or(&[]);
        self.fan_out(now, key, &header, payload, primary)
    }

    /// The browser session a datagram belongs to: its latched address, else the browser
    /// whose ICE credentials a STUN request carries.
    fn browser_for(&self, now: Instant, from: SocketAddr, packet: &[u8]) -> Option<u64> {
        if let Some(key) = self.browser_addrs.get(&from) {
            return Some(*key);
        }
        // STUN (first byte 0–3) opens a browser's path; stations never send it.
        if packet.first().is_none_or(|b| *b > 3) {
            return None;
        }
        self.sessions.iter().find_map(|(key, s)| match &s.media {
            MediaLink::Browser(Some(link)) if link.accepts(now, from, packet) => Some(*key),
            _ => None,
        })
    }

    /// A datagram for a browser's WebRTC peer; the audio it carried goes to the stage.
    fn route_browser(
        &mut self,
        now: Instant,
        key: u64,
        from: SocketAddr,
        packet: &[u8],
    ) -> MediaOutcome {
        let StageServer {
            sessions,
            outbox,
            browser_addrs,
            ..
        } = self;
        let Some(MediaLink::Browser(Some(link))) = sessions.get_mut(&key).map(|s| &mut s.media)
        else {
            return MediaOutcome::DroppedUnknownSsrc;
        };
        let before = link.remote;
        link.handle_receive(now, from, packet, outbox);
        if let Some(remote) = link.remote {
            // A new path (an ICE restart after a network change): the old address is
            // forgotten.
            if let Some(old) = before.filter(|old| *old != remote) {
                browser_addrs.remove(&old);
            }
            browser_addrs.insert(remote, key);
        }
        let ssrc = self.sessions.get(&key).map_or(0, |s| s.ssrc);
        let (mut audio_in, mut forwarded, mut not_allowed) = (0, 0, 0);
        let mut voiced = false;
        while let Some(audio) = self.take_browser_audio(key) {
            audio_in += 1;
            let pt = if audio.redundant { PT_RED } else { PT_OPUS };
            let header = RtpHeader::new(pt, audio.seq, audio.timestamp, ssrc, audio.marker);
            let primary = audio.payload.get(audio.primary.clone()).unwrap_or_default();
            match self.fan_out(now, key, &header, &audio.payload, primary) {
                MediaOutcome::Forwarded(n) => {
                    forwarded += n;
                    voiced |= audio
                        .level_dbov
                        .is_some_and(|l| l >= crate::browser::SPEAKING_LEVEL_DBOV);
                }
                _ => not_allowed += 1,
            }
        }
        if voiced {
            if let Some(MediaLink::Browser(Some(link))) =
                self.sessions.get_mut(&key).map(|s| &mut s.media)
            {
                link.voice_heard_at = Some(now);
            }
            self.set_speaking(key, true);
        }
        MediaOutcome::Browser {
            audio: audio_in,
            forwarded,
            not_allowed,
        }
    }

    fn take_browser_audio(&mut self, key: u64) -> Option<crate::browser::BrowserAudio> {
        match &mut self.sessions.get_mut(&key)?.media {
            MediaLink::Browser(Some(link)) => link.take_audio(),
            _ => None,
        }
    }

    /// Forwards one speaker's packet (`payload` as sent, `primary` its Opus frame alone) to
    /// every other member of its stage, if the speaker may speak: sealed for stations, through
    /// their WebRTC peer for browsers.
    fn fan_out(
        &mut self,
        now: Instant,
        key: u64,
        header: &RtpHeader,
        payload: &[u8],
        primary: &[u8],
    ) -> MediaOutcome {
        // Borrow the parts apart: the stage and sender are read while receivers are sealed.
        let StageServer {
            sessions,
            stages,
            outbox,
            ..
        } = self;
        let Some(sender) = sessions.get(&key) else {
            return MediaOutcome::DroppedUnknownSsrc;
        };
        let Some(stage) = stages.get(&sender.stage) else {
            return MediaOutcome::DroppedNotAllowed;
        };
        let allowed = stage
            .members
            .get(&sender.station_id)
            .is_some_and(|m| m.role.can_speak() && !m.server_muted);
        if !allowed {
            return MediaOutcome::DroppedNotAllowed;
        }
        let packet = Outgoing {
            header,
            payload,
            primary,
        };
        MediaOutcome::Forwarded(deliver(now, stage, sessions, outbox, Some(key), &packet))
    }
}

/// One packet on its way to a stage's members.
pub(crate) struct Outgoing<'a> {
    pub header: &'a RtpHeader,
    /// As sent (redundant audio for receivers that negotiated it).
    pub payload: &'a [u8],
    /// The Opus frame alone.
    pub primary: &'a [u8],
}

/// Sends `packet` to every member of `stage` but the session `skip` (a sender does not hear
/// itself): sealed for stations, through their WebRTC peer for browsers. How many got it.
pub(crate) fn deliver(
    now: Instant,
    stage: &crate::server::StageRec,
    sessions: &mut std::collections::BTreeMap<u64, crate::server::SessionRec>,
    outbox: &mut crate::outbox::Outbox,
    skip: Option<u64>,
    packet: &Outgoing<'_>,
) -> usize {
    let header = packet.header;
    // Browsers take the frame as shared bytes: made once per packet, when one listens; and
    // the copies of earlier frames the packet carried, for those that take redundant audio.
    let mut shared: Option<Arc<[u8]>> = None;
    let mut earlier = [Block {
        payload_type: PT_OPUS,
        timestamp: 0,
        payload: &[],
    }; MAX_REDUNDANT_BLOCKS];
    let mut earlier_count = 0;
    if header.payload_type == PT_RED
        && let Ok(red) = RedPayload::parse(packet.payload, header.timestamp)
    {
        for (slot, block) in earlier.iter_mut().zip(red.redundant()) {
            *slot = block;
            earlier_count += 1;
        }
    }
    let mut forwarded = 0;
    for member in stage.members.values() {
        if Some(member.session) == skip {
            continue;
        }
        let Some(receiver) = sessions.get_mut(&member.session) else {
            continue;
        };
        match &mut receiver.media {
            MediaLink::Station(rm) => {
                let Some(addr) = rm.addr else {
                    continue;
                };
                let seq = rm.out_seq.entry(header.ssrc).or_insert(0);
                let (pt, body) = if rm.red {
                    (header.payload_type, packet.payload)
                } else {
                    (PT_OPUS, packet.primary)
                };
                let out_header =
                    RtpHeader::new(pt, *seq, header.timestamp, header.ssrc, header.marker);
                // A receiver whose counter is used up gets nothing more; it must
                // re-identify.
                let mut sealed = false;
                outbox.push(addr, |buf| {
                    let n = rm.sealer.seal(&out_header, body, buf).ok();
                    sealed = n.is_some();
                    n
                });
                if sealed {
                    *seq = seq.wrapping_add(1);
                    forwarded += 1;
                }
            }
            MediaLink::Browser(Some(link)) => {
                let frame = shared.get_or_insert_with(|| Arc::from(packet.primary));
                if link.send_audio(
                    now,
                    header.ssrc,
                    header.timestamp,
                    header.marker,
                    frame,
                    &earlier[..earlier_count],
                    outbox,
                ) {
                    forwarded += 1;
                }
            }
            MediaLink::Browser(None) => {}
        }
    }
    forwarded
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::time::Instant;

    use stagebox_proto::media::{MediaKey, Opener, Sealer};
    use stagebox_proto::rtp::RtpHeader;
    use stagebox_proto::signal::{ClientMsg, MediaParams, Role, ServerMsg};
    use stagebox_proto::{PT_KEEPALIVE, PT_OPUS};

    use super::MediaOutcome;
    use crate::{
        AdminCmd, ConnId, SeededEntropy, ServerConfig, ServerTransmit, StageServer,
        StationCredential,
    };

    struct Peer {
        sealer: Sealer,
        opener: Opener,
        ssrc: u32,
        addr: SocketAddr,
    }

    fn server() -> StageServer {
        let mut cfg = ServerConfig::new("127.0.0.1", 50000);
        cfg.stages.push("s".into());
        for (id, role) in [
            ("mod", Role::Moderator),
            ("a1", Role::Audience),
            ("a2", Role::Audience),
        ] {
            cfg.stations.insert(
                id.into(),
                StationCredential {
                    token: format!("t-{id}"),
                    role,
                },
            );
        }
        StageServer::new(cfg, Box::new(SeededEntropy::new(9)))
    }

    #[allow(clippy::disallowed_methods)]
    fn now() -> Instant {
        Instant::now()
    }

    fn join(server: &mut StageServer, conn: u64, id: &str, port: u16) -> Peer {
        join_with(server, conn, id, port, &["red"])
    }

    fn join_with(
        server: &mut StageServer,
        conn: u64,
        id: &str,
        port: u16,
        audio_formats: &[&str],
    ) -> Peer {
        let t = now();
        server.handle_open(t, ConnId(conn));
        server.handle_message(
            t,
            ConnId(conn),
            ClientMsg::Identify {
                v: 1,
                station_id: id.into(),
                token: format!("t-{id}"),
                stage: "s".into(),
                modes: vec!["chacha20_poly1305_rtpsize".into()],
                audio_formats: audio_formats.iter().map(|f| f.to_string()).collect(),
            },
        );
        let mut media: Option<MediaParams> = None;
        while let Some(t) = server.poll_transmit() {
            if let ServerTransmit::Text {
                msg: ServerMsg::Ready { media: m, .. },
                conn: c,
            } = t
                && c == ConnId(conn)
            {
                media = Some(m);
            }
        }
        let m = media.expect("ready");
        assert_eq!(m.red, audio_formats.contains(&"red"), "negotiated as asked");
        Peer {
            sealer: Sealer::new(&MediaKey::from_hex(&m.station_key).unwrap()),
            opener: Opener::new(&MediaKey::from_hex(&m.server_key).unwrap()),
            ssrc: m.ssrc,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn packet(p: &mut Peer, pt: u8, seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 1500];
        let h = RtpHeader::new(pt, seq, u32::from(seq) * 960, p.ssrc, seq == 10);
        let n = p.sealer.seal(&h, payload, &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn send(server: &mut StageServer, from: SocketAddr, mut pkt: Vec<u8>) -> MediaOutcome {
        server.handle_datagram(now(), from, &mut pkt)
    }

    /// (sequence, timestamp, ssrc, marker, payload) of one received packet.
    type Received = (u16, u32, u32, bool, Vec<u8>);

    /// Opens everything the server sent, per receiver port.
    fn received(server: &mut StageServer, peers: &mut [&mut Peer]) -> BTreeMap<u16, Vec<Received>> {
        let mut got: BTreeMap<u16, Vec<_>> = BTreeMap::new();
        while let Some((addr, bytes)) = server.poll_datagram() {
            let mut bytes = bytes.to_vec();
            let peer = peers
                .iter_mut()
                .find(|p| p.addr == addr)
                .expect("sent to a known peer");
            let o = peer.opener.open(&mut bytes).expect("receiver can open it");
            got.entry(addr.port()).or_default().push((
                o.header.sequence,
                o.header.timestamp,
                o.header.ssrc,
                o.header.marker,
                bytes[o.payload].to_vec(),
            ));
        }
        got
    }

    #[test]
    fn forwards_speaker_audio_with_consecutive_sequence_numbers_per_receiver() {
        let mut s = server();
        let mut m = join(&mut s, 1, "mod", 4001);
        let mut a1 = join(&mut s, 2, "a1", 4002);
        let mut a2 = join(&mut s, 3, "a2", 4003);
        for p in [&mut a1, &mut a2] {
            let k = packet(p, PT_KEEPALIVE, 0, b"");
            assert_eq!(send(&mut s, p.addr, k), MediaOutcome::Keepalive);
        }
        // Sequence 12 and 13 never arrive (silence or loss before the server).
        for seq in [10u16, 11, 14, 15] {
            let pkt = packet(&mut m, PT_OPUS, seq, &[seq as u8; 40]);
            assert_eq!(send(&mut s, m.addr, pkt), MediaOutcome::Forwarded(2));
        }
        let got = received(&mut s, &mut [&mut m, &mut a1, &mut a2]);
        assert_eq!(got.len(), 2, "the sender does not hear itself");
        for port in [4002, 4003] {
            let seqs: Vec<u16> = got[&port].iter().map(|r| r.0).collect();
            assert_eq!(seqs, vec![0, 1, 2, 3], "rewritten without gaps");
            let ts: Vec<u32> = got[&port].iter().map(|r| r.1).collect();
            assert_eq!(ts, vec![9600, 10560, 13440, 14400], "timestamps untouched");
            assert!(got[&port].iter().all(|r| r.2 == m.ssrc));
            assert!(got[&port][0].3 && !got[&port][1].3, "marker kept");
            assert_eq!(got[&port][2].4, vec![14u8; 40]);
        }
        assert_eq!(s.stats().media_forwarded, 8);
    }

    #[test]
    fn redundant_audio_goes_whole_to_who_negotiated_it_and_as_opus_to_others() {
        use stagebox_proto::red::{Block, PT_RED, RedPayload, write};
        let mut s = server();
        let mut m = join(&mut s, 1, "mod", 4001);
        let mut a1 = join(&mut s, 2, "a1", 4002);
        let mut a2 = join_with(&mut s, 3, "a2", 4003, &[]);
        for p in [&mut a1, &mut a2] {
            let k = packet(p, PT_KEEPALIVE, 0, b"");
            send(&mut s, p.addr, k);
        }
        let block = |ts, payload| Block {
            payload_type: PT_OPUS,
            timestamp: ts,
            payload,
        };
        let mut red = [0u8; 64];
        // `packet` stamps sequence 11 with timestamp 11 × 960.
        let n = write(&block(10_560, b"now"), &[block(9_600, b"before")], &mut red).unwrap();
        let pkt = packet(&mut m, PT_RED, 11, &red[..n]);
        assert_eq!(send(&mut s, m.addr, pkt), MediaOutcome::Forwarded(2));
        let mut sealed = Vec::new();
        while let Some((addr, bytes)) = s.poll_datagram() {
            sealed.push((addr, bytes.to_vec()));
        }
        for (addr, mut bytes) in sealed {
            let peer = if addr == a1.addr { &mut a1 } else { &mut a2 };
            let o = peer.opener.open(&mut bytes).unwrap();
            let body = &bytes[o.payload];
            if addr == a1.addr {
                assert_eq!(o.header.payload_type, PT_RED);
                let parsed = RedPayload::parse(body, o.header.timestamp).unwrap();
                assert_eq!(parsed.find(9_600).unwrap().payload, b"before");
                assert_eq!(parsed.primary().payload, b"now");
            } else {
                assert_eq!((o.header.payload_type, body), (PT_OPUS, &b"now"[..]));
            }
        }
        // Malformed redundancy, redundancy of another payload type, and redundancy from a
        // station that did not negotiate it are not forwarded.
        let pkt = packet(&mut m, PT_RED, 12, &[0x80 | 120, 15, 0]);
        assert_eq!(send(&mut s, m.addr, pkt), MediaOutcome::DroppedMalformed);
        let mut other = [0u8; 64];
        let k = write(
            &Block {
                payload_type: 99,
                ..block(12_480, b"x")
            },
            &[],
            &mut other,
        )
        .unwrap();
        let pkt = packet(&mut m, PT_RED, 13, &other[..k]);
        assert_eq!(send(&mut s, m.addr, pkt), MediaOutcome::DroppedMalformed);
        // a2 becomes a speaker: its Opus is forwarded, its unnegotiated redundancy is not.
        s.handle_admin(
            now(),
            AdminCmd::Invite {
                stage: "s".into(),
                station: "a2".into(),
            },
        )
        .unwrap();
        s.handle_message(now(), ConnId(3), ClientMsg::InviteResponse { accept: true });
        let pkt = packet(&mut a2, PT_OPUS, 1, b"opus");
        assert_eq!(send(&mut s, a2.addr, pkt), MediaOutcome::Forwarded(2));
        let pkt = packet(&mut a2, PT_RED, 2, &red[..n]);
        assert_eq!(send(&mut s, a2.addr, pkt), MediaOutcome::DroppedNotAllowed);
    }

    #[test]
    fn drops_and_counts_what_must_not_pass() {
        let mut s = server();
        let mut m = join(&mut s, 1, "mod", 4001);
        let mut a1 = join(&mut s, 2, "a1", 4002);
        let k = packet(&mut a1, PT_KEEPALIVE, 0, b"");
        send(&mut s, a1.addr, k);

        // Audience audio is not forwarded.
        let pkt = packet(&mut a1, PT_OPUS, 1, b"x");
        assert_eq!(send(&mut s, a1.addr, pkt), MediaOutcome::DroppedNotAllowed);
        // Replay.
        let pkt = packet(&mut m, PT_OPUS, 1, b"x");
        assert_eq!(
            send(&mut s, m.addr, pkt.clone()),
            MediaOutcome::Forwarded(1)
        );
        assert_eq!(send(&mut s, m.addr, pkt), MediaOutcome::DroppedReplayed);
        // Wrong key, same SSRC.
        let mut forger = Peer {
            sealer: Sealer::starting_at(&MediaKey([3; 32]), 1000),
            opener: Opener::new(&MediaKey([3; 32])),
            ssrc: m.ssrc,
            addr: SocketAddr::from(([127, 0, 0, 9], 9999)),
        };
        let pkt = packet(&mut forger, PT_OPUS, 2, b"evil");
        assert_eq!(
            send(&mut s, forger.addr, pkt),
            MediaOutcome::DroppedUnauthenticated
        );
        // Unknown SSRC, garbage, truncated.
        forger.ssrc = 12345;
        let pkt = packet(&mut forger, PT_OPUS, 2, b"evil");
        assert_eq!(
            send(&mut s, forger.addr, pkt),
            MediaOutcome::DroppedUnknownSsrc
        );
        assert_eq!(
            send(&mut s, forger.addr, vec![0xff; 50]),
            MediaOutcome::DroppedMalformed
        );
        assert_eq!(
            send(&mut s, forger.addr, vec![0x80; 20]),
            MediaOutcome::DroppedMalformed
        );
        // Muted by a moderator.
        s.handle_admin(
            now(),
            AdminCmd::Mute {
                stage: "s".into(),
                station: "mod".into(),
                muted: true,
            },
        )
        .unwrap();
        let pkt = packet(&mut m, PT_OPUS, 3, b"x");
        assert_eq!(send(&mut s, m.addr, pkt), MediaOutcome::DroppedNotAllowed);

        let st = s.stats();
        assert_eq!(
            (
                st.dropped_not_allowed,
                st.dropped_replayed,
                st.dropped_unauthenticated,
                st.dropped_unknown_ssrc,
                st.dropped_malformed
            ),
            (2, 1, 1, 1, 2)
        );
    }

    #[test]
    fn address_follows_only_newer_authenticated_packets() {
        let mut s = server();
        let mut m = join(&mut s, 1, "mod", 4001);
        let mut a1 = join(&mut s, 2, "a1", 4002);
        let old = packet(&mut a1, PT_KEEPALIVE, 0, b"");
        let new = packet(&mut a1, PT_KEEPALIVE, 1, b"");
        let moved = SocketAddr::from(([127, 0, 0, 1], 5002));
        // The newer packet arrives from a new port (NAT rebinding): follow it.
        assert_eq!(send(&mut s, moved, new), MediaOutcome::Keepalive);
        // An older packet from the old port must not pull the address back.
        assert_eq!(send(&mut s, a1.addr, old), MediaOutcome::Keepalive);
        let pkt = packet(&mut m, PT_OPUS, 1, b"x");
        send(&mut s, m.addr, pkt);
        let (addr, _) = s.poll_datagram().unwrap();
        assert_eq!(addr, moved);
    }
}
