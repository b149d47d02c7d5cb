//! Per-speaker jitter buffer: reorders by sequence number, drops late and duplicate packets,
//! and tells the decoder what to do each time it needs a frame — decode, recover from the
//! next packet's FEC, conceal, or stay idle between talk spurts.
//!
//! Loss shows in two ways. On the last hop it leaves a sequence gap. Before the server it does
//! not — the server renumbers each receiver's stream without gaps — but the timestamp still
//! jumps: a packet without the marker bit whose timestamp is ahead of the expected one means
//! frames are missing before it. Both are repaired the same way: the frame just before a
//! packet is recovered from that packet's in-band FEC, earlier ones are concealed.
//!
//! Fixed capacity, no allocation. This is a fixed-target buffer; the adaptive one (target
//! following measured jitter) replaces the target policy, not this structure.

use stagebox_proto::seq::SeqExtender;

use crate::frame::MediaFrame;

/// Slots in the ring: the furthest ahead of playout a packet may be.
pub const SLOTS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Frames buffered before playout starts (per talk spurt).
    pub target_frames: u16,
    /// Consecutive missing frames after which the stream is taken as ended (silence).
    pub max_conceal_frames: u16,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            target_frames: 1,
            max_conceal_frames: 5,
        }
    }
}

/// What to feed the decoder for the next frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout<'a> {
    /// The packet for this frame.
    Packet(&'a [u8]),
    /// This frame was lost but the next packet is here: decode its FEC.
    Fec(&'a [u8]),
    /// Lost: conceal.
    Conceal,
    /// Nothing to play (between talk spurts, or still filling).
    Idle,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub received: u64,
    pub played: u64,
    pub recovered_fec: u64,
    pub concealed: u64,
    pub late: u64,
    pub duplicate: u64,
    pub resyncs: u64,
}

#[derive(Debug, Clone)]
struct Slot {
    ext: u64,
    valid: bool,
    frame: MediaFrame,
}

#[derive(Debug, Clone)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    /// Allocated once at construction (too large for an audio thread's stack), never resized.
    slots: Box<[Slot]>,
    ext: SeqExtender,
    /// Extended sequence number of the next frame to play.
    next: Option<u64>,
    highest: Option<u64>,
    playing: bool,
    missing_run: u16,
    /// RTP timestamp the next frame should carry, once a frame of the spurt was played.
    expected_ts: Option<u32>,
    /// Samples per frame of this stream (the decoder tells, see [`Self::set_frame_samples`]).
    frame_samples: u32,
    stats: JitterStats,
}

impl JitterBuffer {
    pub fn new(cfg: JitterConfig) -> JitterBuffer {
        JitterBuffer {
            cfg,
            slots: vec![
                Slot {
                    ext: 0,
                    valid: false,
                    frame: MediaFrame::empty(),
                };
                SLOTS
            ]
            .into_boxed_slice(),
            ext: SeqExtender::new(),
            next: None,
            highest: None,
            playing: false,
            missing_run: 0,
            expected_ts: None,
            frame_samples: 960,
            stats: JitterStats::default(),
        }
    }

    /// Samples per frame of this stream at 48 kHz, as decoded.
    pub fn set_frame_samples(&mut self, samples: u32) {
        self.frame_samples = samples.clamp(120, 5760);
    }

