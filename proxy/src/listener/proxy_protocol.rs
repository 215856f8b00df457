//! `ENABLE_PROXY_PROTOCOL`: the PROXY protocol header (v1 text or v2 binary) a load balancer
//! sends before the client's bytes, parsed with the `ppp` crate.
//!
//! The header is read without consuming a byte past it, so that what follows (a TLS
//! ClientHello, an HTTP request) reaches the next layer untouched: the socket is peeked, and
//! only bytes known to belong to the header are read.

use std::io;
use std::net::SocketAddr;

use ppp::{v1, v2, HeaderResult, PartialResult};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The longest header accepted: v1 is at most 107 bytes; v2 carries TLVs after the addresses
/// (AWS and GCP send a few dozen bytes of them), and 4 KiB is far more than any balancer sends.
const MAX_HEADER: usize = 4096;

/// The addresses a PROXY header carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Carried {
    /// The client's (nginx's `$proxy_protocol_addr`, `$proxy_protocol_port`).
    pub(crate) source: SocketAddr,
    /// The one the client connected to, at the balancer (`$proxy_protocol_server_port`).
    pub(crate) destination: SocketAddr,
}

/// Reads the PROXY header at the start of `tcp`. `Some` holds the addresses it carries; `None` for a header without one (v1 `UNKNOWN`, v2 `LOCAL`, a UNIX or unspecified
/// family: a balancer's own health check), whose connection keeps its TCP peer. An invalid or
/// missing header, or the end of the stream first, is an error.
pub(crate) async fn read_header(tcp: &mut TcpStream) -> io::Result<Option<Carried>> {
    let mut consumed = Vec::new();
    let mut peeked = vec![0; MAX_HEADER];
    loop {
        let room = MAX_HEADER - consumed.len();
        if room == 0 {
            return Err(invalid("PROXY header longer than 4096 bytes"));
        }
        let n = tcp.peek(&mut peeked[..room]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut candidate = consumed.clone();
        candidate.extend_from_slice(&peeked[..n]);
        let parsed = HeaderResult::parse(&candidate);
        // ppp calls a v1 line with fields missing "incomplete" even once its CRLF is there;
        // nothing after the line can complete it.
        if parsed.is_incomplete() && candidate.starts_with(b"PROXY ") {
            if let Some(end) = candidate.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&candidate[..end]);
                return Err(invalid(&format!("invalid PROXY v1 header {line:?}")));
            }
        }
        if parsed.is_incomplete() {
            // Every byte seen so far belongs to the header: take them, so that the next peek
            // waits for more instead of returning the same bytes.
            tcp.read_exact(&mut peeked[..n]).await?;
            consumed.extend_from_slice(&peeked[..n]);
            continue;
        }
        let (len, source) = header(parsed)?;
        let rest = len - consumed.len();
        tcp.read_exact(&mut peeked[..rest]).await?;
        return Ok(source);
    }
}

