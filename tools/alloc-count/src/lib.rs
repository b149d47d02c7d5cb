//! # stagebox-alloc-count — does this path allocate?
//!
//! Counts allocations (and reallocations) while counting is on, for the tests and benchmarks
//! that show a real-time or per-packet path allocates nothing: the station's audio thread, the
//! server's forwarding. Counting is switched on for the whole process ([`count_everywhere`])
//! or for the calling thread only ([`count_this_thread`]).
//!
//! Two counts: [`rust_allocations`], by a global allocator ([`CountingAllocator`]), and
//! [`allocations`], every allocation made through the C library — `malloc`, `calloc`,
//! `realloc`, `posix_memalign`, `aligned_alloc`, `memalign`, defined here so that they stand
//! in for glibc's in the whole process (a program's own definitions come first where the
//! dynamic linker looks, so libopus and the WebRTC processing module, which allocate with
//! `malloc` and C++'s `new`, call these), counted, and passed on to glibc's own
//! (`__libc_malloc`, …). Rust's allocations go through `malloc` too, so [`allocations`]
//! counts them as well. [`c_library_is_counted`] checks that the stand-ins are in place.
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

static RUST_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Allocations counted so far through the C library: Rust's and C and C++ code's alike.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::SeqCst)
}

/// Allocations counted so far through Rust's global allocator alone.
pub fn rust_allocations() -> u64 {
    RUST_ALLOCATIONS.load(Ordering::SeqCst)
}

/// Starts the counts again from zero.
pub fn reset() {
    ALLOCATIONS.store(0, Ordering::SeqCst);
    RUST_ALLOCATIONS.store(0, Ordering::SeqCst);
}

/// Whether counting is on for this allocation. `try_with`: a thread being torn down has no
/// thread-locals left, and allocates anyway.
fn counting() -> bool {
    EVERYWHERE.load(Ordering::Relaxed) || THIS_THREAD.try_with(Cell::get).unwrap_or(false)
}

/// One more allocation on `counter`, while counting is on.
fn count(counter: &AtomicU64) {
    if counting() {
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// Whether a C allocation made outside Rust is counted here (the stand-ins for `malloc`
/// are the ones the process uses): `strdup` allocates inside the C library itself. The count
/// is left as it was (call it before counting starts elsewhere).
pub fn c_library_is_counted() -> bool {
    let was = THIS_THREAD.with(Cell::get);
    THIS_THREAD.with(|c| c.set(true));
    let before = allocations();
    // SAFETY: `strdup` copies a valid NUL-terminated string into memory from `malloc`, which
    // is freed right after with `free`.
    unsafe {
        let copy = c::strdup(c"stagebox".as_ptr());
        c::free(copy.cast());
    }
    let counted = allocations() > before;
    THIS_THREAD.with(|c| c.set(was));
    ALLOCATIONS.store(before, Ordering::SeqCst);
    counted
}

/// glibc's own allocator, under the names it exports for programs that stand in for it.
mod c {
    use std::ffi::{c_char, c_void};
    unsafe extern "C" {
        pub fn __libc_malloc(size: usize) -> *mut c_void;
        pub fn __libc_calloc(n: usize, size: usize) -> *mut c_void;
        pub fn __libc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
        pub fn __libc_memalign(align: usize, size: usize) -> *mut c_void;
        pub fn strdup(s: *const c_char) -> *mut c_char;
        pub fn free(ptr: *mut c_void);
    }
}

/// `malloc`, counted (see the crate docs).
///
/// # Safety
/// As the C library's `malloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc(size: usize) -> *mut std::ffi::c_void {
    count(&ALLOCATIONS);
    // SAFETY: passed on unchanged to glibc's allocator.
    unsafe { c::__libc_malloc(size) }
}

/// `calloc`, counted.
///
/// # Safety
/// As the C library's `calloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut std::ffi::c_void {
    count(&ALLOCATIONS);
    // SAFETY: passed on unchanged to glibc's allocator.
    unsafe { c::__libc_calloc(n, size) }
}

/// `realloc`, counted.
///
/// # Safety
/// As the C library's `realloc`: `ptr` is null or came from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(ptr: *mut std::ffi::c_void, size: usize) -> *mut std::ffi::c_void {
    count(&ALLOCATIONS);
    // SAFETY: passed on unchanged to glibc's allocator, which made `ptr`.
    unsafe { c::__libc_realloc(ptr, size) }
}

/// `memalign`, counted.
///
/// # Safety
/// As the C library's `memalign`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut std::ffi::c_void {
    count(&ALLOCATIONS);
    // SAFETY: passed on unchanged to glibc's allocator.
    unsafe { c::__libc_memalign(align, size) }
}

/// `aligned_alloc`, counted.
///
/// # Safety
/// As the C library's `aligned_alloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut std::ffi::c_void {
    count(&ALLOCATIONS);
    // SAFETY: passed on unchanged to glibc's allocator.
    unsafe { c::__libc_memalign(align, size) }
}

/// `posix_memalign`, counted.
///
/// # Safety
/// As the C library's `posix_memalign`: `out` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_memalign(
    out: *mut *mut std::ffi::c_void,
    align: usize,
    size: usize,
) -> std::ffi::c_int {
    const EINVAL: std::ffi::c_int = 22;
    const ENOMEM: std::ffi::c_int = 12;
    if !align.is_power_of_two() || align % std::mem::size_of::<usize>() != 0 {
        return EINVAL;
    }
    count(&ALLOCATIONS);
    // SAFETY: passed on to glibc's allocator; `out` is the caller's to be written.
    unsafe {
        let p = c::__libc_memalign(align, size);
        if p.is_null() && size != 0 {
            return ENOMEM;
        }
        *out = p;
    }
    0
}

/// The system allocator, counting (see the crate docs).
pub struct CountingAllocator;

// SAFETY: every call is passed to the system allocator unchanged; counting touches only
// atomics and a const-initialised thread-local, neither of which allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(&RUST_ALLOCATIONS);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(&RUST_ALLOCATIONS);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(&RUST_ALLOCATIONS);
        // SAFETY: `ptr` and `layout` come from this allocator, which is the system's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` come from this allocator, which is the system's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_in_the_c_library_are_counted() {
        assert!(c_library_is_counted());
    }
}
