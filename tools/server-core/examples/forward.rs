//! `cargo xtask bench forward`: how fast the server core forwards a speaker's packets to its
//! listeners (authenticate, check the stage, seal a copy per listener), and how many
//! allocations each forwarded datagram costs. One core, no sockets: the floor the work on
//! scale starts from. Prints one JSON object.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// A benchmark reads the clock: it measures, it decides nothing.
#![allow(clippy::disallowed_methods)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

#[path = "../tests/common/forwarding.rs"]
mod forwarding;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

struct CountingAllocator;

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn main() {
    let mut results = Vec::new();
    for listeners in [1u16, 10, 50, 200] {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let mut f = forwarding::Forwarding::new(listeners, now);
        let packets = f.packets(u16::MAX);
        // Each packet can be forwarded once (replay window): a fresh copy per round.
        let rounds = (200_000 / usize::from(listeners)).clamp(1, usize::from(u16::MAX) - 1);
        let mut batch: Vec<Vec<u8>> = packets[..rounds + 1].to_vec();
        f.forward(now, &mut batch[0]);
        ALLOCATIONS.store(0, Ordering::SeqCst);
        COUNTING.store(true, Ordering::SeqCst);
        let start = Instant::now();
        let mut copies = 0usize;
        for packet in &mut batch[1..] {
            copies += f.forward(now, packet);
        }
        let elapsed = start.elapsed().as_secs_f64();
        COUNTING.store(false, Ordering::SeqCst);
        let allocations = ALLOCATIONS.load(Ordering::SeqCst);
        results.push(format!(
            "{{\"listeners\":{listeners},\"packets_in\":{rounds},\"datagrams_out\":{copies},\
             \"seconds\":{elapsed:.4},\"datagrams_per_second_per_core\":{:.0},\
             \"packets_in_per_second_per_core\":{:.0},\"us_per_packet_in\":{:.3},\
             \"allocations_per_datagram\":{:.4}}}",
            copies as f64 / elapsed,
            rounds as f64 / elapsed,
            elapsed * 1e6 / rounds as f64,
            allocations as f64 / copies.max(1) as f64
        ));
    }
    println!("{{\"fanouts\":[{}]}}", results.join(","));
}
