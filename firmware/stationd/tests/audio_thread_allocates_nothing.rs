//! The audio thread allocates nothing once started: a counting global allocator counts every
//! allocation made on that thread after `on_started`, while the thread captures, encodes,
//! decodes two incoming speakers, mixes and plays for 3000 periods (30 s of audio, unpaced).
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use stagebox_audio::frame::{FrameDuration, PERIOD_SAMPLES};
use stagebox_audio::jitter::JitterConfig;
use stagebox_audio::pipeline::{CaptureConfig, CapturePath, PlayoutPath};
use stagebox_hal::StreamFormat;
use stagebox_hal::sim::{SimCapture, SimPlayback};
use stagebox_stationd::audio_thread::{self, AudioShared, Received};

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

struct CountingAllocator;

fn count() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
    }
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Speech-like test signal: 300 Hz bursts, 700 ms on, 300 ms off.
fn bursts(seconds: usize) -> Vec<i16> {
    (0..seconds * 48_000)
        .map(|i| {
            if i % 48_000 < 33_600 {
                (6000.0 * (2.0 * std::f32::consts::PI * 300.0 * i as f32 / 48_000.0).sin()) as i16
            } else {
                0
            }
        })
        .collect()
}

#[test]
fn audio_thread_allocates_nothing_after_start_up() {
    const PERIODS: u64 = 3000;
    let mut capture = SimCapture::new(StreamFormat::mono(), bursts(40), false).autoplay();
    let mut playback = SimPlayback::discard(StreamFormat::mono());
    // The whole chain: beamforming, echo cancellation, noise suppression, gain control.
    let mut capture_config = CaptureConfig::new(FrameDuration::Ms20);
    capture_config.processing = Some(stagebox_audio::ApmConfig::default());
    let mut capture_path = CapturePath::new(capture_config, 0).unwrap();
    let mut playout = PlayoutPath::new(JitterConfig::default()).unwrap();
    let (mut audio_ends, mut net_ends) = audio_thread::queues().unwrap();
    let shared = Arc::new(AudioShared::default());
    shared.transmit.store(true, Ordering::SeqCst);
    shared.ssrc.store(7, Ordering::SeqCst);
    shared.priority.store(100, Ordering::SeqCst);

    let thread_shared = shared.clone();
    let audio = std::thread::spawn(move || {
        let result = audio_thread::run(
            &mut capture,
            &mut playback,
            &[0],
            &[],
            &mut capture_path,
            &mut playout,
            &mut audio_ends,
            &thread_shared,
            || COUNTING.with(|c| c.set(true)),
        );
        COUNTING.with(|c| c.set(false));
        result
    });

    // The network side: what the station sends comes back as speaker 100 (as if forwarded),
    // and a second speaker 200 talks too, so two streams are decoded and mixed with ducking.
    let mut other = CapturePath::new(CaptureConfig::new(FrameDuration::Ms10), 0).unwrap();
    let other_signal = bursts(1);
    let (mut seq_a, mut seq_b, mut sent, mut period) = (0u16, 0u16, 0u64, 0usize);
    while shared.periods.load(Ordering::SeqCst) < PERIODS {
        while let Some(mut frame) = net_ends.from_audio.dequeue() {
            frame.ssrc = 100;
            frame.sequence = seq_a;
            seq_a = seq_a.wrapping_add(1);
            sent += 1;
            let arrival_us = shared.now_us();
            let _ = net_ends.to_audio.enqueue(Received { frame, arrival_us });
        }
        if net_ends.to_audio.len() < 8 {
            let start = (period * PERIOD_SAMPLES) % (other_signal.len() - PERIOD_SAMPLES);
            if let Some(out) = other
                .push_period(&other_signal[start..start + PERIOD_SAMPLES], true, 200)
                .unwrap()
                && let Some(mut frame) = out.frame
            {
                frame.sequence = seq_b;
                seq_b = seq_b.wrapping_add(1);
                let arrival_us = shared.now_us();
                let _ = net_ends.to_audio.enqueue(Received { frame, arrival_us });
            }
            period += 1;
        }
        while net_ends.events.dequeue().is_some() {}
        std::thread::yield_now();
    }
    shared.running.store(false, Ordering::SeqCst);
    audio.join().unwrap().unwrap();

    let played = shared.playout.played.load(Ordering::SeqCst);
    assert!(sent > 100, "the capture path sent {sent} frames");
    assert!(played > 200, "the playout path played {played} frames");
    assert_eq!(
        ALLOCATIONS.load(Ordering::SeqCst),
        0,
        "the audio thread allocated after start-up"
    );
}
