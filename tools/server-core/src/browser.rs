//! Browser participants' media: one standard WebRTC peer per browser (str0m's `Rtc`: ICE-lite
//! with host candidates, DTLS-SRTP, Opus), in RTP mode so the forwarding unit hands it the
//! speakers' Opus packets as they came, without decoding.
//!
//! A browser's offer carries one audio line it sends its microphone on (send-only or
//! send-receive from its side) and receive-only lines, one per speaker it can hear at once
//! (up to [`MAX_SPEAKER_SLOTS`]). Each speaker's stream is kept on one line (a "slot") with
//! that line's own SSRC and consecutive sequence numbers, so the browser's jitter buffer sees
//! one clean stream per speaker; a speaker who has been quiet longest gives up its slot when
//! every slot is taken.
//!
//! Redundant audio (RFC 2198, `audio/red`) is negotiated with browsers that offer it
//! (Chromium does): each packet to them carries the speaker's frame before it as well (the
//! speaker's own earlier copies when it sent redundant audio, else the frame this line last
//! carried), so a packet lost on the way to the browser is played from the next one. Browsers
//! that do not offer it get Opus alone. What a browser sends as redundant audio reaches the
//! stage as it came, its blocks numbered as the stage numbers Opus.
//!
//! Like the rest of the core this has no clock and no socket: datagrams and time come in
//! through [`BrowserLink::handle_receive`] and [`BrowserLink::handle_timeout`], datagrams to
//! send go into the server's outbox, and the audio the browser sent waits in
//! [`BrowserLink::take_audio`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use stagebox_proto::PT_OPUS;
use stagebox_proto::red::{self, Block, MAX_REDUNDANT_BLOCKS, RedPayload};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::outbox::Outbox;

/// Most speakers one browser hears at once (receive-only audio lines taken from its offer).
pub const MAX_SPEAKER_SLOTS: usize = 8;

/// Audio packets from one browser waiting for the forwarding unit (taken after every input).
const MAX_WAITING_AUDIO: usize = 64;

/// A browser's packet at least this loud (RFC 6464 level, dBov) is voice: Chromium's levels
/// are the packet's RMS, about -20 to -35 dBov for speech at a normal level and below -60 for a
/// quiet room.
pub const SPEAKING_LEVEL_DBOV: i8 = -45;
/// A browser stops speaking this long after its last voiced packet (pauses between words
/// do not flicker the indicator).
pub const SPEAKING_HANGOVER: std::time::Duration = std::time::Duration::from_millis(400);

/// Longest SDP offer read (a browser's audio-only offer is 2–6 kB).
pub const MAX_OFFER_LEN: usize = 32 * 1024;

/// Why a browser's offer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrowserError {
    #[error("the offer is longer than {MAX_OFFER_LEN} bytes")]
    OfferTooLong,
    #[error("the offer is not SDP this server reads: {0}")]
    BadOffer(String),
    #[error("the offer has no Opus audio line the server can send on")]
    NoAudio,
    #[error("this server has no address for browsers' media")]
    NoAddress,
}

/// One speaker's stream towards the browser.
struct Slot {
    mid: Mid,
    pt: Pt,
    /// The line's redundant-audio payload type, when the browser offered it.
    red: Option<Pt>,
    /// The speaker's RTP time and Opus frame this line carried last (its redundant block).
    previous: Option<(u32, Arc<[u8]>)>,
    /// The speaker (its SSRC on the stage) whose audio this line carries now.
    source: Option<u32>,
    /// When that speaker last sent, to give up the slot of the longest quiet.
    last_used: Option<Instant>,
    next_seq: u64,
    /// The source's RTP time of the last packet and what it became here: a new speaker
    /// continues this line's timeline instead of jumping to its own.
    time_base: Option<(u32, u32)>,
    last_out_time: u32,
}

/// An Opus packet a browser sent (its own timeline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BrowserAudio {
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    /// As sent: Opus, or redundant audio whose blocks are typed [`PT_OPUS`].
    pub payload: Arc<[u8]>,
    pub redundant: bool,
    /// Where the current Opus frame lies in `payload`.
    pub primary: std::ops::Range<usize>,
    /// The packet's audio level (RFC 6464), dBov (0 loudest, -127 silence), if it had one.
    pub level_dbov: Option<i8>,
}

