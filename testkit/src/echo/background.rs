//! An echo server on its own thread, for tests that want a backend without Docker.

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::{Config, Server};

/// An echo server running on its own thread and single-threaded runtime, so it serves whatever
/// the test thread does (including blocking on [`crate::http::Request::send`]). Dropping it stops
/// the server gracefully and joins the thread.
#[derive(Debug)]
pub struct Running {
    http_addrs: Vec<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Binds `config` on a new thread and serves until the returned handle is dropped.
///
/// # Errors
/// The runtime or a listener could not start (e.g. a port in use).
pub fn spawn(config: Config) -> io::Result<Running> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("echo-backend".to_owned())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                let server = match Server::bind(&config).await {
                    Ok(server) => server,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok((server.http_addrs(), server.tls_addr())));
                // Dropping the sender (the handle) stops the server just as sending does.
                server
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        })?;
    match ready_rx.recv() {
        Ok(Ok((http_addrs, tls_addr))) => Ok(Running {
            http_addrs,
            tls_addr,
            stop: Some(stop),
            thread: Some(thread),
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::other(
            "the echo server thread died while starting",
        )),
    }
}

impl Running {
    /// The first plain-HTTP address, as `127.0.0.1:port` (the listener itself is on all
    /// addresses).
    ///
    /// # Panics
    /// If the config had no plain-HTTP port.
    pub fn addr(&self) -> SocketAddr {
        let first = self
            .http_addrs
            .first()
            .unwrap_or_else(|| panic!("the echo server has no plain-HTTP port"));
        SocketAddr::from(([127, 0, 0, 1], first.port()))
    }

    /// Every plain-HTTP listener address, in [`Config::ports`] order.
    pub fn http_addrs(&self) -> &[SocketAddr] {
        &self.http_addrs
    }

    /// The TLS port as `127.0.0.1:port`, if the config had one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
            .map(|a| SocketAddr::from(([127, 0, 0, 1], a.port())))
    }

    /// Stops the server, letting in-flight requests finish (within the drain timeout), and waits
    /// for its thread. Dropping the handle does the same.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread was already printed by the panic hook.
            let _ = thread.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
    }
}
