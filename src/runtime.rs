//! The tokio runtimes, chosen in one place (as linkerd2-proxy's `rt.rs`).
//!
//! The control plane (discovery, admin, certificate watching, signals) runs on the main thread's
//! current-thread runtime. The data plane runs on worker threads, one per core by default, each
//! with a current-thread runtime of its own: a worker accepts from the shared listening sockets
//! and keeps its own upstream pools, so a client connection, the requests on it and the backend
//! connections serving them stay on one thread. Against one multi-thread runtime this measured
//! about a fifth less CPU per proxied request (no work stealing, no wakeups across threads; see
//! docs/engineering-notes.md), and a table rebuild of thousands of containers never
//! stalls a worker.

use std::io;
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::oneshot;
use tracing::info;

/// The control plane's runtime, driven by the thread that calls `block_on` on it.
pub fn control() -> io::Result<Runtime> {
    Builder::new_current_thread().enable_all().build()
}

/// The data-plane worker threads. Dropping this stops them: their runtimes end, and whatever
/// tasks are left on them are dropped.
pub struct Workers {
    handles: Vec<Handle>,
    threads: Vec<Thread>,
}

/// A worker thread, and the sender that tells it to stop.
type Thread = (oneshot::Sender<()>, JoinHandle<()>);

impl Workers {
    /// Starts `count` worker threads (0 = one per core the process may use: its CPU affinity
    /// and cgroup quota, as `available_parallelism` reads them), each running a current-thread
    /// runtime until dropped.
    ///
    /// One per core, as nginx's `worker_processes auto`: with the proxy pinned to k cores of its
    /// own, k workers served 37.6k, 78.4k and 135.9k requests/s at k = 1, 2, 4 (the 16-core
    /// entries of benches/results/RESULTS.md, 2026-12-04 17:48), so each core added is used;
    /// on the 2-core shared bench, two workers did as well as one (0.97–1.05×), so nothing is
    /// lost where the proxy shares its cores.
    pub fn start(count: usize) -> io::Result<Workers> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let count = if count == 0 { cores } else { count };
        let mut workers = Workers {
            handles: Vec::with_capacity(count),
            threads: Vec::with_capacity(count),
        };
        for index in 0..count {
            let (handle, thread) = worker(index)?;
            workers.handles.push(handle);
            workers.threads.push(thread);
        }
        info!(workers = count, cores, "worker runtimes started");
        Ok(workers)
    }

    /// One handle per worker, to spawn its listeners' accept loops on.
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // All are told first, so that they wind down together.
        let threads: Vec<JoinHandle<()>> = self
            .threads
            .drain(..)
            .map(|(stop, thread)| {
                let _ = stop.send(());
                thread
            })
            .collect();
        for thread in threads {
            // A worker that panicked has already printed why; the others still get joined.
            let _ = thread.join();
        }
    }
}

/// Spawns one worker thread and waits until its runtime is built.
fn worker(index: usize) -> io::Result<(Handle, Thread)> {
    let (stop, stopped) = oneshot::channel::<()>();
    let (ready, handle) = mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name(format!("dockhand-worker-{index}"))
        .spawn(move || {
            let runtime = match Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            let _ = ready.send(Ok(runtime.handle().clone()));
            // A current-thread runtime runs its tasks only inside `block_on`: this thread stays
            // there until told to stop (or until `Workers` is gone and the sender with it).
            let _ = runtime.block_on(stopped);
        })?;
    let handle = handle
        .recv()
        .map_err(|_| io::Error::other("worker thread exited before starting its runtime"))??;
    Ok((handle, (stop, thread)))
}
