//! # stagebox-alloc-count — does this path allocate?
//!
//! A global allocator that counts allocations (and reallocations) while counting is on, for
//! the tests and benchmarks that show a real-time or per-packet path allocates nothing: the
//! station's audio thread, the server's forwarding. Counting is switched on for the whole
//! process ([`count_everywhere`]) or for the calling thread only ([`count_this_thread`]).
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: stagebox_alloc_count::CountingAllocator =
//!     stagebox_alloc_count::CountingAllocator;
//! ```
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static EVERYWHERE: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static THIS_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Counts every allocation in the whole process while `on`.
pub fn count_everywhere(on: bool) {
    EVERYWHERE.store(on, Ordering::SeqCst);
}

/// Counts every allocation the calling thread makes while `on`.
pub fn count_this_thread(on: bool) {
    THIS_THREAD.with(|c| c.set(on));
}

/// Allocations counted so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::SeqCst)
}

/// Starts the count again from zero.
pub fn reset() {
    ALLOCATIONS.store(0, Ordering::SeqCst);
}

fn count() {
    // `try_with`: a thread being torn down has no thread-locals left, and allocates anyway.
    if EVERYWHERE.load(Ordering::Relaxed) || THIS_THREAD.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
    }
}

/// The system allocator, counting (see the crate docs).
pub struct CountingAllocator;

// SAFETY: every call is passed to the system allocator unchanged; counting touches only
// atomics and a const-initialised thread-local, neither of which allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` and `layout` come from this allocator, which is the system's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` come from this allocator, which is the system's.
        unsafe { System.dealloc(ptr, layout) }
    }
}
