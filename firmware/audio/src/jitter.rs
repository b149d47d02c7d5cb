//! Per-speaker adaptive jitter buffer: reorders by sequence number, drops late and duplicate
//! packets, decides when a talk spurt starts playing, and tells the decoder what to do each
//! time it needs a frame — decode, recover from the next packet's FEC, conceal, or stay idle
//! between talk spurts.
//!
//! **Target delay** (NetEQ's idea): every packet's `arrival − media time` goes to a
//! [`DelayEstimator`]; the fastest of the recent ones is the path's base delay and a high
//! quantile of the spread above it is the jitter to absorb. A frame's *ideal* playout time is
//! its media time + base delay + target (spread + margin). A talk spurt starts at the first
//! period at or after its first frame's ideal time, so the buffer holds exactly what the
//! measured jitter needs — not a fixed count of frames.
//!
//! **Underrun**: when the next frame is missing and nothing later has arrived, the frame is
//! concealed *without* giving its place up, so the packet still plays when it comes (the
//! delay grew by a frame, and the spike raised the target). The delay shrinks again by
//! leaving out as many quiet frames as were concealed, while the stream plays a frame or
//! more behind its ideal time, and at the next talk spurt, which starts on time.
//!
//! **Pace** (NetEQ's accelerate and preemptive expand): a stream that never pauses — a
//! browser sends without DTX — from a sender whose clock runs faster or slower than the
//! station's drifts away from its ideal time frame after frame. Each packet handed out says
//! how it stands ([`Pace`]): three frames or more late, the playout path plays it a pitch
//! period shorter; early, from a sender measured to run slow, a pitch period longer
//! ([`crate::stretch`]). The delay stays within that band of the target, and every frame is
//! still played.
//!
//! **Loss or silence**: a frame missing while a later one is here was lost: it is played
//! from a later packet's redundant copy (RFC 2198, when the sender adds them), else recovered
//! from the next packet's in-band FEC, else concealed. While frames are being lost the target
//! keeps as many frames more as the sender's packets carry earlier copies, so the copy is
//! here when the frame is due. A frame missing with nothing later, right
//! after quiet frames (the sender closes each talk spurt with encoded silence), is the end of
//! the spurt: the stream goes idle without concealing anything, and the next spurt — whose
//! first packet the server numbers straight on, marked — starts cleanly.
//!
//! Loss before the server does not leave a sequence gap (the server renumbers each receiver's
//! stream), but the timestamp still jumps: a packet without the marker whose timestamp is
//! ahead of the expected one means frames are missing before it, repaired the same way.
//!
//! Times are µs on any monotonic clock the caller chooses; the buffer never reads one.
//! Fixed capacity, no allocation after construction.

use core::ops::Range;

use stagebox_proto::red::RedPayload;
use stagebox_proto::seq::SeqExtender;

use crate::delay::DelayEstimator;
use crate::frame::{MediaFrame, SAMPLE_RATE};

/// Slots in the ring: the furthest ahead of playout a packet may be.
pub const SLOTS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Added to the measured jitter: the audio thread's own wake-up jitter.
    pub margin_us: u32,
    /// The least target delay beyond the fastest packet.
    pub min_target_us: u32,
    /// The most target delay beyond the fastest packet.
    pub max_target_us: u32,
    /// Consecutive frames concealed while waiting, after which the stream is taken as ended.
    pub max_conceal_frames: u16,
    /// Quantile of the arrival spread the target covers, in thousandths.
    pub quantile_permille: u16,
    /// The target until [`WARM_UP_PACKETS`] have been measured (NetEQ likewise starts
    /// cautious): a first talk spurt on a path not yet known does not underrun.
    pub start_target_us: u32,
}

/// How many frames behind its ideal time a stream plays before it is shortened. Not one or
/// two: a stream whose target fell (the cautious start's 40 ms given back, a spike forgotten)
/// plays up to two frames late, and taking that out in the middle of a sentence moves the
/// rest of it against the beginning. Nobody hears a 9 ms step, but the demo's wideband PESQ,
/// which aligns the whole recording at one delay, lost that sentence (3.96 → 3.62); a
/// station's talk spurts start on time again anyway. A sender's faster clock passes three
/// frames soon enough (in 6 s at 1 %).
pub const LATE_FRAMES: i64 = 3;

/// How far ahead of its ideal time a frame may play before the stream is lengthened, µs. A
/// spurt starts at or just after its ideal time, so only a sender's slower clock or a grown
/// target puts a frame ahead of it; and a frame is here ahead of its ideal time only by the
/// target's margin (the audio thread's wake-up jitter, 2 ms): less than that, so the
/// lengthening comes before the buffer runs dry. With shortening from two frames late, the
/// band is wider than the longest pitch period (15 ms): one step never crosses it.
pub const EARLY_US: i64 = 1_000;