/// Counters for one browser's media.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BrowserStats {
    pub datagrams_in: u64,
    pub audio_in: u64,
    pub audio_out: u64,
    /// Speakers not forwarded because every slot carried someone who spoke more recently.
    pub no_free_slot: u64,
    /// Audio from the browser dropped because the forwarding unit had not taken the last.
    pub audio_overflow: u64,
    /// Datagrams str0m refused (malformed, wrong state), and redundant audio from the
    /// browser that did not parse.
    pub rejected: u64,
    /// Packets to the browser that carried an earlier frame as well (redundant audio).
    pub redundant_out: u64,
}

/// One browser's WebRTC peer.
pub(crate) struct BrowserLink {
    rtc: Rtc,
    /// Local addresses browsers may reach (the host candidates).
    local: Vec<SocketAddr>,
    /// The line the browser sends its microphone on, and its Opus and redundant-audio payload
    /// types.
    mic: Option<(Mid, Pt, Option<Pt>)>,
    slots: Vec<Slot>,
    audio: VecDeque<BrowserAudio>,
    next_timeout: Option<Instant>,
    /// The browser's address once ICE has chosen one (for the fast path of the demultiplexer).
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) connected: bool,
    /// ICE gave up or DTLS failed: the link is dead.
    pub(crate) failed: bool,
    pub(crate) stats: BrowserStats,
    /// When the browser last sent a voiced packet that was forwarded (see
    /// [`SPEAKING_LEVEL_DBOV`]); cleared once its speaking has ended.
    pub(crate) voice_heard_at: Option<Instant>,
}