    /// Forgets everything, for a new stream.
    pub fn reset(&mut self) {
        for s in self.slots.iter_mut() {
            s.valid = false;
        }
        self.ext = SeqExtender::new();
        self.next = None;
        self.highest = None;
        self.playing = false;
        self.missing_run = 0;
        self.expected_ts = None;
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Whether the stream is playing (not idle or filling).
    pub fn is_playing(&self) -> bool {
        self.playing
    }

    pub fn push(&mut self, frame: MediaFrame) {
        self.stats.received += 1;
        let e = self.ext.extend(frame.sequence);
        if let Some(next) = self.next {
            if e < next {
                self.stats.late += 1;
                return;
            }
            if e >= next + SLOTS as u64 {
                // Far ahead of playout (a long stall): start over from this packet.
                self.stats.resyncs += 1;
                self.clear_slots();
                self.next = Some(e);
                self.playing = false;
                self.missing_run = 0;
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
        slot.valid = true;
        slot.frame = frame;
        self.highest = Some(self.highest.map_or(e, |h| h.max(e)));
    }

    /// The next frame's playout decision. Call once per frame the decoder needs.
    pub fn pop(&mut self) -> Playout<'_> {
        let Some(next) = self.next else {
            return Playout::Idle;
        };
        if !self.playing {
            let buffered = self.highest.map_or(0, |h| h + 1 - next);
            if buffered < u64::from(self.cfg.target_frames.max(1)) {
                return Playout::Idle;
            }
            self.playing = true;
            self.missing_run = 0;
        }
        let step = self.frame_samples;
        let idx = (next % SLOTS as u64) as usize;
        if self.slots[idx].valid && self.slots[idx].ext == next {
            let (ts, marker) = (
                self.slots[idx].frame.timestamp,
                self.slots[idx].frame.marker,
            );
            // Frames lost before the server: the timestamp is ahead within a spurt.
            let ahead = self.expected_ts.map_or(0, |e| ts.wrapping_sub(e) as i32);
            let limit = i64::from(self.cfg.max_conceal_frames) * i64::from(step);
            if !marker && ahead >= step as i32 && i64::from(ahead) <= limit {
                self.expected_ts = self.expected_ts.map(|e| e.wrapping_add(step));
                if ahead == step as i32 {
                    self.stats.recovered_fec += 1;
                    return Playout::Fec(&self.slots[idx].frame.payload);
                }
                self.stats.concealed += 1;
                return Playout::Conceal;
            }
            self.next = Some(next + 1);
            self.slots[idx].valid = false;
            self.missing_run = 0;
            self.expected_ts = Some(ts.wrapping_add(step));
            self.stats.played += 1;
            return Playout::Packet(&self.slots[idx].frame.payload);
        }
        self.next = Some(next + 1);
        self.expected_ts = self.expected_ts.map(|e| e.wrapping_add(step));
        self.missing_run += 1;
        if self.missing_run > self.cfg.max_conceal_frames {
            // Nothing for a while: the talk spurt ended. Wait for the next one.
            self.playing = false;
            self.next = None;
            self.highest = None;
            self.missing_run = 0;
            self.expected_ts = None;
            return Playout::Idle;
        }
        let after = ((next + 1) % SLOTS as u64) as usize;
        if self.slots[after].valid && self.slots[after].ext == next + 1 {
            self.stats.recovered_fec += 1;
            return Playout::Fec(&self.slots[after].frame.payload);
        }
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

    fn f(seq: u16) -> MediaFrame {
        MediaFrame::new(1, seq, u32::from(seq) * 960, false, &[seq as u8]).unwrap()
    }

    fn run(jb: &mut JitterBuffer, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| match jb.pop() {
                Playout::Packet(p) => format!("P{}", p[0]),
                Playout::Fec(p) => format!("F{}", p[0]),
                Playout::Conceal => "C".into(),
                Playout::Idle => "-".into(),
            })
            .collect()
    }

    #[test]
    fn reorders_and_recovers() {
        let mut jb = JitterBuffer::new(JitterConfig {
            target_frames: 2,
            max_conceal_frames: 5,
        });
        assert_eq!(run(&mut jb, 1), vec!["-"]);
        jb.push(f(10));
        assert_eq!(run(&mut jb, 1), vec!["-"], "filling to 2");
        jb.push(f(12));
        jb.push(f(11));
        jb.push(f(14)); // 13 lost, 14 carries its FEC
        jb.push(f(11)); // duplicate
        assert_eq!(run(&mut jb, 5), vec!["P10", "P11", "P12", "F14", "P14"]);
        jb.push(f(12)); // late
        let s = jb.stats();
        assert_eq!(
            (s.played, s.recovered_fec, s.late, s.duplicate),
            (4, 1, 1, 1)
        );
    }

    #[test]
    fn goes_idle_after_a_spurt_and_restarts_on_the_next() {
        let mut jb = JitterBuffer::new(JitterConfig {
            target_frames: 1,
            max_conceal_frames: 2,
        });
        jb.push(f(65534));
        jb.push(f(65535));
        assert_eq!(run(&mut jb, 6), vec!["P254", "P255", "C", "C", "-", "-"]);
        // Next spurt, sequence wrapped.
        jb.push(f(0));
        jb.push(f(1));
        assert_eq!(run(&mut jb, 3), vec!["P0", "P1", "C"]);
    }

    #[test]
    fn loss_hidden_by_renumbering_is_found_by_timestamp() {
        // The server renumbered 10, 11, 12 consecutively, but the frame between the second
        // and third (timestamp 11 × 960) was lost before it: the third packet's timestamp is
        // one frame ahead, so that frame comes from its FEC; two frames ahead: conceal, FEC.
        let ts = |n: u32| n * 960;
        let mut jb = JitterBuffer::new(JitterConfig {
            target_frames: 1,
            max_conceal_frames: 5,
        });
        jb.push(MediaFrame::new(1, 10, ts(10), false, &[10]).unwrap());
        jb.push(MediaFrame::new(1, 11, ts(12), false, &[12]).unwrap());
        jb.push(MediaFrame::new(1, 12, ts(15), false, &[15]).unwrap());
        assert_eq!(
            run(&mut jb, 6),
            vec!["P10", "F12", "P12", "C", "F15", "P15"]
        );
        // A new talk spurt (marker) jumps ahead without anything being repaired.
        jb.push(MediaFrame::new(1, 13, ts(100), true, &[100]).unwrap());
        assert_eq!(run(&mut jb, 1), vec!["P100"]);
        let s = jb.stats();
        assert_eq!((s.played, s.recovered_fec, s.concealed), (4, 2, 1));
    }

    #[test]
    fn far_ahead_packet_resyncs() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        jb.push(f(1));
        assert_eq!(run(&mut jb, 1), vec!["P1"]);
        jb.push(f(1000));
        assert_eq!(jb.stats().resyncs, 1);
        assert_eq!(run(&mut jb, 1), vec!["P232"]); // 1000 as u8
    }
}