/// Packets measured before the target follows the measurement alone.
pub const WARM_UP_PACKETS: usize = 50;

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            margin_us: 2_000,
            min_target_us: 0,
            max_target_us: 400_000,
            max_conceal_frames: 5,
            quantile_permille: 950,
            start_target_us: 40_000,
        }
    }
}

/// What to feed the decoder for the next frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout<'a> {
    /// The packet for this frame, and how its playout time compares with its ideal one.
    Packet { payload: &'a [u8], pace: Pace },
    /// This frame was lost but the next packet is here: decode its FEC.
    Fec(&'a [u8]),
    /// Lost or late: conceal.
    Conceal,
    /// Nothing to play (between talk spurts, or still buffering).
    Idle,
}

/// How late or early a frame plays against its ideal time: what the playout path may do to
/// bring the stream's delay back to the target without a gap ([`crate::stretch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Within the band around the ideal time: play the frame as it decodes.
    OnTime,
    /// A frame or more behind the ideal time because frames were concealed while waiting
    /// for this one, with the next frame here: if this frame decodes quiet, leave it out
    /// ([`JitterBuffer::frame_left_out`]); else play it as it decodes.
    QuietMayGo,
    /// [`LATE_FRAMES`] frames or more behind the ideal time (the sender's clock runs faster
    /// than the station's), with the next frame here: shorten this one by
    /// a pitch period ([`JitterBuffer::frame_shortened`]). `may_leave_out`: the delay came
    /// from frames concealed while waiting, so if this frame decodes quiet it may be left out
    /// whole instead ([`JitterBuffer::frame_left_out`]).
    Late { may_leave_out: bool },
    /// Ahead of the ideal time by more than [`EARLY_US`], the ideal taken with the least
    /// target of the talk spurt, from a sender whose clock is measured to run slower: lengthen
    /// this frame by a pitch period ([`JitterBuffer::frame_lengthened`]) rather than run dry
    /// and conceal. Not for a target that grew in mid-spurt (loss, a spike: left to the next
    /// spurt), nor where no drift is measured: on a jittery path the fastest packet's delay
    /// rises as the history moves on, and lengthening after it cost an emulated station's demo
    /// 0.7 of wideband PESQ (eleven pitch periods in mid-sentence).
    Early,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub received: u64,
    /// Frames decoded from their own packet.
    pub played: u64,
    pub recovered_fec: u64,
    /// Lost frames played from a later packet's redundant copy.
    pub recovered_redundant: u64,
    pub concealed: u64,
    /// Frames found missing (a sequence gap, or a timestamp jump within a spurt).
    pub lost: u64,
    /// Packets that came after their frame's time had passed.
    pub late: u64,
    pub duplicate: u64,
    /// Times the next frame had not arrived yet and nothing later had either.
    pub underruns: u64,
    /// Quiet frames left out to bring the delay back down.
    pub left_out: u64,
    /// Frames played a pitch period shorter to bring the delay down (see [`Pace::Late`]).
    pub shortened: u64,
    /// Frames played a pitch period longer to build the delay up (see [`Pace::Early`]).
    pub lengthened: u64,
    pub resyncs: u64,
    /// Redundant packets that did not parse (dropped).
    pub malformed: u64,
    /// Target delay beyond the fastest packet, µs.
    pub target_delay_us: u64,
    /// How far behind the fastest packet the last frame played, µs.
    pub current_delay_us: u64,
    /// Spread of the packets' arrival delays the target allows for (the jitter), µs.
    pub arrival_spread_us: u64,
    /// How much faster the sender's clock runs than the station's, in millionths (negative:
    /// slower), as measured from the arrivals (0 until measured).
    pub sender_clock_ppm: i64,
}

impl JitterStats {
    /// Counters summed over streams (delays: the largest).
    pub fn add(&mut self, o: &JitterStats) {
        self.received += o.received;
        self.played += o.played;
        self.recovered_fec += o.recovered_fec;
        self.recovered_redundant += o.recovered_redundant;
        self.malformed += o.malformed;
        self.concealed += o.concealed;
        self.lost += o.lost;
        self.late += o.late;
        self.duplicate += o.duplicate;
        self.underruns += o.underruns;
        self.left_out += o.left_out;
        self.shortened += o.shortened;
        self.lengthened += o.lengthened;
        self.resyncs += o.resyncs;
        self.target_delay_us = self.target_delay_us.max(o.target_delay_us);
        self.current_delay_us = self.current_delay_us.max(o.current_delay_us);
        self.arrival_spread_us = self.arrival_spread_us.max(o.arrival_spread_us);
        if o.sender_clock_ppm.abs() > self.sender_clock_ppm.abs() {
            self.sender_clock_ppm = o.sender_clock_ppm;
        }
    }
}

