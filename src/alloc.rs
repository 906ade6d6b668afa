//! The allocator's settings for a long-lived daemon, the crate's only unsafe code.
//!
//! glibc's malloc starts with a 128 KiB threshold above which blocks are mapped on their own
//! (and unmapped when freed), and returns the top of its heap to the system once 128 KiB of it
//! are free. Each time a mapped block is freed it raises both thresholds to that block's size,
//! up to 32 MiB: after one long stream, whose transcript text and read buffers were such blocks,
//! blocks of that size come from the heap instead and stay with the process when freed. A
//! daemon outlives many streams, so it fixes both at glibc's starting values.
//!
//! Elsewhere than on glibc these do nothing.
#![allow(unsafe_code)]

/// Where blocks are mapped on their own, and how much free top of heap goes back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const THRESHOLD: libc::c_int = 128 * 1024;

/// Fixes the mmap and trim thresholds (at start-up, before the runtime's threads).
pub fn settle_for_a_daemon() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` takes plain integers and changes only malloc's own parameters, under
    // malloc's own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, THRESHOLD);
    }
}

/// Returns the free pages of every arena to the system, not only the heap's top: after
/// something large left memory (a session's transcript parked on disk).
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes a plain integer and only releases pages malloc holds free,
    // under each arena's lock.
    unsafe {
        libc::malloc_trim(0);
    }
}