impl BrowserLink {
    /// Accepts a browser's SDP offer: its answer and the link. `local` are the addresses the
    /// server's media socket is reachable on (host candidates).
    pub(crate) fn accept(
        now: Instant,
        offer: &str,
        local: &[SocketAddr],
    ) -> Result<(BrowserLink, String), BrowserError> {
        if offer.len() > MAX_OFFER_LEN {
            return Err(BrowserError::OfferTooLong);
        }
        if local.is_empty() {
            return Err(BrowserError::NoAddress);
        }
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| BrowserError::BadOffer(e.to_string()))?;
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, true)
            .build(now);
        for addr in local {
            let candidate =
                Candidate::host(*addr, "udp").map_err(|e| BrowserError::BadOffer(e.to_string()))?;
            rtc.add_local_candidate(candidate);
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| BrowserError::BadOffer(e.to_string()))?;
        let link = BrowserLink {
            rtc,
            local: local.to_vec(),
            mic: None,
            slots: Vec::new(),
            audio: VecDeque::new(),
            next_timeout: Some(now),
            remote: None,
            connected: false,
            failed: false,
            stats: BrowserStats::default(),
            voice_heard_at: None,
        };
        let answer = answer.to_sdp_string();
        // Lines the server answered with Opus (a refused line has port 0 and no codec).
        if !answer
            .lines()
            .any(|l| l.starts_with("a=rtpmap:") && l.contains(" opus/48000"))
        {
            return Err(BrowserError::NoAudio);
        }
        // str0m names the lines (MediaAdded) once the peer is connected; the slots are made
        // then.
        Ok((link, answer))
    }

    /// The browser's offer again, on this peer: an ICE restart after a network change (new
    /// ICE credentials; the DTLS keys and the lines stay). The answer.
    pub(crate) fn restart(&mut self, now: Instant, offer: &str) -> Result<String, BrowserError> {
        if offer.len() > MAX_OFFER_LEN {
            return Err(BrowserError::OfferTooLong);
        }
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| BrowserError::BadOffer(e.to_string()))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| BrowserError::BadOffer(e.to_string()))?;
        self.next_timeout = Some(now);
        Ok(answer.to_sdp_string())
    }

    /// A line's Opus payload type, and its redundant-audio one if the browser offered it.
    fn opus_pt(&self, mid: Mid) -> Option<(Pt, Option<Pt>)> {
        let media = self.rtc.media(mid)?;
        let config = self.rtc.codec_config();
        media.remote_pts().iter().find_map(|pt| {
            config
                .find(|p| p.pt() == *pt)
                .filter(|p| p.spec().codec == Codec::Opus)
                .map(|p| (*pt, p.red()))
        })
    }

    /// Whether this datagram belongs to this browser (its ICE credentials, or its address).
    pub(crate) fn accepts(&self, now: Instant, from: SocketAddr, packet: &[u8]) -> bool {
        self.receive(now, from, packet)
            .is_some_and(|input| self.rtc.accepts(&input))
    }

    fn receive<'a>(&self, now: Instant, from: SocketAddr, packet: &'a [u8]) -> Option<Input<'a>> {
        let local = self
            .local
            .iter()
            .find(|l| l.is_ipv4() == from.is_ipv4())
            .or(self.local.first())?;
        let receive = Receive::new(Protocol::Udp, from, *local, packet).ok()?;
        Some(Input::Receive(now, receive))
    }

    /// A datagram from the browser.
    pub(crate) fn handle_receive(
        &mut self,
        now: Instant,
        from: SocketAddr,
        packet: &[u8],
        outbox: &mut Outbox,
    ) {
        self.stats.datagrams_in += 1;
        let Some(input) = self.receive(now, from, packet) else {
            self.stats.rejected += 1;
            return;
        };
        if self.rtc.handle_input(input).is_err() {
            self.stats.rejected += 1;
        }
        self.drain(outbox);
    }

    /// When [`handle_timeout`](Self::handle_timeout) has work.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        let silence = self.voice_heard_at.map(|t| t + SPEAKING_HANGOVER);
        self.next_timeout.into_iter().chain(silence).min()
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant, outbox: &mut Outbox) {
        if self.next_timeout.is_some_and(|t| t <= now) {
            if self.rtc.handle_input(Input::Timeout(now)).is_err() {
                self.failed = true;
            }
            self.drain(outbox);
        }
    }

    /// Takes the browser's next audio packet.
    pub(crate) fn take_audio(&mut self) -> Option<BrowserAudio> {
        self.audio.pop_front()
    }

    /// Sends a speaker's Opus frame (`source` is its SSRC on the stage, `timestamp` its own
    /// RTP time; `earlier` the copies of its earlier frames its packet carried, oldest first).
    /// `false` when no slot was free for that speaker.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_audio(
        &mut self,
        now: Instant,
        source: u32,
        timestamp: u32,
        marker: bool,
        payload: &Arc<[u8]>,
        earlier: &[Block<'_>],
        outbox: &mut Outbox,
    ) -> bool {
        if !self.connected {
            return false;
        }
        let Some(index) = self.slot_for(source) else {
            self.stats.no_free_slot += 1;
            return false;
        };
        let Some(slot) = self.slots.get_mut(index) else {
            return false;
        };
        let changed = slot.source != Some(source);
        if changed {
            slot.source = Some(source);
            // Continue the line's timeline one frame after its last packet.
            slot.time_base = Some((timestamp, slot.last_out_time.wrapping_add(960)));
        }
        slot.last_used = Some(now);
        let (source_base, out_base) = slot.time_base.unwrap_or((timestamp, timestamp));
        let out_time = out_base.wrapping_add(timestamp.wrapping_sub(source_base));
        slot.last_out_time = out_time;
        let seq = SeqNo::from(slot.next_seq);
        slot.next_seq += 1;
        let previous = slot
            .previous
            .replace((timestamp, Arc::clone(payload)))
            .filter(|_| !changed);
        let (pt, body) = match slot.red {
            Some(red_pt) => {
                let body = with_earlier(
                    *slot.pt,
                    (timestamp, out_time),
                    payload,
                    earlier,
                    previous.as_ref(),
                );
                if body.len() > payload.len() + 1 {
                    self.stats.redundant_out += 1;
                }
                (red_pt, body)
            }
            None => (slot.pt, Arc::clone(payload)),
        };
        let mid = slot.mid;
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            return false;
        };
        // The speaker's SSRC on the stage rides as the packet's contributing source: the page
        // reads it (getContributingSources) to know whose voice each line carries now, for
        // per-speaker volume and ducking under the priority speaker.
        tx.write_rtp(
            RtpWrite::new(pt, seq, out_time, now, body)
                .marker(marker || changed)
                .csrc(&[source]),
        );
        self.stats.audio_out += 1;
        // str0m queues what is written and sends it when time moves: now, so forwarding
        // adds no wait.
        if self.rtc.handle_input(Input::Timeout(now)).is_err() {
            self.failed = true;
        }
        self.drain(outbox);
        true
    }

    /// The slot carrying `source`, else a free one, else the one quiet the longest (taken
    /// over only after a second of quiet: two speakers never alternate on one line).
    fn slot_for(&self, source: u32) -> Option<usize> {
        if let Some(i) = self.slots.iter().position(|s| s.source == Some(source)) {
            return Some(i);
        }
        if let Some(i) = self.slots.iter().position(|s| s.source.is_none()) {
            return Some(i);
        }
        let (i, quietest) = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s.last_used?)))
            .min_by_key(|(_, t)| *t)?;
        let newest = self.slots.iter().filter_map(|s| s.last_used).max()?;
        (newest.saturating_duration_since(quietest) >= std::time::Duration::from_secs(1))
            .then_some(i)
    }

    /// Frees the slot of a speaker who left the stage.
    pub(crate) fn forget_source(&mut self, source: u32) {
        for slot in self.slots.iter_mut().filter(|s| s.source == Some(source)) {
            slot.source = None;
            slot.last_used = None;
        }
    }

    /// Moves what str0m has to say into the outbox, the audio queue and the link's state.
    fn drain(&mut self, outbox: &mut Outbox) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    self.remote = Some(t.destination);
                    let bytes: &[u8] = &t.contents;
                    outbox.push(t.destination, |buf| {
                        let out = buf.get_mut(..bytes.len())?;
                        out.copy_from_slice(bytes);
                        Some(bytes.len())
                    });
                }
                Ok(Output::Event(event)) => self.handle_event(event),
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = Some(t);
                    return;
                }
                Err(_) => {
                    self.failed = true;
                    self.next_timeout = None;
                    return;
                }
            }
        }
    }

    /// A line of the offer, now negotiated: the microphone's, or a speaker slot.
    fn add_line(&mut self, mid: Mid, direction: Direction) {
        let Some((pt, red)) = self.opus_pt(mid) else {
            return;
        };
        match direction {
            Direction::RecvOnly | Direction::SendRecv if self.mic.is_none() => {
                self.mic = Some((mid, pt, red));
            }
            Direction::SendOnly if self.slots.len() < MAX_SPEAKER_SLOTS => {
                // str0m made the line's stream with the SSRC its answer announced (a browser
                // ties an unannounced SSRC to the line's track only sometimes); a line
                // without one is not used.
                let Some(ssrc) = self
                    .rtc
                    .direct_api()
                    .stream_tx_by_mid(mid, None)
                    .map(|tx| *tx.ssrc())
                else {
                    return;
                };
                self.slots.push(Slot {
                    mid,
                    pt,
                    red,
                    previous: None,
                    source: None,
                    last_used: None,
                    next_seq: u64::from(ssrc & 0x7fff),
                    time_base: None,
                    last_out_time: 0,
                });
            }
            _ => {}
        }
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::MediaAdded(m) if m.kind == MediaKind::Audio => self.add_line(m.mid, m.direction),
            Event::Connected => self.connected = true,
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.connected = false;
            }
            Event::Closed => {
                self.connected = false;
                self.failed = true;
            }
            Event::RtpPacket(p) => {
                let Some((_, opus, red)) = self.mic else {
                    return;
                };
                let pt = p.header.payload_type;
                let redundant = red == Some(pt);
                if pt != opus && !redundant {
                    return;
                }
                let (payload, primary) = if redundant {
                    // Numbered as the stage numbers Opus, for stations that take it whole.
                    let primary = RedPayload::parse(&p.payload, p.header.timestamp)
                        .ok()
                        .filter(|r| r.all_of_type(*opus))
                        .map(|r| r.primary_range());
                    let mut bytes = p.payload.to_vec();
                    match primary {
                        Some(range) if red::retype(&mut bytes, PT_OPUS).is_ok() => {
                            (Arc::from(bytes), range)
                        }
                        _ => {
                            self.stats.rejected += 1;
                            return;
                        }
                    }
                } else {
                    let len = p.payload.len();
                    (p.payload, 0..len)
                };
                self.stats.audio_in += 1;
                if self.audio.len() >= MAX_WAITING_AUDIO {
                    self.stats.audio_overflow += 1;
                    self.audio.pop_front();
                }
                self.audio.push_back(BrowserAudio {
                    seq: p.header.sequence_number,
                    timestamp: p.header.timestamp,
                    marker: p.header.marker,
                    payload,
                    redundant,
                    primary,
                    level_dbov: p.header.ext_vals.audio_level,
                });
            }
            _ => {}
        }
    }
}