#[derive(Debug, Clone)]
struct Slot {
    ext: u64,
    /// Extended RTP timestamp.
    media: i64,
    valid: bool,
    frame: MediaFrame,
    /// Where this frame's own Opus packet lies in the payload (all of it, unless redundant).
    primary: Range<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Between talk spurts, or before the first packet.
    Idle,
    Playing,
}

/// Extends 32-bit RTP timestamps to a signed 64-bit count of samples.
#[derive(Debug, Clone, Copy, Default)]
struct TimestampExtender {
    last: Option<(u32, i64)>,
}

impl TimestampExtender {
    fn extend(&mut self, ts: u32) -> i64 {
        let Some((last_ts, last_ext)) = self.last else {
            self.last = Some((ts, i64::from(ts)));
            return i64::from(ts);
        };
        let ext = last_ext.saturating_add(i64::from(ts.wrapping_sub(last_ts) as i32));
        if ext > last_ext {
            self.last = Some((ts, ext));
        }
        ext
    }
}

fn samples_to_us(samples: i64) -> i64 {
    samples.saturating_mul(1_000_000) / i64::from(SAMPLE_RATE)
}

#[derive(Debug, Clone)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    /// Allocated once at construction (too large for an audio thread's stack), never resized.
    slots: Box<[Slot]>,
    ext: SeqExtender,
    timestamps: TimestampExtender,
    delays: DelayEstimator,
    /// Extended sequence number of the next frame to play.
    next: Option<u64>,
    highest: Option<u64>,
    mode: Mode,
    /// Frames concealed in a row while waiting for the next one.
    waiting_run: u16,
    /// Frames concealed this talk spurt while waiting (each put the stream a frame later):
    /// as many quiet frames may be left out again. Nothing else is ever left out, so a
    /// lossless link plays every frame.
    stretched: u16,
    /// The least target delay since this talk spurt started, µs.
    spurt_least_target: i64,
    /// RTP timestamp the next frame should carry, once a frame of the spurt was played.
    expected_ts: Option<u32>,
    /// Samples per frame of this stream (the decoder tells, see [`Self::set_frame_samples`]).
    frame_samples: u32,
    /// The last frame given to the listener was quiet.
    last_quiet: bool,
    /// Recent share of frames found lost, in millionths (exponential average over ~100
    /// frames).
    loss_ppm: u32,
    /// Earlier frames the sender's latest packet carried: how far on a copy may be.
    redundancy: u8,
    stats: JitterStats,
}

/// Above this recent loss, the target keeps one more frame so that a lost frame's successor
/// (with its FEC) is already here when the frame is due.
const LOSSY_PPM: u32 = 5_000;

impl JitterBuffer {
    pub fn new(cfg: JitterConfig) -> JitterBuffer {
        JitterBuffer {
            cfg,
            slots: vec![
                Slot {
                    ext: 0,
                    media: 0,
                    valid: false,
                    frame: MediaFrame::empty(),
                    primary: 0..0,
                };
                SLOTS
            ]
            .into_boxed_slice(),
            ext: SeqExtender::new(),
            timestamps: TimestampExtender::default(),
            delays: DelayEstimator::new(cfg.quantile_permille),
            next: None,
            highest: None,
            mode: Mode::Idle,
            waiting_run: 0,
            stretched: 0,
            spurt_least_target: 0,
            expected_ts: None,
            frame_samples: 960,
            last_quiet: true,
            loss_ppm: 0,
            redundancy: 0,
            stats: JitterStats::default(),
        }
    }

    /// Counts one frame towards the recent loss rate.
    fn note_frame(&mut self, lost: bool) {
        let sample = if lost { 1_000_000 } else { 0 };
        self.loss_ppm = self.loss_ppm - self.loss_ppm / 100 + sample / 100;
        if lost {
            self.stats.lost += 1;
        }
    }

    /// Samples per frame of this stream at 48 kHz, as decoded.
    pub fn set_frame_samples(&mut self, samples: u32) {
        self.frame_samples = samples.clamp(120, 5760);
    }

    /// Whether what the listener last heard of this stream was quiet (the pipeline tells
    /// after each frame it decodes): a gap after quiet frames is the end of a talk spurt.
    pub fn set_last_quiet(&mut self, quiet: bool) {
        self.last_quiet = quiet;
    }

    /// The pipeline left out a frame paced [`Pace::QuietMayGo`] or [`Pace::Late`]
    /// `{ may_leave_out }` because it was quiet.
    pub fn frame_left_out(&mut self) {
        self.stretched = self.stretched.saturating_sub(1);
        self.stats.played = self.stats.played.saturating_sub(1);
        self.stats.left_out += 1;
    }

