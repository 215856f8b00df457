//! The sockets a port is served from: one tokio listener for one runtime, or a
//! `SO_REUSEPORT` group with a socket per runtime, each with its share of the connection limit.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Accept queue length of a shared listener (as tokio's and std's `bind`).
const LISTEN_BACKLOG: i32 = 1024;

/// A port served by several runtimes, each accepting from a listening socket of its own.
///
/// The sockets form one `SO_REUSEPORT` group, so that the kernel spreads new connections evenly
/// over the runtimes (with one socket shared by all, the runtime that wakes first takes a whole
/// burst of connections). The connection limit is split between them, as nginx's
/// `worker_connections` is per worker: a runtime waits for a permit before it accepts, so one
/// limit shared by all would let a runtime idling in `accept` hold a permit while connections
/// queue at another.
#[derive(Debug)]
pub struct SharedListener {
    sockets: Vec<std::net::TcpListener>,
    max_connections: usize,
}

/// One runtime's socket of a [`SharedListener`], with its share of the connection limit.
#[derive(Debug)]
pub struct ListenerPart {
    socket: std::net::TcpListener,
    permits: Arc<Semaphore>,
}

impl SharedListener {
    /// Listens on `addr` with `count` sockets (at least 1); `max_connections` bounds the
    /// connections served at once through all of them (but each socket serves at least one).
    ///
    /// Fails with `AddrInUse` when anything already listens on `addr`, even a socket that would
    /// let this group join it: a second proxy must not silently take half the connections.
    pub fn bind(
        addr: SocketAddr,
        count: usize,
        max_connections: usize,
    ) -> io::Result<SharedListener> {
        if addr.port() != 0 {
            // Only a socket without SO_REUSEPORT is refused by every listener on the port.
            drop(reuse_socket(addr, false)?);
        }
        let first = reuse_socket(addr, true)?;
        // With port 0 the first socket picked the port the others join.
        let addr = first.local_addr()?;
        let mut sockets = vec![first];
        for _ in 1..count {
            sockets.push(reuse_socket(addr, true)?);
        }
        Ok(SharedListener {
            sockets,
            max_connections,
        })
    }

    /// The address it listens on (with the port the system chose if `addr` had 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        // `bind` always makes at least the first socket.
        self.sockets[0].local_addr()
    }

    /// One part per runtime, each with an equal share of the connection limit.
    pub fn split(self) -> Vec<ListenerPart> {
        let count = self.sockets.len();
        self.sockets
            .into_iter()
            .enumerate()
            .map(|(index, socket)| {
                let share = self.max_connections / count
                    + usize::from(index < self.max_connections % count);
                ListenerPart {
                    socket,
                    permits: Arc::new(Semaphore::new(share.max(1))),
                }
            })
            .collect()
    }
}

/// What an accept loop serves: a listening socket and the connection limit it accepts under.
/// A tokio [`TcpListener`] is served by one runtime alone, under
/// [`ProxyConfig::max_connections`](crate::ProxyConfig); a [`ListenerPart`] alongside the other
/// runtimes of its [`SharedListener`], under its share of the limit.
pub trait Listen {
    /// The socket, registered with the calling task's runtime, and the permits to accept with.
    fn open(self, max_connections: usize) -> io::Result<(TcpListener, Arc<Semaphore>)>;
}

impl Listen for TcpListener {
    fn open(self, max_connections: usize) -> io::Result<(TcpListener, Arc<Semaphore>)> {
        Ok((self, Arc::new(Semaphore::new(max_connections.max(1)))))
    }
}

impl Listen for ListenerPart {
    fn open(self, _: usize) -> io::Result<(TcpListener, Arc<Semaphore>)> {
        Ok((TcpListener::from_std(self.socket)?, self.permits))
    }
}

fn reuse_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(reuse_port)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}
