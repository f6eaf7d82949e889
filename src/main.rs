/// jemalloc gives freed memory back to the system: after a burst of 2000 streams, glibc's
/// malloc kept the whole peak as fragmented free space (see bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options: one background thread returns pages unused for a second, so
/// memory falls back even when no request comes to trigger it.
#[allow(non_upper_case_globals)] // the name jemalloc looks up
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] =
    b"background_thread:true,max_background_threads:1,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> std::process::ExitCode {
    glm_proxy::cli::main()
}