    /// The pipeline played a frame paced [`Pace::Late`] a pitch period shorter.
    pub fn frame_shortened(&mut self) {
        self.stats.shortened += 1;
    }

    /// The pipeline played a frame paced [`Pace::Early`] a pitch period longer.
    pub fn frame_lengthened(&mut self) {
        self.stats.lengthened += 1;
    }

    /// Forgets everything, for a new stream.
    pub fn reset(&mut self) {
        self.clear_slots();
        self.ext = SeqExtender::new();
        self.timestamps = TimestampExtender::default();
        self.delays.reset();
        self.next = None;
        self.mode = Mode::Idle;
        self.waiting_run = 0;
        self.expected_ts = None;
        self.last_quiet = true;
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Whether the stream is playing (not idle or buffering).
    pub fn is_playing(&self) -> bool {
        self.mode == Mode::Playing
    }

    /// Target delay beyond the fastest packet, µs: the measured spread and the margin, and
    /// while frames are being lost, as many frames more as later packets can repair (one for
    /// FEC, or as many as the sender's packets carry earlier copies), so the repair is here
    /// when a lost frame is due. Waiting for it instead (an underrun, see above) would put a
    /// concealed frame into the speech each time two packets in a row are lost.
    pub fn target_delay_us(&mut self) -> i64 {
        let spread = self.delays.summary().map_or(0, |(_, s)| s);
        let for_repair = if self.loss_ppm > LOSSY_PPM {
            samples_to_us(i64::from(self.frame_samples) * i64::from(self.redundancy.max(1)))
        } else {
            0
        };
        let warming_up = if self.delays.len() < WARM_UP_PACKETS {
            i64::from(self.cfg.start_target_us)
        } else {
            0
        };
        spread
            .saturating_add(for_repair)
            .saturating_add(i64::from(self.cfg.margin_us))
            .max(warming_up)
            .clamp(
                i64::from(self.cfg.min_target_us),
                i64::from(self.cfg.max_target_us.max(self.cfg.min_target_us)),
            )
    }

    /// When the frame with extended timestamp `media` should ideally play, µs.
    fn ideal_us(&mut self, media: i64) -> i64 {
        let fastest = self.delays.summary().map_or(0, |(f, _)| f);
        samples_to_us(media)
            .saturating_add(fastest)
            .saturating_add(self.target_delay_us())
    }

    /// A received frame, with the time it arrived.
    pub fn push(&mut self, frame: MediaFrame, arrival_us: u64) {
        let primary = if frame.redundant {
            match RedPayload::parse(&frame.payload, frame.timestamp) {
                Ok(red) => {
                    self.redundancy = red.redundant_count().min(usize::from(u8::MAX)) as u8;
                    red.primary_range()
                }
                Err(_) => {
                    self.stats.malformed += 1;
                    return;
                }
            }
        } else {
            self.redundancy = 0;
            0..frame.payload.len()
        };
        self.stats.received += 1;
        let e = self.ext.extend(frame.sequence);
        let media = self.timestamps.extend(frame.timestamp);
        let arrival = i64::try_from(arrival_us).unwrap_or(i64::MAX);
        self.delays
            .push(arrival, arrival.saturating_sub(samples_to_us(media)));
        if let Some(next) = self.next {
            if e < next {
                self.stats.late += 1;
                return;
            }
            if e >= next + SLOTS as u64 {
                // Far ahead of playout (a long stall, a flood): start over from this packet.
                self.stats.resyncs += 1;
                self.clear_slots();
                self.next = Some(e);
                self.mode = Mode::Idle;
                self.waiting_run = 0;
                self.expected_ts = None;
            }
        } else {
            self.next = Some(e);
        }
        let slot = &mut self.slots[(e % SLOTS as u64) as usize];
        if slot.valid && slot.ext == e {
            self.stats.duplicate += 1;
            return;
        }
        slot.ext = e;
        slot.media = media;
        slot.valid = true;
        slot.frame = frame;
        slot.primary = primary;
        self.highest = Some(self.highest.map_or(e, |h| h.max(e)));
    }

    fn present(&self, e: u64) -> bool {
        let s = &self.slots[(e % SLOTS as u64) as usize];
        s.valid && s.ext == e
    }

    fn slot(&self, e: u64) -> &Slot {
        &self.slots[(e % SLOTS as u64) as usize]
    }

    /// The Opus packet of the frame in slot `e`.
    fn primary(&self, e: u64) -> &[u8] {
        let s = self.slot(e);
        s.frame.payload.get(s.primary.clone()).unwrap_or_default()
    }

    /// A redundant copy of the frame at RTP timestamp `ts` in the packets from `from` on:
    /// the slot and where the copy lies in its payload.
    fn redundant_copy(&self, ts: u32, from: u64) -> Option<(u64, Range<usize>)> {
        let last = from + u64::from(self.redundancy.max(1));
        (from..=last).filter(|&e| self.present(e)).find_map(|e| {
            let s = self.slot(e);
            if !s.frame.redundant {
                return None;
            }
            let red = RedPayload::parse(&s.frame.payload, s.frame.timestamp).ok()?;
            Some((e, red.find_range(ts)?))
        })
    }

    /// Plays a lost frame from the redundant copy [`Self::redundant_copy`] found.
    fn play_redundant(&mut self, (e, range): (u64, Range<usize>)) -> Playout<'_> {
        self.stats.recovered_redundant += 1;
        let payload = self.slot(e).frame.payload.get(range).unwrap_or_default();
        Playout::Packet {
            payload,
            pace: Pace::OnTime,
        }
    }

