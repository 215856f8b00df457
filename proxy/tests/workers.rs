//! One port served by several worker runtimes, as dockhand runs them: each with a socket of its
//! own in one `SO_REUSEPORT` group, its own upstream pools and its share of the connection limit.

mod support;

use std::io::ErrorKind;
use std::time::Duration;

use dockhand_proxy::SharedListener;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn two_workers_answer_every_client_of_the_port() {
    let web = backend("web").start().await;
    let proxy = proxy()
        .workers(2)
        .start(table().vhost("web.tld", vec![path("/", &[&web])]).spec())
        .await;
    let addr = proxy.addr;
    let clients: Vec<_> = (0..64)
        .map(|_| tokio::spawn(async move { get(addr, "web.tld", "/").await }))
        .collect();
    for client in clients {
        let reply = client.await.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.backend(), "web");
    }
    assert_eq!(web.requests(), 64);
}

#[tokio::test]
async fn the_connection_limit_is_split_between_the_workers() {
    // A held backend keeps every admitted connection busy: busy connections are never closed
    // to make room (idle ones are, see deadlines.rs), so the limit is what admits clients.
    let web = backend("web").held().start().await;
    let proxy = proxy()
        .config(|c| c.max_connections = 2)
        .workers(2)
        .start(table().vhost("web.tld", vec![path("/", &[&web])]).spec())
        .await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: web.tld\r\n\r\n")
            .await
            .unwrap();
        clients.push(Client {
            stream,
            answered: false,
        });
    }

    // One permit per worker: whichever way the kernel spread the four, at most two get in.
    assert_eventually!(web.requests() >= 1, "no client was admitted");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let admitted = web.requests();
    assert!(
        admitted <= 2,
        "{admitted} clients admitted at once with a limit of 2"
    );

    // Each client that leaves makes room for the next one at its worker.
    web.release();
    assert_eventually!(
        {
            clients.retain(|c| !c.answered);
            look(&mut clients).await;
            clients.iter().all(|c| c.answered)
        },
        "{} clients never served",
        clients.iter().filter(|c| !c.answered).count()
    );
}

#[test]
fn a_port_something_already_listens_on_is_refused() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = SharedListener::bind(taken.local_addr().unwrap(), 2, 10).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);

    // A second dockhand would set SO_REUSEPORT too, and must not join the first one's group.
    let first = SharedListener::bind("127.0.0.1:0".parse().unwrap(), 2, 10).unwrap();
    let err = SharedListener::bind(first.local_addr().unwrap(), 2, 10).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
}

/// A client connection that has sent its request.
struct Client {
    stream: TcpStream,
    answered: bool,
}

/// Reads what the clients not answered yet got; returns how many are answered in all.
async fn look(clients: &mut [Client]) -> usize {
    for client in clients.iter_mut().filter(|c| !c.answered) {
        let mut buf = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_millis(20), client.stream.read(&mut buf));
        if let Ok(read) = read.await {
            let n = read.unwrap();
            assert!(
                buf[..n].starts_with(b"HTTP/1.1 200"),
                "not a 200 but {n} bytes"
            );
            client.answered = true;
        }
    }
    clients.iter().filter(|c| c.answered).count()
}
