//! The daemon's use of the C allocator (glibc's malloc) while it streams images: pulls and loads hand
//! hundreds of megabytes through buffers of a few hundred KiB (hyper's reads, the unpacker's chunks).
//!
//! With glibc's defaults, freeing such a buffer at the top of a thread's heap gives its pages back to
//! the kernel at once (the trim threshold follows the biggest buffer freed, here under 1 MiB), and the
//! next buffer faults and zeroes them again: a 512 MB `load` spent a fifth of its kernel time on that
//! (`madvise`, page faults, `clear_page`). So the daemon raises the trim threshold, and gives what is
//! free back itself once a stream ends ([`give_back`]).

/// Buffers up to this size come from the heap, not from a mapping of their own (glibc's own ceiling).
#[cfg(target_env = "gnu")]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;
/// Free memory at the top of a heap is kept up to this size while the daemon works.
#[cfg(target_env = "gnu")]
const TRIM_THRESHOLD: libc::c_int = 64 << 20;

/// Sets the allocator up for streaming; call before any thread starts.
pub fn tune_allocator() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes the allocator's parameters; it is called before other threads run.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Gives the free memory of every heap back to the kernel: after a pull, a load or a build, whose
/// buffers the raised trim threshold would otherwise keep.
pub(crate) fn give_back() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim is thread-safe (it locks each arena) and touches no memory of ours.
    unsafe {
        libc::malloc_trim(0);
    }
}