    /// The next frame's playout decision, at `now_us` (the start of the period the frame is
    /// for). Call once per frame the decoder needs.
    pub fn pop(&mut self, now_us: u64) -> Playout<'_> {
        let now = i64::try_from(now_us).unwrap_or(i64::MAX);
        let Some(mut next) = self.next else {
            return Playout::Idle;
        };
        let target = self.target_delay_us();
        self.stats.target_delay_us = target.max(0) as u64;
        self.stats.arrival_spread_us = self.delays.summary().map_or(0, |(_, s)| s.max(0) as u64);
        // Each packet later than the one before: the sender's clock is the slower.
        self.stats.sender_clock_ppm = -self.delays.drift_ppm();
        if self.mode == Mode::Idle {
            let highest = self.highest.unwrap_or(next);
            let Some(first) = (next..=highest).find(|&e| self.present(e)) else {
                return Playout::Idle;
            };
            let buffered = (first..=highest).filter(|&e| self.present(e)).count();
            let media = self.slot(first).media;
            if now < self.ideal_us(media) && buffered < SLOTS / 2 {
                return Playout::Idle;
            }
            // A talk spurt starts: from its first frame here, whatever came before it.
            next = first;
            self.next = Some(first);
            self.mode = Mode::Playing;
            self.waiting_run = 0;
            self.stretched = 0;
            self.spurt_least_target = target;
            self.expected_ts = None;
        }
        let step = self.frame_samples;
        if self.present(next) {
            let (ts, marker, media) = {
                let s = self.slot(next);
                (s.frame.timestamp, s.frame.marker, s.media)
            };
            // Frames lost before the server: the timestamp is ahead within a spurt.
            let ahead = self.expected_ts.map_or(0, |e| ts.wrapping_sub(e) as i32);
            let limit = i64::from(self.cfg.max_conceal_frames) * i64::from(step);
            if !marker && ahead >= step as i32 && i64::from(ahead) <= limit {
                let missing = self.expected_ts.unwrap_or(ts);
                self.expected_ts = Some(missing.wrapping_add(step));
                self.note_frame(true);
                if let Some(copy) = self.redundant_copy(missing, next) {
                    return self.play_redundant(copy);
                }
                if ahead == step as i32 {
                    self.stats.recovered_fec += 1;
                    return Playout::Fec(self.primary(next));
                }
                self.stats.concealed += 1;
                return Playout::Conceal;
            }
            let behind = now.saturating_sub(self.ideal_us(media));
            // Ahead against the least target of the spurt: a target that grew (loss, a
            // spike) is not made up by lengthening in mid-sentence, only a slower clock is.
            self.spurt_least_target = self.spurt_least_target.min(target);
            let behind_least =
                behind.saturating_add(target.saturating_sub(self.spurt_least_target));
            let frame_us = samples_to_us(i64::from(step));
            // Behind because frames were concealed while waiting, and quiet now.
            let waited = self.stretched > 0 && self.last_quiet;
            let next_here = self.present(next + 1);
            let pace = if behind >= LATE_FRAMES * frame_us && next_here {
                Pace::Late {
                    may_leave_out: waited,
                }
            } else if behind >= frame_us && next_here && waited {
                Pace::QuietMayGo
            } else if behind_least <= -EARLY_US && self.delays.drift_ppm() > 0 {
                Pace::Early
            } else {
                Pace::OnTime
            };
            let fastest = self.delays.summary().map_or(0, |(f, _)| f);
            self.stats.current_delay_us = now
                .saturating_sub(samples_to_us(media))
                .saturating_sub(fastest)
                .max(0) as u64;
            self.next = Some(next + 1);
            self.waiting_run = 0;
            self.expected_ts = Some(ts.wrapping_add(step));
            self.note_frame(false);
            self.stats.played += 1;
            let slot = &mut self.slots[(next % SLOTS as u64) as usize];
            slot.valid = false;
            return Playout::Packet {
                payload: slot
                    .frame
                    .payload
                    .get(slot.primary.clone())
                    .unwrap_or_default(),
                pace,
            };
        }
        if self.highest.is_some_and(|h| h > next) {
            // A later frame is here: this one was lost.
            self.next = Some(next + 1);
            let missing = self.expected_ts;
            self.expected_ts = missing.map(|e| e.wrapping_add(step));
            self.waiting_run = 0;
            self.note_frame(true);
            if let Some(copy) = missing.and_then(|ts| self.redundant_copy(ts, next + 1)) {
                return self.play_redundant(copy);
            }
            if self.present(next + 1) {
                self.stats.recovered_fec += 1;
                return Playout::Fec(self.primary(next + 1));
            }
            self.stats.concealed += 1;
            return Playout::Conceal;
        }
        if self.last_quiet || self.waiting_run >= self.cfg.max_conceal_frames {
            // Nothing more after quiet frames: the talk spurt ended (or the sender stopped).
            // Wait for the next one, keeping the place: its first packet is numbered next.
            self.mode = Mode::Idle;
            self.waiting_run = 0;
            self.expected_ts = None;
            return Playout::Idle;
        }
        // Mid-speech and the next frame is not here yet: conceal, and keep its place.
        self.waiting_run += 1;
        self.stretched = self.stretched.saturating_add(1);
        self.stats.underruns += 1;
        self.stats.concealed += 1;
        Playout::Conceal
    }

    fn clear_slots(&mut self) {
        for s in self.slots.iter_mut() {
            s.valid = false;
        }
        self.highest = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME_US: u64 = 20_000;

    fn f(seq: u16) -> MediaFrame {
        MediaFrame::new(1, seq, u32::from(seq) * 960, false, &[seq as u8]).unwrap()
    }

    /// Pops `n` frames one frame-time apart from `*now`, as the pipeline would, telling the
    /// buffer that decoded frames were loud (`quiet` false) or quiet.
    fn run(jb: &mut JitterBuffer, now: &mut u64, n: usize, quiet: bool) -> Vec<String> {
        (0..n)
            .map(|_| {
                let r = match jb.pop(*now) {
                    Playout::Packet { payload, .. } => format!("P{}", payload[0]),
                    Playout::Fec(p) => format!("F{}", p[0]),
                    Playout::Conceal => "C".into(),
                    Playout::Idle => "-".into(),
                };
                if r != "-" {
                    jb.set_last_quiet(quiet);
                }
                *now += FRAME_US;
                r
            })
            .collect()
    }

    /// Frame `seq` arriving exactly on its media time (+ a constant 5 ms path).
    fn on_time(seq: u16) -> u64 {
        u64::from(seq) * FRAME_US + 5_000
    }

    fn config() -> JitterConfig {
        JitterConfig {
            margin_us: 0,
            start_target_us: 0,
            ..JitterConfig::default()
        }
    }

    /// Frame `index` numbered `seq`, as redundant audio carrying the `depth` frames before it
    /// (each frame's Opus packet is its index, as one byte).
    fn red(seq: u16, index: u32, depth: u32) -> MediaFrame {
        use stagebox_proto::red::{Block, write};
        let bytes: Vec<[u8; 1]> = (0..=depth).map(|d| [(index - d) as u8]).collect();
        let block = |d: u32| Block {
            payload_type: 120,
            timestamp: (index - d) * 960,
            payload: &bytes[d as usize][..],
        };
        let earlier: Vec<Block> = (1..=depth).rev().map(block).collect();
        let mut out = [0u8; 64];
        let n = write(&block(0), &earlier, &mut out).unwrap();
        MediaFrame::new(1, seq, index * 960, false, &out[..n])
            .unwrap()
            .with_redundancy(true)
    }

    #[test]
    fn redundant_copies_repair_two_losses_in_a_row_after_the_server_and_before_it() {
        let mut jb = JitterBuffer::new(config());
        // After the server: packets 13 and 14 never arrive (a sequence gap).
        for i in [10u32, 11, 12, 15, 16] {
            jb.push(red(i as u16, i, 2), on_time(i as u16));
        }
        // Before the server: frames 18 and 19 never reached it, so the server numbered
        // frame 20 straight after 17 (no gap, the timestamp jumps).
        jb.push(red(17, 17, 2), on_time(17));
        jb.push(red(18, 20, 2), on_time(20));
        jb.push(red(19, 21, 2), on_time(21));
        let mut now = on_time(21) + 1_000;
        assert_eq!(
            run(&mut jb, &mut now, 12, false),
            vec![
                "P10", "P11", "P12", "P13", "P14", "P15", "P16", "P17", "P18", "P19", "P20", "P21"
            ]
        );
        let s = jb.stats();
        assert_eq!(
            (
                s.played,
                s.recovered_redundant,
                s.lost,
                s.recovered_fec,
                s.concealed
            ),
            (8, 4, 4, 0, 0)
        );
        // Three in a row is one more than two copies can repair: FEC for the last.
        let mut jb = JitterBuffer::new(config());
        for i in [10u32, 14, 15] {
            jb.push(red(i as u16, i, 2), on_time(i as u16));
        }
        let mut now = on_time(15) + 1_000;
        assert_eq!(
            run(&mut jb, &mut now, 6, false),
            vec!["P10", "C", "P12", "P13", "P14", "P15"]
        );
        // A malformed redundant payload is dropped and counted, never played.
        let mut bad = red(16, 16, 1);
        bad.payload[3] = 0xff;
        jb.push(bad, on_time(16));
        assert_eq!(jb.stats().malformed, 1);
    }

    #[test]
    fn while_frames_are_lost_the_target_keeps_a_frame_per_copy() {
        let mut jb = JitterBuffer::new(config());
        let mut now = on_time(10);
        // A lossy stretch with two copies per packet: every tenth packet lost, and two in a
        // row every thirtieth.
        for i in 10..310u32 {
            if i % 10 != 3 && i % 30 != 4 {
                jb.push(red(i as u16, i, 2), on_time(i as u16));
            }
            run(&mut jb, &mut now, 1, false);
        }
        // Every lost frame is played from a copy. In this one long talk spurt the stream only
        // gets later by waiting: at the first loss (before the buffer knew frames were being
        // lost) and the first two in a row, a frame was concealed while the copy came. After
        // that, the copies are always in time.
        let s = jb.stats();
        assert_eq!((s.lost, s.recovered_redundant), (40, 40), "{s:?}");
        assert_eq!((s.concealed, s.underruns), (2, 2), "{s:?}");
        assert_eq!(jb.target_delay_us(), 2 * FRAME_US as i64);
    }

    #[test]
    fn reorders_and_recovers() {
        let mut jb = JitterBuffer::new(config());
        let mut now = on_time(10);
        jb.pop(now);
        assert_eq!(jb.pop(now), Playout::Idle, "nothing yet");
        jb.push(f(10), on_time(10));
        jb.push(f(12), on_time(12));
        jb.push(f(11), on_time(12));
        jb.push(f(14), on_time(14)); // 13 lost, 14 carries its FEC
        jb.push(f(11), on_time(14)); // duplicate
        now = on_time(14) + 100_000;
        assert_eq!(
            run(&mut jb, &mut now, 5, false),
            vec!["P10", "P11", "P12", "F14", "P14"]
        );
        jb.push(f(12), on_time(15)); // late
        let s = jb.stats();
        assert_eq!(
            (s.played, s.recovered_fec, s.lost, s.late, s.duplicate),
            (4, 1, 1, 1, 1)
        );
    }

    /// Frame `index` of the stream (its media time), numbered `seq` by the server.
    fn g(seq: u16, index: u32, marker: bool) -> MediaFrame {
        MediaFrame::new(1, seq, index.wrapping_mul(960), marker, &[seq as u8]).unwrap()
    }

    #[test]
    fn a_spurt_ends_quietly_and_the_next_one_starts_cleanly() {
        let mut jb = JitterBuffer::new(config());
        let mut now = on_time(65533);
        for seq in 65533..=65535u16 {
            jb.push(f(seq), on_time(seq));
        }
        // The last frames of a spurt are quiet (the sender's closing silence): then nothing.
        assert_eq!(
            run(&mut jb, &mut now, 5, true),
            vec!["P253", "P254", "P255", "-", "-"]
        );
        // Next spurt 4 s later, numbered straight on by the server (the sequence wraps),
        // marked: nothing is late, nothing concealed.
        let at = |index: u32| u64::from(index) * FRAME_US + 5_000;
        jb.push(g(0, 65736, true), at(65736));
        jb.push(g(1, 65737, false), at(65737));
        now = at(65736);
        assert_eq!(run(&mut jb, &mut now, 3, false), vec!["P0", "P1", "C"]);
        let s = jb.stats();
        assert_eq!((s.late, s.lost, s.concealed, s.underruns), (0, 0, 1, 1));
    }

    #[test]
    fn an_underrun_keeps_the_frame_place_and_the_late_packet_still_plays() {
        let mut jb = JitterBuffer::new(config());
        let mut now = on_time(0);
        jb.push(f(0), on_time(0));
        assert_eq!(run(&mut jb, &mut now, 1, false), vec!["P0"]);
        // Frame 1 is 30 ms late: one frame concealed while waiting, then it plays.
        assert_eq!(run(&mut jb, &mut now, 1, false), vec!["C"]);
        jb.push(f(1), on_time(1) + 30_000);
        jb.push(f(2), on_time(2) + 5_000);
        assert_eq!(run(&mut jb, &mut now, 2, false), vec!["P1", "P2"]);
        let s = jb.stats();
        assert_eq!((s.late, s.underruns, s.concealed, s.played), (0, 1, 1, 3));
        assert!(
            jb.target_delay_us() >= 30_000,
            "the spike raised the target: {}",
            jb.target_delay_us()
        );
    }

    #[test]
    fn a_spurt_starts_after_the_measured_jitter() {
        let mut jb = JitterBuffer::new(config());
        // A first spurt teaches the buffer that packets come up to 15 ms after the fastest.
        for seq in 0..40u16 {
            let extra = if seq % 4 == 1 { 15_000 } else { 0 };
            jb.push(f(seq), on_time(seq) + extra);
        }
        let mut now = on_time(40) + 5_000;
        run(&mut jb, &mut now, 45, true);
        let target = jb.target_delay_us();
        assert_eq!(target, 15_000);
        // A new spurt at 1000: it does not start before its first frame's ideal time.
        jb.push(f(1000), on_time(1000));
        let mut now = on_time(1000);
        assert_eq!(jb.pop(now), Playout::Idle, "buffering");
        now += 10_000;
        assert_eq!(jb.pop(now), Playout::Idle, "still buffering at +10 ms");
        now += 10_000;
        jb.push(f(1001), on_time(1001));
        assert!(
            matches!(jb.pop(now), Playout::Packet { .. }),
            "starts at +20 ms"
        );
        assert!(jb.stats().current_delay_us >= 15_000);
    }

    #[test]
    fn only_a_stretch_is_given_back_and_only_on_quiet_frames() {
        let mut jb = JitterBuffer::new(config());
        let mut now = on_time(0);
        jb.push(f(0), on_time(0));
        assert_eq!(run(&mut jb, &mut now, 1, false), vec!["P0"]);
        assert_eq!(
            run(&mut jb, &mut now, 1, false),
            vec!["C"],
            "frame 1 is late"
        );
        for seq in 1..8 {
            jb.push(f(seq), on_time(seq));
        }
        let droppable = |p: Playout<'_>| {
            matches!(
                p,
                Playout::Packet {
                    pace: Pace::QuietMayGo
                        | Pace::Late {
                            may_leave_out: true
                        },
                    ..
                }
            )
        };
        // Loud: kept, though a frame behind.
        assert!(!droppable(jb.pop(now)));
        jb.set_last_quiet(false);
        now += FRAME_US;
        assert!(!droppable(jb.pop(now)));
        // Quiet now: one frame may go, the one the stretch added, and no more.
        jb.set_last_quiet(true);
        now += FRAME_US;
        assert!(droppable(jb.pop(now)));
        jb.frame_left_out();
        for _ in 0..3 {
            jb.set_last_quiet(true);
            assert!(!droppable(jb.pop(now)));
            now += FRAME_US;
        }
        assert_eq!(jb.stats().left_out, 1);
    }

    #[test]
    fn a_new_path_starts_cautious_then_follows_the_measurement() {
        let mut jb = JitterBuffer::new(JitterConfig {
            margin_us: 0,
            ..JitterConfig::default()
        });
        jb.push(f(0), on_time(0));
        assert_eq!(jb.target_delay_us(), 40_000);
        assert_eq!(jb.pop(on_time(0) + 20_000), Playout::Idle, "waits 40 ms");
        for seq in 1..WARM_UP_PACKETS as u16 {
            jb.push(f(seq), on_time(seq));
        }
        assert_eq!(jb.target_delay_us(), 0, "a steady path needs nothing more");
    }

    #[test]
    fn far_ahead_packet_resyncs_and_bad_timestamps_do_not_panic() {
        let mut jb = JitterBuffer::new(JitterConfig {
            start_target_us: 0,
            ..JitterConfig::default()
        });
        let mut now = on_time(1) + 10_000;
        jb.push(f(1), on_time(1));
        assert_eq!(run(&mut jb, &mut now, 1, false), vec!["P1"]);
        jb.push(f(1000), on_time(1000));
        assert_eq!(jb.stats().resyncs, 1);
        let mut now = on_time(1000) + 10_000;
        assert_eq!(run(&mut jb, &mut now, 1, false), vec!["P232"]); // 1000 as u8
        for (i, ts) in [u32::MAX, 0, 1 << 31, 7, u32::MAX / 3]
            .into_iter()
            .enumerate()
        {
            let frame = MediaFrame::new(1, 1001 + i as u16, ts, i == 2, &[1]).unwrap();
            jb.push(frame, u64::MAX - i as u64);
            jb.pop(u64::MAX);
            jb.pop(0);
        }
    }
}
