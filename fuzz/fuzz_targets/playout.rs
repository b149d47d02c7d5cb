//! What a hostile or broken sender can put in front of the listener: arbitrary sequences of
//! frames (any SSRC, sequence number, timestamp, marker, plain or redundant audio, payload
//! bytes and arrival time) into the playout path's jitter buffers and Opus decoders,
//! interleaved with playout periods at arbitrary times. Nothing may panic, and every period is produced.
#![no_main]
use std::sync::OnceLock;
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use stagebox_audio::frame::{MediaFrame, PERIOD_SAMPLES};
use stagebox_audio::jitter::JitterConfig;
use stagebox_audio::pipeline::PlayoutPath;

fn path() -> &'static Mutex<Option<PlayoutPath>> {
    static PATH: OnceLock<Mutex<Option<PlayoutPath>>> = OnceLock::new();
    PATH.get_or_init(|| Mutex::new(None))
}

fn take<const N: usize>(data: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = data.split_first_chunk::<N>()?;
    *data = rest;
    Some(*head)
}

fuzz_target!(|input: &[u8]| {
    let Ok(mut guard) = path().lock() else { return };
    // Decoders are costly to make: one path, reset between inputs by a fresh one only when
    // absent (streams are taken over by new SSRCs as a real listener's would be).
    let play = guard.get_or_insert_with(|| PlayoutPath::new(JitterConfig::default()).unwrap());
    let mut data = input;
    let mut now = 0u64;
    let mut out = [0i16; PERIOD_SAMPLES];
    while let Some([op]) = take::<1>(&mut data) {
        if op & 1 == 0 {
            let Some(h) = take::<12>(&mut data) else { break };
            let len = usize::from(op >> 1).min(data.len());
            let (payload, rest) = data.split_at(len);
            data = rest;
            let ssrc = u32::from(h[0] % 12);
            let seq = u16::from_le_bytes([h[1], h[2]]);
            let ts = u32::from_le_bytes([h[3], h[4], h[5], h[6]]);
            let arrival = now.wrapping_add(u64::from(u32::from_le_bytes([h[7], h[8], h[9], h[10]])));
            if let Some(frame) = MediaFrame::new(ssrc, seq, ts, h[11] & 1 == 1, payload) {
                play.push(frame.with_redundancy(h[11] & 2 == 2), arrival);
            }
        } else {
            now = now.wrapping_add(u64::from(op >> 1) * 1000);
            play.next_period(now, &mut out);
        }
    }
});
