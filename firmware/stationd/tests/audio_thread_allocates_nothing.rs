//! The audio thread allocates nothing once started: every allocation made on that thread after
//! `on_started` is counted — Rust's (a counting global allocator) and the C libraries'
//! (libopus, the WebRTC processing module: `malloc` and its kin stand in for glibc's, see
//! `stagebox-alloc-count`) — while the thread captures, processes (echo cancellation, noise
//! suppression, gain control), encodes, decodes two incoming speakers, mixes and plays for
//! 3000 periods (30 s of audio, unpaced).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::Ordering;

mod common;
use common::AudioRig;

#[global_allocator]
static ALLOCATOR: stagebox_alloc_count::CountingAllocator = stagebox_alloc_count::CountingAllocator;

#[test]
fn audio_thread_allocates_nothing_after_start_up() {
    assert!(
        stagebox_alloc_count::c_library_is_counted(),
        "the C library's allocations would not be counted: the test would prove nothing"
    );
    let mut rig = AudioRig::start(|| stagebox_alloc_count::count_this_thread(true));
    rig.serve_until(3000);
    let shared = rig.shared.clone();
    let sent = rig.sent;
    rig.stop();
    let played = shared.playout.played.load(Ordering::SeqCst);
    assert!(sent > 100, "the capture path sent {sent} frames");
    assert!(played > 200, "the playout path played {played} frames");
    assert_eq!(
        stagebox_alloc_count::rust_allocations(),
        0,
        "the audio thread allocated (Rust) after start-up"
    );
    assert_eq!(
        stagebox_alloc_count::allocations(),
        0,
        "the audio thread allocated (malloc: Rust, libopus or the processing module) after start-up"
    );
}
