//! Shutdown drains in-flight requests.

mod support;

use std::time::Duration;

use support::*;
use tokio::net::TcpStream;

#[tokio::test]
async fn graceful_shutdown_lets_an_in_flight_request_finish() {
    let slow = backend("slow").held().start().await;
    let mut proxy = proxy()
        .start(table().vhost("slow.tld", vec![path("/", &[&slow])]).spec())
        .await;
    let addr = proxy.addr;
    let in_flight = tokio::spawn(async move { get(addr, "slow.tld", "/").await });
    assert_eventually!(slow.requests() == 1, "request never reached the backend");

    proxy.begin_shutdown();
    assert_eventually!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
    assert!(!in_flight.is_finished());

    slow.release();
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.backend(), "slow");
    proxy.stopped().await.unwrap();
}

#[tokio::test]
async fn shutdown_gives_up_after_the_grace_period() {
    let stuck = backend("stuck").hanging().start().await;
    let mut proxy = support::harness::proxy_with_grace(Duration::from_millis(100))
        .start(
            table()
                .vhost("stuck.tld", vec![path("/", &[&stuck])])
                .spec(),
        )
        .await;
    let addr = proxy.addr;
    let _in_flight = tokio::spawn(async move { get(addr, "stuck.tld", "/").await });
    assert_eventually!(stuck.requests() == 1, "request never reached the backend");
    proxy.begin_shutdown();
    proxy.stopped().await.unwrap();
}

#[tokio::test]
async fn shutdown_waits_for_an_open_websocket_until_the_client_closes_it() {
    let ws = backend("ws").websocket().start().await;
    let mut proxy = proxy()
        .start(table().vhost("ws.tld", vec![path("/", &[&ws])]).spec())
        .await;
    let addr = proxy.addr;
    let mut socket = websocket(addr, "ws.tld").await;
    assert_eq!(echo(&mut socket, "before").await, "before");

    proxy.begin_shutdown();
    assert_eventually!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
    // Draining: the tunnel still carries messages and keeps serve from returning.
    assert_eq!(echo(&mut socket, "during").await, "during");
    assert!(proxy.is_running(), "serve returned with a tunnel open");

    drop(socket);
    tokio::time::timeout(DEADLINE, proxy.stopped())
        .await
        .expect("serve did not return once the tunnel closed")
        .unwrap();
}

#[tokio::test]
async fn shutdown_cuts_a_websocket_still_open_after_the_grace_period() {
    use futures_util::StreamExt;
    let ws = backend("ws").websocket().start().await;
    let mut proxy = support::harness::proxy_with_grace(Duration::from_millis(100))
        .start(table().vhost("ws.tld", vec![path("/", &[&ws])]).spec())
        .await;
    let mut socket = websocket(proxy.addr, "ws.tld").await;
    assert_eq!(echo(&mut socket, "before").await, "before");
    proxy.begin_shutdown();
    tokio::time::timeout(DEADLINE, proxy.stopped())
        .await
        .expect("serve did not return after the grace period")
        .unwrap();
    let next = tokio::time::timeout(DEADLINE, socket.next())
        .await
        .expect("the tunnel was not cut");
    assert!(
        !matches!(
            next,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(_)))
        ),
        "{next:?}"
    );
}
