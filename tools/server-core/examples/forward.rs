//! `cargo xtask bench forward`: how fast the server core forwards a speaker's packets to its
//! listeners (authenticate, check the stage, seal a copy per listener), and how many
//! allocations each forwarded datagram costs. One core, no sockets: the floor the work on
//! scale starts from. Prints one JSON object.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// A benchmark reads the clock: it measures, it decides nothing.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

#[path = "../tests/common/forwarding.rs"]
mod forwarding;

#[global_allocator]
static ALLOCATOR: stagebox_alloc_count::CountingAllocator = stagebox_alloc_count::CountingAllocator;

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
        stagebox_alloc_count::reset();
        stagebox_alloc_count::count_everywhere(true);
        let start = Instant::now();
        let mut copies = 0usize;
        for packet in &mut batch[1..] {
            copies += f.forward(now, packet);
        }
        let elapsed = start.elapsed().as_secs_f64();
        stagebox_alloc_count::count_everywhere(false);
        let allocations = stagebox_alloc_count::allocations();
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
