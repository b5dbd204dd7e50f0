//! The allocator, for both daemons: the settings that keep a kiosk's resident memory small
//! (the target is 15 MB with hundreds of cached creatives), and a trim of freed pages that
//! the agent calls after its media cache let go of megabytes and the server after it built
//! thousands of schedule documents.
//!
//! The kiosk's settings ([`tune_allocator`]): glibc, left alone, raises its mmap threshold
//! each time a large block is freed, so sled's segment and leaf buffers end up in the heap and
//! their pages stay resident after they are freed; and it gives every busy thread an arena
//! of its own. A fixed threshold sends large blocks to mmap, which returns them to the
//! system on free; two arenas serve the agent's few busy threads. Measured with
//! `cargo bench -p agent --bench memory` (README). Other platforms keep their defaults.
//!
//! The server keeps glibc's defaults (its threads allocate in parallel) and trims after
//! large rounds of publishing ([`trim_heap`]): at 11,000 screens, 530 MiB resident after
//! the start's documents were built and sent, 220 MiB after the trim (`scripts/bench-city.sh`).

/// Large blocks from this size on are mapped on their own and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: libc::c_int = 2;

/// Call first thing in `main`, before any thread starts.
#[allow(unsafe_code)]
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread
    // exists, as glibc asks, and its arguments are valid parameter numbers and values.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Hands freed heap pages back to the system. glibc trims only the top of each arena;
/// `malloc_trim` releases every free page wherever it sits. Called after the media cache let
/// go of megabytes of pages, and after the server built and dropped a city's documents.
#[allow(unsafe_code)]
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no
    // preconditions and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