/// The total length of a complete header and the addresses it carries.
fn header(parsed: HeaderResult<'_>) -> io::Result<(usize, Option<Carried>)> {
    let carried = |source: SocketAddr, destination: SocketAddr| {
        Some(Carried {
            source,
            destination,
        })
    };
    match parsed {
        HeaderResult::V1(Ok(h)) => {
            let source = match h.addresses {
                v1::Addresses::Tcp4(a) => carried(
                    (a.source_address, a.source_port).into(),
                    (a.destination_address, a.destination_port).into(),
                ),
                v1::Addresses::Tcp6(a) => carried(
                    (a.source_address, a.source_port).into(),
                    (a.destination_address, a.destination_port).into(),
                ),
                v1::Addresses::Unknown => None,
            };
            Ok((h.header.len(), source))
        }
        HeaderResult::V2(Ok(h)) => {
            let source = match (h.command, h.addresses) {
                (v2::Command::Local, _) => None,
                (_, v2::Addresses::IPv4(a)) => carried(
                    (a.source_address, a.source_port).into(),
                    (a.destination_address, a.destination_port).into(),
                ),
                (_, v2::Addresses::IPv6(a)) => carried(
                    (a.source_address, a.source_port).into(),
                    (a.destination_address, a.destination_port).into(),
                ),
                (_, v2::Addresses::Unix(_) | v2::Addresses::Unspecified) => None,
            };
            Ok((h.len(), source))
        }
        HeaderResult::V1(Err(e)) => Err(invalid(&format!("invalid PROXY v1 header: {e}"))),
        HeaderResult::V2(Err(e)) => Err(invalid(&format!("invalid PROXY v2 header: {e}"))),
    }
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// Sends `chunks` (each flushed on its own) and returns what `read_header` made of them,
    /// and the bytes left on the stream after it.
    async fn exchange(chunks: &[&[u8]]) -> (io::Result<Option<Carried>>, Vec<u8>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        let client = tokio::spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            for chunk in chunks {
                tcp.write_all(&chunk).await.unwrap();
                tcp.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
        let (mut server, _) = listener.accept().await.unwrap();
        let result = read_header(&mut server).await;
        client.await.unwrap();
        let mut rest = Vec::new();
        let _ = server.read_to_end(&mut rest).await;
        (result, rest)
    }

    #[tokio::test]
    async fn v1_tcp4_gives_the_source_and_leaves_the_request() {
        let (source, rest) =
            exchange(&[b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 80\r\nGET / HTTP/1.1\r\n\r\n"])
                .await;
        let carried = source.unwrap().unwrap();
        assert_eq!(carried.source, "203.0.113.7:51234".parse().unwrap());
        assert_eq!(carried.destination, "10.0.0.1:80".parse().unwrap());
        assert_eq!(rest, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn a_header_split_over_segments_is_reassembled() {
        let (source, rest) = exchange(&[
            b"PROXY TCP6 2001:db8::1 ",
            b"2001:db8::2 443 80\r",
            b"\nhello",
        ])
        .await;
        let carried = source.unwrap().unwrap();
        assert_eq!(carried.source, "[2001:db8::1]:443".parse().unwrap());
        assert_eq!(carried.destination, "[2001:db8::2]:80".parse().unwrap());
        assert_eq!(rest, b"hello");
    }

    #[tokio::test]
    async fn v2_proxy_and_local() {
        let header = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Proxy,
            v2::Protocol::Stream,
            (
                "198.51.100.9:4000".parse::<SocketAddr>().unwrap(),
                "10.0.0.1:443".parse::<SocketAddr>().unwrap(),
            ),
        )
        .write_tlv(v2::Type::NoOp, b"padding")
        .unwrap()
        .build()
        .unwrap();
        let (source, rest) = exchange(&[&header, b"\x16\x03\x01"]).await;
        let carried = source.unwrap().unwrap();
        assert_eq!(carried.source, "198.51.100.9:4000".parse().unwrap());
        assert_eq!(carried.destination, "10.0.0.1:443".parse().unwrap());
        assert_eq!(rest, b"\x16\x03\x01");

        let local = v2::Builder::new(
            v2::Version::Two | v2::Command::Local,
            v2::AddressFamily::Unspecified | v2::Protocol::Unspecified,
        )
        .build()
        .unwrap();
        let (source, rest) = exchange(&[&local, b"x"]).await;
        assert_eq!(source.unwrap(), None);
        assert_eq!(rest, b"x");
        let (source, _) = exchange(&[b"PROXY UNKNOWN\r\nx"]).await;
        assert_eq!(source.unwrap(), None);
    }

    #[tokio::test]
    async fn a_request_without_a_header_is_refused() {
        let (result, _) = exchange(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]).await;
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let (result, _) = exchange(&[b"PROXY TCP4 nonsense\r\n"]).await;
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let (result, _) = exchange(&[b"PROX"]).await;
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
