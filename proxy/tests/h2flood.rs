//! HTTP/2 control-frame floods end in GOAWAY(ENHANCE_YOUR_CALM); clients within the budget are
//! served as before.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::time::Instant;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One frame on the wire.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut bytes = u32::try_from(payload.len()).unwrap().to_be_bytes()[1..].to_vec();
    bytes.extend([kind, flags]);
    bytes.extend(stream.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// `GET http://web.tld/` on `stream`, HPACK-encoded by hand (static table entries and one
/// literal), ending the stream.
fn get_request(stream: u32) -> Vec<u8> {
    // :method GET, :scheme http, :path /, then :authority as a literal without indexing.
    let mut block = vec![0x82, 0x86, 0x84, 0x01, 7];
    block.extend_from_slice(b"web.tld");
    frame(HEADERS, 0x5, stream, &block)
}

/// A received frame: type, flags, stream and payload.
#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// Reads the frames the proxy sends, until the end of the connection.
struct Reader {
    half: OwnedReadHalf,
    buf: Vec<u8>,
    ended: bool,
}

impl Reader {
    /// The next frame, or `None` once the proxy closed the connection (EOF, or a reset since
    /// the kernel answers the client's unread flood with RST when the proxy closes).
    async fn next(&mut self, deadline: Instant) -> Option<Frame> {
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let stream = u32::from_be_bytes(self.buf[5..9].try_into().unwrap());
                    let frame = Frame {
                        kind: self.buf[3],
                        flags: self.buf[4],
                        stream: stream & 0x7fff_ffff,
                        payload: self.buf[9..9 + len].to_vec(),
                    };
                    self.buf.drain(..9 + len);
                    return Some(frame);
                }
            }
            if self.ended {
                return None;
            }
            let mut chunk = [0; 16384];
            let read = tokio::time::timeout_at(deadline, self.half.read(&mut chunk)).await;
            match read.expect("the proxy neither answered nor closed in time") {
                Ok(0) => self.ended = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => self.ended = true,
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }
}

/// An h2c connection with the preface and an empty SETTINGS frame sent.
async fn h2c(proxy: &TestProxy) -> (Reader, OwnedWriteHalf) {
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    write.write_all(&hello).await.unwrap();
    let reader = Reader {
        half: read,
        buf: Vec::new(),
        ended: false,
    };
    (reader, write)
}

/// Sends `flood` `count` times on the connection, concurrently with reading; returns the
/// GOAWAY's last-stream-id and the number of PINGs answered before it, after checking that the
/// connection then ends.
async fn flood_until_goaway(
    (mut reader, mut write): (Reader, OwnedWriteHalf),
    flood: Vec<u8>,
    count: usize,
) -> (u32, usize) {
    let writer = tokio::spawn(async move {
        let batch = flood.repeat(100);
        for _ in 0..count.div_ceil(100) {
            write.write_all(&batch).await?;
        }
        std::io::Result::Ok(write)
    });
    let deadline = Instant::now() + DEADLINE;
    let mut acks = 0;
    let goaway = loop {
        let frame = reader
            .next(deadline)
            .await
            .expect("closed without a GOAWAY");
        match frame.kind {
            GOAWAY => break frame,
            PING => acks += 1,
            _ => {}
        }
    };
    assert_eq!(goaway.stream, 0);
    let code = u32::from_be_bytes(goaway.payload[4..8].try_into().unwrap());
    assert_eq!(code, ENHANCE_YOUR_CALM, "{goaway:?}");
    let last_stream = u32::from_be_bytes(goaway.payload[..4].try_into().unwrap());
    // Nothing of the flood is answered after the GOAWAY, and the connection ends.
    while let Some(frame) = reader.next(deadline).await {
        assert_ne!(frame.kind, PING, "answered after the GOAWAY: {frame:?}");
    }
    // The writer ends on its own: its writes fail once the proxy is gone.
    let written = tokio::time::timeout_at(deadline, writer).await;
    assert!(
        written.is_ok(),
        "the flood was still accepted after the close"
    );
    (last_stream, acks)
}

/// Reads until the response head of `stream` arrives; fails on a GOAWAY.
async fn answered(reader: &mut Reader, stream: u32) -> usize {
    let deadline = Instant::now() + DEADLINE;
    let mut acks = 0;
    loop {
        let frame = reader.next(deadline).await.expect("closed");
        assert_ne!(frame.kind, GOAWAY, "{frame:?}");
        acks += usize::from(frame.kind == PING);
        if frame.kind == HEADERS && frame.stream == stream {
            return acks;
        }
    }
}

fn ping() -> Vec<u8> {
    frame(PING, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8])
}

