//! The `provsten` binary: the allocator, then [`provsten::main`].

use std::process::ExitCode;

/// jemalloc, as glibc's malloc keeps most of what a burst of proxied connections freed (the
/// fault proxy's RSS stayed at about twice its starting point).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: its background thread (the crate's
/// `background_threads` feature) gives dirty pages back to the system within about
/// `dirty_decay_ms`, then at once (`muzzy_decay_ms:0`, since pages merely marked free with
/// `MADV_FREE` still count as resident). `provsten bench proxy`: resident memory back to
/// 1.04× its starting point within about a second of closing 1000 idle connections.
// SAFETY: the symbol jemalloc reads as `const char *malloc_conf` (prefixed, as the crate
// builds it); a reference to the first byte of a NUL-terminated static string is such a
// pointer, and nothing else defines the symbol.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &u8 = &b"dirty_decay_ms:500,muzzy_decay_ms:0\0"[0];

fn main() -> ExitCode {
    provsten::main()
}
