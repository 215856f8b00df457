//! Deploys under steady load lose nothing while another replica of the route is up: stop, kill,
//! restart, scale down, and rolling recreation of one replica.

use dockhand_testkit::assert_eventually;

use crate::lifecycle::backends_of;
use crate::support::*;

/// Client threads of the steady load.
const CLIENTS: usize = 4;

fn assert_nothing_lost(report: LoadReport) {
    assert!(report.ok > 0, "the load ran");
    assert!(
        report.failures.is_empty(),
        "{} of {} requests failed: {:?}",
        report.failures.len(),
        report.ok + report.failures.len() as u64,
        &report.failures[..report.failures.len().min(5)]
    );
}

#[test]
fn stop_start_kill_and_restart_of_one_replica_lose_nothing() {
    require_docker!();
    let host = unique("steady");
    // Two workers: the load's connections are spread over two runtimes and their pools.
    let proxy = dockhand().env("DOCKHAND_WORKER_THREADS", "2").start();
    let a = backend().name("a").vhost(&host).start();
    let _b = backend().name("b").vhost(&host).start();
    assert_eventually!(backends_of(&proxy, &host) == 2, PROPAGATION * 5);

    let load = Load::start(&proxy, &host, CLIENTS);
    load.wait_for_more(50);
    a.stop();
    load.wait_for_more(100);
    a.start();
    assert_eventually!(backends_of(&proxy, &host) == 2, PROPAGATION * 5);
    load.wait_for_more(100);
    a.restart();
    assert_eventually!(backends_of(&proxy, &host) == 2, PROPAGATION * 10);
    load.wait_for_more(100);
    a.kill();
    load.wait_for_more(100);
    assert_nothing_lost(load.finish());
}

#[test]
fn compose_scale_down_and_rolling_recreation_lose_nothing() {
    require_docker!();
    let host = unique("rolling");
    let proxy = dockhand().start();
    let compose = Compose::up(&compose_web(&host), &["--scale", "web=3"]);
    assert_eventually!(backends_of(&proxy, &host) == 3, PROPAGATION * 10);

    let load = Load::start(&proxy, &host, CLIENTS);
    load.wait_for_more(50);
    compose.run(&["up", "-d", "--scale", "web=1"]);
    assert_eventually!(backends_of(&proxy, &host) == 1, PROPAGATION * 10);
    load.wait_for_more(100);

    // Rolling recreation: a new replica joins, then the old one leaves.
    let replacement = backend().name("next").vhost(&host).start();
    assert_eventually!(backends_of(&proxy, &host) == 2, PROPAGATION * 5);
    load.wait_for_more(50);
    compose.run(&["stop", "-t", "5"]);
    assert_eventually!(backends_of(&proxy, &host) == 1, PROPAGATION * 10);
    load.wait_for_more(100);
    assert_nothing_lost(load.finish());
    drop(replacement);
}

#[test]
fn a_websocket_survives_route_changes_to_other_containers_and_its_own_vhost() {
    use dockhand_testkit::http::{websocket, Message};
    use futures_util::{SinkExt, StreamExt};

    require_docker!();
    let (host, other) = (unique("ws-held"), unique("ws-other"));
    let proxy = dockhand().start();
    let _a = backend().name("a").vhost(&host).start();
    proxy.wait_status(&host, "/", 200);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut socket = runtime
        .block_on(websocket(proxy.http, &host, "/ws"))
        .expect("websocket");
    let mut echo = |text: &str| {
        runtime.block_on(async {
            socket
                .send(Message::text(text.to_owned()))
                .await
                .expect("send");
            loop {
                match socket.next().await.expect("socket open").expect("message") {
                    Message::Text(t) => return t.as_str().to_owned(),
                    _ => continue,
                }
            }
        })
    };
    assert_eq!(echo("before"), "before");

    // Unrelated containers come and go.
    let unrelated = backend().vhost(&other).start();
    proxy.wait_status(&other, "/", 200);
    unrelated.stop();
    proxy.wait_status(&other, "/", 503);
    assert_eq!(echo("after unrelated changes"), "after unrelated changes");

    // Its own vhost changes: a second replica joins and leaves.
    let b = backend().name("b").vhost(&host).start();
    assert_eventually!(backends_of(&proxy, &host) == 2, PROPAGATION * 5);
    b.stop();
    assert_eventually!(backends_of(&proxy, &host) == 1, PROPAGATION * 5);
    assert_eq!(
        echo("after its own route changed"),
        "after its own route changed"
    );
}
