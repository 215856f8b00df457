//! The Docker engine as dockhand sees it: reached over `tcp://` through a socket proxy, and lost
//! and found again while dockhand keeps serving.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use dockhand_testkit::assert_eventually;

use crate::support::*;

#[test]
fn docker_host_over_tcp_and_an_engine_that_goes_away_and_comes_back() {
    require_docker!();
    let (before, during) = (unique("before"), unique("during"));
    let relay = SocketRelay::start();
    let proxy = dockhand()
        .env("DOCKER_HOST", &format!("tcp://{}", relay.addr))
        .start();
    let before_container = backend().vhost(&before).start();
    proxy.wait_status(&before, "/", 200);

    // The engine "goes away": every connection through the relay is cut and new ones refused.
    relay.cut();
    assert_eventually!(
        proxy.metrics().contains("dockhand_docker_up 0"),
        PROPAGATION * 5
    );
    let readiness = proxy.admin_get("/readyz").expect("admin answers").text();
    assert!(readiness.contains("docker engine: down"), "{readiness}");
    // The last table keeps serving.
    assert_eq!(proxy.status(&before, "/"), 200);
    // While it is away, containers change: one starts (a new address), one goes.
    let _during = backend().vhost(&during).start();
    before_container.stop();

    // Back again: dockhand reconnects, resyncs, and routes what started meanwhile.
    relay.restore();
    assert_eventually!(
        proxy.status(&during, "/") == 200,
        PROPAGATION * 15,
        "no resync after reconnect"
    );
    assert!(proxy.metrics().contains("dockhand_docker_up 1"));
    assert_eventually!(
        proxy.status(&before, "/") == 503,
        PROPAGATION,
        "stale route kept after resync"
    );
}

#[test]
fn an_engine_unreachable_at_start_is_reported_and_retried() {
    require_docker!();
    let host = unique("late");
    let relay = SocketRelay::start();
    relay.cut();
    let proxy = dockhand()
        .env("DOCKER_HOST", &format!("tcp://{}", relay.addr))
        .launch();

    let readiness = proxy.admin_get("/readyz").expect("admin answers");
    assert_eq!(readiness.status, 503, "not ready before the first sync");
    assert!(readiness.text().contains("docker engine: down"));
    assert!(proxy.metrics().contains("dockhand_docker_up 0"));
    assert_eventually!(
        proxy.log().contains("cannot reach the docker engine"),
        PROPAGATION * 5,
        "no report"
    );

    let _web = backend().vhost(&host).start();
    relay.restore();
    assert_eventually!(
        proxy.status(&host, "/") == 200,
        PROPAGATION * 15,
        "never connected"
    );
    assert_eq!(
        proxy.admin_get("/readyz").map(|r| r.status.as_u16()),
        Some(200)
    );
}

/// A TCP → Docker socket relay that can be cut and restored: a stand-in for a socket proxy, and
/// for an engine restart that the tests cannot safely do to the machine's real engine.
struct SocketRelay {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl SocketRelay {
    fn start() -> SocketRelay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let addr = listener.local_addr().expect("relay address");
        let up = Arc::new(AtomicBool::new(true));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (accept_up, accept_open) = (up.clone(), open.clone());
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !accept_up.load(Ordering::SeqCst) {
                    continue; // dropped at once: the "engine" refuses
                }
                if let Ok(copy) = client.try_clone() {
                    accept_open
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(copy);
                }
                thread::spawn(move || relay(client));
            }
        });
        SocketRelay { addr, up, open }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for stream in self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn relay(client: TcpStream) -> io::Result<()> {
    let engine = UnixStream::connect("/var/run/docker.sock")?;
    let (mut client_read, mut engine_write) = (client.try_clone()?, engine.try_clone()?);
    let upstream = thread::spawn(move || {
        let _ = io::copy(&mut client_read, &mut engine_write);
        let _ = engine_write.shutdown(std::net::Shutdown::Write);
    });
    let (mut engine_read, mut client_write) = (engine, client);
    let _ = io::copy(&mut engine_read, &mut client_write);
    let _ = client_write.shutdown(std::net::Shutdown::Both);
    let _ = upstream.join();
    Ok(())
}
