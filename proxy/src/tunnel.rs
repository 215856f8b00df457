//! Upgraded connections (WebSocket and other `Upgrade` protocols) bridged to their backend, and
//! their drain on shutdown.
//!
//! Once hyper hands a connection over to an upgrade, its graceful shutdown no longer sees it, so
//! the tunnels of a listener are tracked here: the listener waits for them after its HTTP
//! connections, and cuts whatever is left when the grace period runs out. A tunnel keeps its
//! client connection's slot under the connection limit while it lives, and closes once no byte
//! has moved either way for the idle timeout (`DOCKHAND_TUNNEL_IDLE_TIMEOUT`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::InspectReader;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::table::InFlight;

/// The open tunnels of one listener (cheap to clone), and the signal that cuts them and the
/// listener's remaining connections once the grace period is over.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tunnels {
    tracker: TaskTracker,
    cut: CancellationToken,
}

/// One tunnel to open: the client's side and the backend's, once their upgrades complete.
pub(crate) struct Tunnel<B, H> {
    /// The client connection's upgrade.
    pub(crate) client: OnUpgrade,
    /// The backend's stream, once its connection has handed it over.
    pub(crate) backend: B,
    /// The backend's address (logs).
    pub(crate) addr: SocketAddr,
    /// Counts the tunnel as in flight on its backend (`least_conn`).
    pub(crate) in_flight: InFlight,
    /// Kept while the tunnel lives (the client connection's slot).
    pub(crate) hold: H,
    /// No byte either way for this long closes the tunnel; zero: never.
    pub(crate) idle_timeout: Duration,
}

impl Tunnels {
    /// Bridges the tunnel's two sides once both upgrades complete, in a tracked task.
    pub(crate) fn open<B, S, H>(&self, tunnel: Tunnel<B, H>)
    where
        B: Future<Output = io::Result<S>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Send + 'static,
    {
        let cut = self.cut.clone();
        let addr = tunnel.addr;
        self.tracker.spawn(async move {
            tokio::select! {
                () = bridge(tunnel) => {}
                () = cut.cancelled() => tracing::debug!(backend = %addr, "tunnel cut at shutdown"),
            }
        });
    }

    /// Tunnels currently open.
    pub(crate) fn len(&self) -> usize {
        self.tracker.len()
    }

    /// Waits until every tunnel has closed. Tunnels opened meanwhile (by requests still being
    /// answered) are waited for too.
    pub(crate) async fn drain(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Ends every tunnel (and anything else waiting on [`Tunnels::cut_signal`]) now.
    pub(crate) fn cut(&self) {
        self.cut.cancel();
    }

    /// Completes once [`Tunnels::cut`] is called.
    pub(crate) fn cut_signal(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.cut.clone().cancelled_owned()
    }
}

/// Copies bytes both ways between the upgraded client and backend connections until either
/// side closes, or nothing has moved for the idle timeout. The tunnel counts as in flight for
/// `least_conn`, keeps its client connection's slot, and holds no table reference, so a table
/// swap never cuts it.
async fn bridge<B, S, H>(tunnel: Tunnel<B, H>)
where
    B: Future<Output = io::Result<S>>,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Tunnel {
        client,
        backend,
        addr,
        in_flight: _in_flight,
        hold: _hold,
        idle_timeout,
    } = tunnel;
    let (client, backend) = match tokio::join!(client, backend) {
        (Ok(client), Ok(backend)) => (client, backend),
        (Err(e), _) => {
            tracing::debug!(backend = %addr, error = %e, "client upgrade did not complete");
            return;
        }
        (_, Err(e)) => {
            tracing::debug!(backend = %addr, error = %e, "backend upgrade did not complete");
            return;
        }
    };
    // Every byte that moves is read first: noting reads that brought bytes is enough.
    let moved = Moved::default();
    let note = |read: &[u8]| {
        if !read.is_empty() {
            moved.now();
        }
    };
    let mut client = InspectReader::new(TokioIo::new(client), note);
    let mut backend = InspectReader::new(backend, note);
    let copy = tokio::io::copy_bidirectional(&mut client, &mut backend);
    let ended = match idle_timeout.is_zero() {
        true => Some(copy.await),
        false => until_idle(copy, &moved, idle_timeout).await,
    };
    match ended {
        Some(Ok((up, down))) => tracing::debug!(backend = %addr, up, down, "tunnel closed"),
        Some(Err(e)) => tracing::debug!(backend = %addr, error = %e, "tunnel failed"),
        None => tracing::debug!(backend = %addr, ?idle_timeout, "idle tunnel closed"),
    }
}

/// The outcome of `copy`, or `None` once no byte has moved for `timeout`. One sleep, moved to
/// the last byte's time plus `timeout` whenever it fires early: nothing is done per byte but
/// noting the time in [`Moved`].
async fn until_idle<F: Future>(copy: F, moved: &Moved, timeout: Duration) -> Option<F::Output> {
    let mut copy = std::pin::pin!(copy);
    let mut sleep = std::pin::pin!(tokio::time::sleep(timeout));
    loop {
        tokio::select! {
            ended = copy.as_mut() => return Some(ended),
            () = sleep.as_mut() => {
                let deadline = moved.last() + timeout;
                if deadline <= Instant::now() {
                    return None;
                }
                sleep.as_mut().reset(deadline.into());
            }
        }
    }
}

/// When bytes last moved through a tunnel, in milliseconds since it opened.
#[derive(Debug)]
struct Moved {
    opened: Instant,
    last: AtomicU64,
}

impl Default for Moved {
    fn default() -> Self {
        Moved {
            opened: Instant::now(),
            last: AtomicU64::new(0),
        }
    }
}

impl Moved {
    fn now(&self) {
        let millis = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(millis, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }
}