#[tokio::test]
async fn a_ping_flood_gets_goaway_enhance_your_calm_naming_the_last_stream() {
    let web = backend("web").start().await;
    let proxy = proxy()
        .start(table().vhost("web.tld", vec![path("/", &[&web])]).spec())
        .await;
    let (mut reader, mut write) = h2c(&proxy).await;
    write.write_all(&get_request(1)).await.unwrap();
    answered(&mut reader, 1).await;
    let (last_stream, _) = flood_until_goaway((reader, write), ping(), 100_000).await;
    assert_eq!(last_stream, 1);
    assert!(proxy
        .metrics_text()
        .contains("dockhand_h2_flood_closed_total 1"));
}

#[tokio::test]
async fn a_settings_flood_is_closed() {
    let proxy = proxy().start(table().spec()).await;
    let settings = frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
    let (last_stream, _) = flood_until_goaway(h2c(&proxy).await, settings, 100_000).await;
    assert_eq!(last_stream, 0);
}

#[tokio::test]
async fn a_priority_flood_is_closed() {
    let proxy = proxy().start(table().spec()).await;
    let priority = frame(PRIORITY, 0, 3, &[0, 0, 0, 0, 16]);
    flood_until_goaway(h2c(&proxy).await, priority, 100_000).await;
}

#[tokio::test]
async fn a_flood_of_empty_data_frames_is_closed() {
    let web = backend("web").held().start().await;
    let proxy = proxy()
        .start(table().vhost("web.tld", vec![path("/", &[&web])]).spec())
        .await;
    // A POST left open, then empty DATA frames that never end it.
    let mut block = vec![0x83, 0x86, 0x84, 0x01, 7];
    block.extend_from_slice(b"web.tld");
    let (reader, mut write) = h2c(&proxy).await;
    write
        .write_all(&frame(HEADERS, 0x4, 1, &block))
        .await
        .unwrap();
    let empty = frame(0x0, 0, 1, &[]);
    flood_until_goaway((reader, write), empty, 100_000).await;
    web.release();
}

#[tokio::test]
async fn the_budget_is_the_configured_burst() {
    let proxy = proxy()
        .config(|c| {
            c.h2_max_control_frames = 10;
            c.h2_control_frames_per_second = 0;
        })
        .start(table().spec())
        .await;
    // The client's SETTINGS takes one token, so nine PINGs are answered at most.
    let (_, acks) = flood_until_goaway(h2c(&proxy).await, ping(), 1_000).await;
    assert!(acks <= 9, "{acks} PINGs answered");
}

#[tokio::test]
async fn a_zero_limit_turns_the_guard_off() {
    let proxy = proxy()
        .config(|c| c.h2_max_control_frames = 0)
        .start(table().spec())
        .await;
    let (mut reader, mut write) = h2c(&proxy).await;
    let pings = ping().repeat(1_000);
    let writer = tokio::spawn(async move { write.write_all(&pings).await.map(|()| write) });
    let deadline = Instant::now() + DEADLINE;
    let mut acks = 0;
    while acks < 1_000 {
        let frame = reader.next(deadline).await.expect("closed");
        assert_ne!(frame.kind, GOAWAY, "{frame:?}");
        acks += usize::from(frame.kind == PING && frame.flags & 1 == 1);
    }
    drop(writer);
}

#[tokio::test]
async fn a_client_within_the_budget_is_served() {
    let web = backend("web").start().await;
    let proxy = proxy()
        .start(table().vhost("web.tld", vec![path("/", &[&web])]).spec())
        .await;
    let (mut reader, mut write) = h2c(&proxy).await;
    let mut bytes = ping().repeat(50);
    bytes.extend(frame(SETTINGS, 0, 0, &[0, 4, 0, 1, 0, 0]));
    bytes.extend(frame(PRIORITY, 0, 3, &[0, 0, 0, 0, 16]));
    bytes.extend(get_request(1));
    write.write_all(&bytes).await.unwrap();
    assert_eq!(answered(&mut reader, 1).await, 50);
}

#[tokio::test]
async fn a_hyper_client_with_pings_and_many_requests_is_not_closed() {
    let web = backend("web").start().await;
    let proxy = proxy()
        .start(table().vhost("web.tld", vec![path("/", &[&web])]).spec())
        .await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        // BDP pings while bodies arrive, and keep-alive pings: what real clients send.
        .adaptive_window(true)
        .keep_alive_interval(Duration::from_millis(100))
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    for round in 0..10 {
        let requests = (0..50).map(|i| {
            let mut sender = sender.clone();
            async move {
                let req = http::Request::get(format!("http://web.tld/{round}/{i}"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                sender.send_request(req).await
            }
        });
        for response in futures_util::future::join_all(requests).await {
            let reply = collect(response.expect("request failed")).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!conn.is_finished(), "the connection ended");
    assert!(proxy
        .metrics_text()
        .contains("dockhand_h2_flood_closed_total 0"));
}
