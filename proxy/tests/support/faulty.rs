//! Backends that misbehave at the TCP level: one that resets every connection once it has read
//! a request, one that drops its keep-alive connections as they are reused, one that closes its
//! idle connections when told, and an address that refuses connections until the test wakes it
//! up.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::backend::{backend, Backend};

/// A raw TCP backend; it counts the connections it accepted.
pub struct Faulty {
    /// Where it listens.
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Faulty {
    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Faulty {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads a request head, then resets the connection without answering.
pub async fn resetting() -> Faulty {
    start(|mut stream, _| async move {
        if read_head(&mut stream).await {
            // Linger 0: close with RST, as a crashing process does (and without blocking).
            let _ = socket2::SockRef::from(&stream).set_linger(Some(std::time::Duration::ZERO));
        }
    })
    .await
}

/// Answers the first request of each connection as a keep-alive response
/// (`{"backend":"<name>"}`), then closes the connection as soon as the next request arrives,
/// like a server whose keep-alive timeout expires as a pooled connection is reused.
pub async fn one_shot(name: &str) -> Faulty {
    let body = format!(r#"{{"backend":"{name}"}}"#);
    start(move |mut stream, _| {
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        async move {
            if read_head(&mut stream).await {
                let _ = stream.write_all(response.as_bytes()).await;
                read_head(&mut stream).await;
            }
        }
    })
    .await
}

/// Answers every request as a keep-alive response (`{"backend":"<name>"}`) until the sender
/// it returns is set to true; then closes each connection waiting for its next request, like
/// a server whose idle timeout passed, counting them in the counter it returns.
pub async fn closing_idle(name: &str) -> (Faulty, watch::Sender<bool>, Arc<AtomicUsize>) {
    let (close, closed) = watch::channel(false);
    let closes = Arc::new(AtomicUsize::new(0));
    let counted = closes.clone();
    let body = format!(r#"{{"backend":"{name}"}}"#);
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let faulty = start(move |mut stream, _| {
        let (response, mut closed) = (response.clone(), closed.clone());
        let counted = counted.clone();
        async move {
            loop {
                tokio::select! {
                    head = read_head(&mut stream) => {
                        if !head || stream.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    _ = async { closed.wait_for(|closed| *closed).await.is_ok() } => {
                        drop(stream);
                        counted.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
            }
        }
    })
    .await;
    (faulty, close, closes)
}

/// Switches protocols (`101`, `Upgrade: custom`) and sends `hello` in the same write as the
/// response head, then echoes what it reads until the peer closes.
pub async fn greeting_upgrade() -> Faulty {
    start(|mut stream, _| async move {
        if !read_head(&mut stream).await {
            return;
        }
        let switch = "HTTP/1.1 101 Switching Protocols\r\nupgrade: custom\r\nconnection: upgrade\r\n\r\nhello";
        if stream.write_all(switch.as_bytes()).await.is_err() {
            return;
        }
        let mut buf = [0; 1024];
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            if stream.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    })
    .await
}

async fn start<F, Fut>(serve: F) -> Faulty
where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream, peer));
        }
    });
    Faulty {
        addr,
        connections,
        task,
    }
}

/// Reads until the end of a request head (`\r\n\r\n`); false when the peer closed first.
async fn read_head(stream: &mut TcpStream) -> bool {
    let mut seen = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        if seen.windows(4).any(|w| w == b"\r\n\r\n") {
            return true;
        }
    }
}

/// An address that refuses connections (a socket bound but not listening) until woken.
pub struct Dormant {
    /// The address.
    pub addr: SocketAddr,
    socket: Socket,
}

impl Dormant {
    /// Binds 127.0.0.1:0 without listening: connecting is refused.
    pub fn new() -> Dormant {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        socket.bind(&any.into()).unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        Dormant { addr, socket }
    }

    /// Starts listening at the same address with an echo backend named `name`.
    pub fn wake(self, name: &str) -> Backend {
        self.socket.listen(128).unwrap();
        self.socket.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(self.socket.into()).unwrap();
        backend(name).start_on(listener)
    }
}