/// A redundant payload for a browser: `frame` (at the speaker's RTP time `at.0`, the line's
/// `at.1`) after copies of the speaker's earlier frames (those its packet carried, else the
/// one this line carried last), every block typed `opus`. Frames too far back or too long
/// for a block are left out.
fn with_earlier<'a>(
    opus: u8,
    at: (u32, u32),
    frame: &[u8],
    earlier: &[Block<'a>],
    previous: Option<&'a (u32, Arc<[u8]>)>,
) -> Arc<[u8]> {
    let (source_time, line_time) = at;
    let on_line = |b: &Block<'a>| Block {
        payload_type: opus,
        timestamp: line_time.wrapping_sub(source_time.wrapping_sub(b.timestamp)),
        payload: b.payload,
    };
    let mut blocks = [Block {
        payload_type: opus,
        timestamp: 0,
        payload: &[],
    }; MAX_REDUNDANT_BLOCKS];
    let mut count = 0;
    let previous = previous.map(|(time, bytes)| Block {
        payload_type: opus,
        timestamp: *time,
        payload: bytes,
    });
    let source = if earlier.is_empty() {
        previous.as_slice()
    } else {
        earlier
    };
    for b in source.iter().map(on_line) {
        if count < blocks.len() && red::fits_as_redundant(&b, line_time) {
            blocks[count] = b;
            count += 1;
        }
    }
    let primary = Block {
        payload_type: opus,
        timestamp: line_time,
        payload: frame,
    };
    let blocks = &blocks[..count];
    let len = 1 + frame.len() + blocks.iter().map(|b| 4 + b.payload.len()).sum::<usize>();
    let mut out = vec![0u8; len];
    match red::write(&primary, blocks, &mut out) {
        Ok(n) => {
            out.truncate(n);
            out.into()
        }
        // Not reached (sized above, blocks checked): the frame alone, as a block.
        Err(_) => {
            let mut alone = vec![opus & 0x7f];
            alone.extend_from_slice(frame);
            alone.into()
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! A browser played by a second str0m peer (a full ICE agent, as a browser is) over an
    //! in-memory network, in virtual time.

    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use str0m::change::SdpAnswer;
    use str0m::media::{Direction, MediaKind};
    use str0m::net::{Protocol, Receive};
    use str0m::{Candidate, Event, Input, Output, Rtc};

    use str0m::rtp::{RtpWrite, SeqNo};

    use super::{Block, BrowserError, BrowserLink, RedPayload};
    use crate::outbox::Outbox;

    /// A browser: its peer, and what it received (payloads per line, in order).
    pub(crate) struct FakeBrowser {
        pub rtc: Rtc,
        pub addr: SocketAddr,
        pub received: Vec<(str0m::media::Mid, Vec<u8>, u16)>,
        pub mic: str0m::media::Mid,
    }

    impl FakeBrowser {
        /// A browser offering a microphone line and `listen_lines` receive-only lines, Opus
        /// without redundant audio.
        pub(crate) fn offer(
            now: Instant,
            addr: SocketAddr,
            listen_lines: usize,
        ) -> (Self, String, str0m::change::SdpPendingOffer) {
            Self::offer_with(now, addr, listen_lines, false)
        }

        /// The same, offering redundant audio (`audio/red`) too when `red`, as Chromium does.
        pub(crate) fn offer_with(
            now: Instant,
            addr: SocketAddr,
            listen_lines: usize,
            red: bool,
        ) -> (Self, String, str0m::change::SdpPendingOffer) {
            let mut rtc = Rtc::builder().enable_opus(true, red).build(now);
            rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
            let mut api = rtc.sdp_api();
            let mic = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
            for _ in 0..listen_lines {
                api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
            }
            let (offer, pending) = api.apply().unwrap();
            let browser = FakeBrowser {
                rtc,
                addr,
                received: Vec::new(),
                mic,
            };
            (browser, offer.to_sdp_string(), pending)
        }

        pub(crate) fn accept(&mut self, pending: str0m::change::SdpPendingOffer, answer: &str) {
            let answer = SdpAnswer::from_sdp_string(answer).unwrap();
            self.rtc.sdp_api().accept_answer(pending, answer).unwrap();
        }

        /// Datagrams the browser sends now (to `server`).
        pub(crate) fn poll(&mut self, now: Instant) -> Vec<Vec<u8>> {
            self.rtc.handle_input(Input::Timeout(now)).unwrap();
            let mut out = Vec::new();
            loop {
                match self.rtc.poll_output().unwrap() {
                    Output::Timeout(_) => return out,
                    Output::Transmit(t) => out.push(t.contents.to_vec()),
                    Output::Event(Event::MediaData(d)) => {
                        let seq = *d.seq_range.start();
                        self.received.push((d.mid, d.data.to_vec(), *seq as u16));
                    }
                    Output::Event(_) => {}
                }
            }
        }

        pub(crate) fn receive(&mut self, now: Instant, from: SocketAddr, packet: &[u8]) {
            let r = Receive::new(Protocol::Udp, from, self.addr, packet).unwrap();
            self.rtc.handle_input(Input::Receive(now, r)).unwrap();
        }
    }

    /// The browser sends `packet` on its microphone line, and the link takes it.
    fn mic_sends(
        browser: &mut FakeBrowser,
        link: &mut BrowserLink,
        now: Instant,
        packet: RtpWrite,
        outbox: &mut Outbox,
    ) {
        let mut api = browser.rtc.direct_api();
        api.stream_tx_by_mid(browser.mic, None)
            .unwrap()
            .write_rtp(packet);
        for d in browser.poll(now) {
            link.handle_receive(now, browser.addr, &d, outbox);
        }
    }

    /// Where virtual time starts (only the differences matter).
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn start() -> Instant {
        Instant::now()
    }

    const SERVER: &str = "127.0.0.1:50000";
    const BROWSER: &str = "127.0.0.1:40000";

    fn connected(listen_lines: usize) -> (BrowserLink, FakeBrowser, Instant, Outbox) {
        connected_with(listen_lines, false)
    }

    fn connected_with(
        listen_lines: usize,
        red: bool,
    ) -> (BrowserLink, FakeBrowser, Instant, Outbox) {
        let server: SocketAddr = SERVER.parse().unwrap();
        let t0 = start();
        let (mut browser, offer, pending) =
            FakeBrowser::offer_with(t0, BROWSER.parse().unwrap(), listen_lines, red);
        let (mut link, answer) = BrowserLink::accept(t0, &offer, &[server]).unwrap();
        browser.accept(pending, &answer);
        let mut outbox = Outbox::default();
        let mut now = t0;
        for _ in 0..400 {
            now += Duration::from_millis(10);
            for d in browser.poll(now) {
                link.handle_receive(now, browser.addr, &d, &mut outbox);
            }
            link.handle_timeout(now, &mut outbox);
            while let Some((to, d)) = outbox.pop() {
                assert_eq!(to, browser.addr);
                let d = d.to_vec();
                browser.receive(now, server, &d);
            }
            if link.connected && browser.rtc.is_connected() && !link.slots.is_empty() {
                // Each line sends with the SSRC the answer announced: a browser ties an
                // unannounced one to the line's track only sometimes.
                let mids: Vec<_> = link.slots.iter().map(|s| s.mid).collect();
                for mid in mids {
                    let mut api = link.rtc.direct_api();
                    let ssrc = *api.stream_tx_by_mid(mid, None).unwrap().ssrc();
                    assert!(answer.contains(&format!("a=ssrc:{ssrc} ")), "{answer}");
                }
                return (link, browser, now, outbox);
            }
        }
        panic!("the browser never connected");
    }

    #[test]
    fn a_browser_connects_and_hears_each_speaker_on_its_own_line() {
        let (mut link, mut browser, mut now, mut outbox) = connected(2);
        let server: SocketAddr = SERVER.parse().unwrap();
        assert_eq!(link.slots.len(), 2);
        assert!(link.mic.is_some());
        for i in 0..20u32 {
            now += Duration::from_millis(20);
            for (source, byte) in [(7u32, 0xa0u8), (9, 0xb0)] {
                let payload: std::sync::Arc<[u8]> = vec![byte, i as u8].into();
                assert!(link.send_audio(
                    now,
                    source,
                    1000 + i * 960,
                    i == 0,
                    &payload,
                    &[],
                    &mut outbox
                ));
            }
            while let Some((_, d)) = outbox.pop() {
                let d = d.to_vec();
                browser.receive(now, server, &d);
            }
            browser.poll(now);
        }
        // A third speaker finds no free line while both others talk.
        let payload: std::sync::Arc<[u8]> = vec![0xc0].into();
        assert!(!link.send_audio(now, 11, 5, false, &payload, &[], &mut outbox));
        assert_eq!(
            link.stats.redundant_out, 0,
            "no redundant audio unless offered"
        );
        assert_eq!(link.stats.no_free_slot, 1);
        let lines: std::collections::BTreeSet<_> = browser.received.iter().map(|r| r.0).collect();
        assert_eq!(lines.len(), 2, "one line per speaker");
        for line in lines {
            let got: Vec<_> = browser.received.iter().filter(|r| r.0 == line).collect();
            assert_eq!(got.len(), 20, "every packet of each speaker arrived");
            let first = got[0].1[0];
            assert!(got.iter().all(|r| r.1[0] == first), "one speaker per line");
            assert!(
                got.windows(2).all(|w| w[1].2 == w[0].2.wrapping_add(1)),
                "consecutive sequence numbers"
            );
            assert!(
                got.iter().enumerate().all(|(i, r)| r.1[1] == i as u8),
                "in order"
            );
        }
    }

    #[test]
    fn what_the_browser_says_reaches_the_server_as_opus() {
        let (mut link, mut browser, mut now, mut outbox) = connected(1);
        let pt = browser.rtc.media(browser.mic).unwrap().remote_pts()[0];
        for i in 0..10u64 {
            now += Duration::from_millis(20);
            let payload: std::sync::Arc<[u8]> = vec![0x55, i as u8].into();
            let packet = RtpWrite::new(pt, SeqNo::from(100 + i), 960 * i as u32, now, payload);
            mic_sends(&mut browser, &mut link, now, packet, &mut outbox);
        }
        let mut got = Vec::new();
        while let Some(a) = link.take_audio() {
            got.push(a.payload[1]);
        }
        assert_eq!(got, (0..10u8).collect::<Vec<_>>());
    }

    #[test]
    fn a_browser_offering_red_gets_the_frame_before_and_plays_a_lost_packet_from_the_next() {
        let (mut link, mut browser, mut now, mut outbox) = connected_with(1, true);
        let server: SocketAddr = SERVER.parse().unwrap();
        assert!(link.slots[0].red.is_some(), "redundant audio negotiated");
        for i in 0..10u32 {
            now += Duration::from_millis(20);
            let payload: std::sync::Arc<[u8]> = vec![0xa0, i as u8, 1, 2, 3].into();
            assert!(link.send_audio(now, 7, 960 * i, i == 0, &payload, &[], &mut outbox));
            while let Some((_, d)) = outbox.pop() {
                let d = d.to_vec();
                // The packet of frame 4 is lost on the way.
                if i != 4 {
                    browser.receive(now, server, &d);
                }
            }
            browser.poll(now);
        }
        assert_eq!(
            link.stats.redundant_out, 9,
            "all but the first carry the one before"
        );
        let mut frames: Vec<u8> = browser.received.iter().map(|r| r.1[1]).collect();
        frames.sort_unstable();
        frames.dedup();
        assert_eq!(
            frames,
            (0..10u8).collect::<Vec<_>>(),
            "frame 4 played from frame 5"
        );
        assert!(
            browser
                .received
                .iter()
                .all(|r| r.1[0] == 0xa0 && r.1.len() == 5)
        );
    }

    #[test]
    fn redundant_audio_from_a_browser_reaches_the_stage_numbered_as_the_stage_numbers_opus() {
        let (mut link, mut browser, mut now, mut outbox) = connected_with(1, true);
        let (_, opus, red) = link.mic.unwrap();
        let red = red.expect("redundant audio negotiated");
        let frames: Vec<[u8; 2]> = (0..6u8).map(|n| [0x55, n]).collect();
        for i in 1..6u32 {
            now += Duration::from_millis(20);
            let block = |n: u32| stagebox_proto::red::Block {
                payload_type: *opus,
                timestamp: 960 * n,
                payload: &frames[n as usize][..],
            };
            let mut bytes = [0u8; 32];
            let len = stagebox_proto::red::write(&block(i), &[block(i - 1)], &mut bytes).unwrap();
            let payload: std::sync::Arc<[u8]> = bytes[..len].into();
            let packet = RtpWrite::new(red, SeqNo::from(100 + u64::from(i)), 960 * i, now, payload);
            mic_sends(&mut browser, &mut link, now, packet, &mut outbox);
        }
        let mut got = Vec::new();
        while let Some(a) = link.take_audio() {
            assert!(a.redundant);
            let parsed = RedPayload::parse(&a.payload, a.timestamp).unwrap();
            assert!(parsed.all_of_type(stagebox_proto::PT_OPUS));
            assert_eq!(
                parsed.redundant().next().unwrap().payload[1] + 1,
                a.payload[a.primary.clone()][1]
            );
            got.push(a.payload[a.primary][1]);
        }
        assert_eq!(got, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn the_frames_before_ride_on_the_line_s_timeline_and_only_when_they_fit() {
        let opus = 111;
        let before: std::sync::Arc<[u8]> = vec![9u8; 3].into();
        // The speaker's RTP time 10 000 is the line's 500.
        let alone = super::with_earlier(opus, (10_000, 500), b"now", &[], None);
        assert_eq!(&alone[..], &[opus, b'n', b'o', b'w']);
        let previous = super::with_earlier(
            opus,
            (10_000, 500),
            b"now",
            &[],
            Some(&(9_040, before.clone())),
        );
        let parsed = RedPayload::parse(&previous, 500).unwrap();
        let blocks: Vec<_> = parsed
            .redundant()
            .map(|b| (b.timestamp, b.payload.to_vec()))
            .collect();
        assert_eq!(blocks, vec![(500u32.wrapping_sub(960), vec![9, 9, 9])]);
        assert!(parsed.all_of_type(opus));
        // The packet's own copies go first; a frame too far back is left out.
        let own = [
            Block {
                payload_type: 120,
                timestamp: 10_000u32.wrapping_sub(20_000),
                payload: b"old",
            },
            Block {
                payload_type: 120,
                timestamp: 10_000 - 1_920,
                payload: b"two",
            },
            Block {
                payload_type: 120,
                timestamp: 10_000 - 960,
                payload: b"one",
            },
        ];
        let carried =
            super::with_earlier(opus, (10_000, 500), b"now", &own, Some(&(9_040, before)));
        let parsed = RedPayload::parse(&carried, 500).unwrap();
        let blocks: Vec<_> = parsed.redundant().map(|b| b.payload.to_vec()).collect();
        assert_eq!(blocks, vec![b"two".to_vec(), b"one".to_vec()]);
        assert_eq!(parsed.primary().payload, b"now");
    }

    #[test]
    fn offers_that_are_not_webrtc_audio_are_refused_with_a_reason() {
        let server: SocketAddr = SERVER.parse().unwrap();
        let now = start();
        let err = |offer: &str, local: &[SocketAddr]| BrowserLink::accept(now, offer, local).err();
        assert!(matches!(
            err("hello", &[server]),
            Some(BrowserError::BadOffer(_))
        ));
        assert_eq!(
            err(&"v=0\r\n".repeat(10_000), &[server]),
            Some(BrowserError::OfferTooLong)
        );
        let (_, offer, _) = FakeBrowser::offer(now, BROWSER.parse().unwrap(), 1);
        assert_eq!(err(&offer, &[]), Some(BrowserError::NoAddress));
        let mut rtc = Rtc::builder().build(now);
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (video, _) = api.apply().unwrap();
        assert_eq!(
            err(&video.to_sdp_string(), &[server]),
            Some(BrowserError::NoAudio)
        );
    }
}
