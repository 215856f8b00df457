//! The floor of a purpose-built HTTP/1 proxy path on tokio and `httparse`: a measurement, not a
//! proxy. `benches/instructions.sh` (`PEERS=1`) counts its instructions per request next to
//! nginx's, HAProxy's and dockhand's, to tell how far a path that replaced hyper on both sides
//! could go before it does any of dockhand's own work.
//!
//! It does what every proxied request of the bench needs on the wire, and nothing else: parse
//! the request head, drop hop-by-hop headers, write the head to a pooled keep-alive backend
//! connection with the client's header names as written plus the headers nginx-proxy adds
//! (`Host`, `X-Real-IP`, `X-Forwarded-*`, `X-Original-URI`), parse the response head and pass it
//! and a `Content-Length` body back. No routing, timers, metrics, logs, limits or bodies on
//! requests; anything it does not handle answers 501 and closes. One thread, one task per client
//! connection, the idle backend connections in one stack.
//!
//! ```sh
//! cargo run --release -p dockhand-testkit --example h1-floor -- 127.0.0.1:18920 172.17.0.2:80
//! ```

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Idle backend connections, most recently used last.
type Pool = Rc<RefCell<Vec<Backend>>>;

struct Backend {
    stream: TcpStream,
    buf: BytesMut,
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(backend)) = (args.next(), args.next()) else {
        eprintln!("usage: h1-floor LISTEN_ADDR BACKEND_ADDR");
        std::process::exit(2);
    };
    let parse = |a: String| {
        a.parse::<SocketAddr>()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    };
    let (listen, backend) = (parse(listen)?, parse(backend)?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = TcpListener::bind(listen).await?;
        let pool = Pool::default();
        loop {
            let (client, peer) = listener.accept().await?;
            client.set_nodelay(true)?;
            let pool = pool.clone();
            tokio::task::spawn_local(async move {
                let _ = serve(client, peer, backend, pool).await;
            });
        }
    })
}

/// Serves one client connection until it closes or sends what the floor does not handle.
async fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    backend: SocketAddr,
    pool: Pool,
) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(4096);
    let mut head = Vec::with_capacity(1024);
    let peer_ip = peer.ip().to_string();
    let port = client.local_addr()?.port().to_string();
    loop {
        let consumed = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    head.clear();
                    if !upstream_head(&req, &peer_ip, &port, &mut head) {
                        return refuse(&mut client).await;
                    }
                    break n;
                }
                Ok(httparse::Status::Partial) => {
                    if client.read_buf(&mut buf).await? == 0 {
                        return Ok(());
                    }
                }
                Err(_) => return refuse(&mut client).await,
            }
        };
        buf.advance(consumed);
        let idle = pool.borrow_mut().pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => Backend {
                stream: connect(backend).await?,
                buf: BytesMut::with_capacity(4096),
            },
        };
        conn.stream.write_all(&head).await?;
        if !relay_response(&mut conn, &mut client, &mut head).await? {
            return refuse(&mut client).await;
        }
        pool.borrow_mut().push(conn);
    }
}

async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn refuse(client: &mut TcpStream) -> io::Result<()> {
    client
        .write_all(
            b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        )
        .await
}

/// Writes the backend's request head into `out`; false for a request with a body, which the
/// floor does not handle.
fn upstream_head(
    req: &httparse::Request<'_, '_>,
    peer_ip: &str,
    port: &str,
    out: &mut Vec<u8>,
) -> bool {
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return false;
    };
    let mut host: &[u8] = b"";
    for (part, end) in [(method, b" "), (path, b" ")] {
        out.extend_from_slice(part.as_bytes());
        out.extend_from_slice(end);
    }
    out.extend_from_slice(b"HTTP/1.1\r\n");
    let mut lower = [0; 32];
    for h in req.headers.iter() {
        match lowercase(h.name, &mut lower) {
            b"content-length" | b"transfer-encoding" => return false,
            b"host" => host = h.value,
            b"connection" | b"keep-alive" | b"proxy-connection" | b"te" | b"trailer"
            | b"upgrade" | b"proxy" | b"expect" | b"x-real-ip" | b"x-forwarded-for"
            | b"x-forwarded-host" | b"x-forwarded-proto" | b"x-forwarded-ssl"
            | b"x-forwarded-port" | b"x-original-uri" => {}
            _ => header(out, h.name.as_bytes(), h.value),
        }
    }
    let host = host.split(|&b| b == b':').next().unwrap_or_default();
    for (name, value) in [
        (&b"Host"[..], host),
        (b"X-Real-IP", peer_ip.as_bytes()),
        (b"X-Forwarded-For", peer_ip.as_bytes()),
        (b"X-Forwarded-Host", host),
        (b"X-Forwarded-Proto", b"http"),
        (b"X-Forwarded-Ssl", b"off"),
        (b"X-Forwarded-Port", port.as_bytes()),
        (b"X-Original-URI", path.as_bytes()),
    ] {
        header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    true
}

/// Reads the backend's response and writes it to the client; false for a response framed
/// otherwise than by `Content-Length`.
async fn relay_response(
    conn: &mut Backend,
    client: &mut TcpStream,
    out: &mut Vec<u8>,
) -> io::Result<bool> {
    let (head_len, body_len) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut res = httparse::Response::new(&mut headers);
        match res.parse(&conn.buf) {
            Ok(httparse::Status::Complete(n)) => {
                out.clear();
                let Some(len) = response_head(&res, out) else {
                    return Ok(false);
                };
                break (n, len);
            }
            Ok(httparse::Status::Partial) => {
                if conn.stream.read_buf(&mut conn.buf).await? == 0 {
                    return Ok(false);
                }
            }
            Err(_) => return Ok(false),
        }
    };
    conn.buf.advance(head_len);
    while conn.buf.len() < body_len {
        if conn.stream.read_buf(&mut conn.buf).await? == 0 {
            return Ok(false);
        }
    }
    out.extend_from_slice(&conn.buf[..body_len]);
    conn.buf.advance(body_len);
    client.write_all(out).await?;
    Ok(true)
}

/// Writes the client's response head into `out`, hop-by-hop headers dropped; the body's length,
/// or `None` without a `Content-Length`.
fn response_head(res: &httparse::Response<'_, '_>, out: &mut Vec<u8>) -> Option<usize> {
    let code = res.code?;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&[
        b'0' + (code / 100 % 10) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(res.reason.unwrap_or_default().as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut length = None;
    let mut lower = [0; 32];
    for h in res.headers.iter() {
        match lowercase(h.name, &mut lower) {
            b"connection" | b"keep-alive" | b"proxy-connection" | b"te" | b"trailer"
            | b"upgrade" | b"transfer-encoding" => continue,
            b"content-length" => length = std::str::from_utf8(h.value).ok()?.parse().ok(),
            _ => {}
        }
        header(out, h.name.as_bytes(), h.value);
    }
    out.extend_from_slice(b"\r\n");
    length
}

/// Appends the header line `name: value`.
fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    for part in [name, b": ", value, b"\r\n"] {
        out.extend_from_slice(part);
    }
}

/// `name` in lower case, in `buf`: cut at 32 bytes, longer than any name matched here.
fn lowercase<'a>(name: &str, buf: &'a mut [u8; 32]) -> &'a [u8] {
    let len = name.len().min(buf.len());
    for (to, from) in buf.iter_mut().zip(name.as_bytes()) {
        *to = from.to_ascii_lowercase();
    }
    &buf[..len]
}
