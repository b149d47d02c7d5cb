//! The audio thread allocates nothing once started: a counting global allocator counts every
//! allocation made on that thread after `on_started`, while the thread captures, processes
//! (echo cancellation, noise suppression, gain control), encodes, decodes two incoming
//! speakers, mixes and plays for 3000 periods (30 s of audio, unpaced).
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

mod common;
use common::AudioRig;

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

#[test]
fn audio_thread_allocates_nothing_after_start_up() {
    let mut rig = AudioRig::start(|| COUNTING.with(|c| c.set(true)));
    rig.serve_until(3000);
    let shared = rig.shared.clone();
    let sent = rig.sent;
    rig.stop();
    let played = shared.playout.played.load(Ordering::SeqCst);
    assert!(sent > 100, "the capture path sent {sent} frames");
    assert!(played > 200, "the playout path played {played} frames");
    assert_eq!(
        ALLOCATIONS.load(Ordering::SeqCst),
        0,
        "the audio thread allocated after start-up"
    );
}
