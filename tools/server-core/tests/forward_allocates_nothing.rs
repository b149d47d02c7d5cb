//! The server's forwarding path allocates nothing per datagram: a counting global allocator
//! counts every allocation the test's thread makes while a speaker's packets are forwarded to
//! 50 listeners (after a first packet, which sizes the outbox once).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

#[path = "common/forwarding.rs"]
mod forwarding;

#[global_allocator]
static ALLOCATOR: stagebox_alloc_count::CountingAllocator = stagebox_alloc_count::CountingAllocator;

#[test]
fn forwarding_allocates_nothing_per_datagram() {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut f = forwarding::Forwarding::new(50, now);
    let mut packets = f.packets(2000);
    let (first, rest) = packets.split_first_mut().unwrap();
    assert_eq!(f.forward(now, first), 50, "every listener gets a copy");
    stagebox_alloc_count::count_this_thread(true);
    let mut copies = 0;
    for packet in rest.iter_mut() {
        copies += f.forward(now, packet);
    }
    stagebox_alloc_count::count_this_thread(false);
    assert_eq!(copies, 1999 * 50);
    assert_eq!(
        stagebox_alloc_count::allocations(),
        0,
        "allocations while forwarding {copies} datagrams"
    );
}
