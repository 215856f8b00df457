//! The tokio runtime, chosen in one place (as linkerd2-proxy's `rt.rs`).

use tracing::info;

/// A current-thread runtime on one core, otherwise multi-threaded with one worker per core
/// (or `workers` when non-zero).
pub fn build(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = if workers == 0 { cores } else { workers };
    let runtime = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("dockhand-worker")
            .enable_all()
            .build()?
    };
    info!(workers, cores, "runtime started");
    Ok(runtime)
}
