//! Handing the heap's free pages back to the kernel after a rotation (docs/reliability.md,
//! "What grew (issue 24)").
//!
//! A rotation allocates a few kilobytes that it frees again (the decoded gRPC message, the
//! parsed certificates, the rendered PEM, paths and log fields) around the few objects that
//! live until the next one (the new SVID). The bytes in use stay constant, but glibc's
//! allocator places the short-lived blocks wherever the free lists have room, and over hours
//! it touches, one page at a time, more of the heap it already mapped: resident memory creeps
//! although nothing leaks. `malloc_trim(0)` returns every whole free page of every arena
//! (`madvise(MADV_DONTNEED)` since glibc 2.8), so what stays resident is what is in use.

/// Returns the free pages of glibc's heaps to the kernel. A no-op on other C libraries.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn trim() {
    #[expect(unsafe_code, reason = "a libc call with no pointer arguments")]
    // SAFETY: malloc_trim takes a size and touches only the allocator's own state, under its
    // locks; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Returns the free pages of glibc's heaps to the kernel. A no-op on other C libraries.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn trim() {}
