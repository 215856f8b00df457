//! Upgraded connections (WebSocket and other `Upgrade` protocols) bridged to their backend, and
//! their drain on shutdown.
//!
//! Once hyper hands a connection over to an upgrade, its graceful shutdown no longer sees it, so
//! the tunnels of a listener are tracked here: the listener waits for them after its HTTP
//! connections, and cuts whatever is left when the grace period runs out.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
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

impl Tunnels {
    /// Bridges `client` and `backend` once both upgrades complete, in a tracked task.
    pub(crate) fn open<B, S>(
        &self,
        client: OnUpgrade,
        backend: B,
        addr: SocketAddr,
        in_flight: InFlight,
    ) where
        B: Future<Output = io::Result<S>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let cut = self.cut.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = bridge(client, backend, addr, in_flight) => {}
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
/// side closes. The tunnel counts as in flight for `least_conn`, and holds no table reference,
/// so a table swap never cuts it.
async fn bridge<B, S>(client: OnUpgrade, backend: B, addr: SocketAddr, _in_flight: InFlight)
where
    B: Future<Output = io::Result<S>>,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (client, mut backend) = match tokio::join!(client, backend) {
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
    let mut client = TokioIo::new(client);
    match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        Ok((up, down)) => tracing::debug!(backend = %addr, up, down, "tunnel closed"),
        Err(e) => tracing::debug!(backend = %addr, error = %e, "tunnel failed"),
    }
}
