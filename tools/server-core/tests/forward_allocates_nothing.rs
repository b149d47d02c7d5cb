//! The server's forwarding path allocates nothing per datagram: a counting global allocator
//! counts every allocation made while a speaker's packets are forwarded to 50 listeners (after
//! a first packet, which sizes the outbox once).
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

#[path = "common/forwarding.rs"]
mod forwarding;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

struct CountingAllocator;

fn count() {
    if COUNTING.load(Ordering::SeqCst) {
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
fn forwarding_allocates_nothing_per_datagram() {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut f = forwarding::Forwarding::new(50, now);
    let mut packets = f.packets(2000);
    let (first, rest) = packets.split_first_mut().unwrap();
    assert_eq!(f.forward(now, first), 50, "every listener gets a copy");
    COUNTING.store(true, Ordering::SeqCst);
    let mut copies = 0;
    for packet in rest.iter_mut() {
        copies += f.forward(now, packet);
    }
    COUNTING.store(false, Ordering::SeqCst);
    assert_eq!(copies, 1999 * 50);
    assert_eq!(
        ALLOCATIONS.load(Ordering::SeqCst),
        0,
        "allocations while forwarding {copies} datagrams"
    );
}
