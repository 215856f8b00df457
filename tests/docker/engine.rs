//! The Docker engine as dockhand sees it: reached over `tcp://` through a socket proxy, over
//! TLS (`DOCKER_TLS_VERIFY`), and lost and found again while dockhand keeps serving.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use dockhand_testkit::assert_eventually;
use dockhand_testkit::certs::{CertDir, TestCa};

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

#[test]
fn docker_tls_verify_reaches_a_tls_engine_and_refuses_a_wrong_ca() {
    require_docker!();
    let host = unique("tls-engine");
    let ca = TestCa::new();
    let relay = TlsRelay::start(&ca);
    let client = ca.issue(&["dockhand"]);
    let certs = CertDir::new();
    certs.write("ca.pem", &ca.pem());
    certs.write("cert.pem", &client.cert_pem);
    certs.write("key.pem", &client.key_pem);
    let proxy = dockhand()
        .env("DOCKER_HOST", &format!("tcp://{}", relay.addr))
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &certs.path().display().to_string())
        // Swarm's plain `GET /tasks` goes through the same TLS when the engine is a manager.
        .start();
    let _web = backend().vhost(&host).start();
    proxy.wait_status(&host, "/", 200);
    assert!(
        relay.handshakes() > 0,
        "dockhand did not go through the relay"
    );
    // `dockhand check` reads containers through the same TLS.
    let check = check_over(relay.addr, &certs);
    let out = String::from_utf8_lossy(&check.stdout);
    assert_ne!(check.status.code(), Some(2), "{check:?}");
    assert!(out.contains(&host), "{host} not checked: {out}");

    // The engine's certificate from another CA: not ready, and the log says why.
    let stranger = TestCa::new();
    let wrong = CertDir::new();
    wrong.write("ca.pem", &stranger.pem());
    wrong.write("cert.pem", &client.cert_pem);
    wrong.write("key.pem", &client.key_pem);
    let refused = dockhand()
        .env("DOCKER_HOST", &format!("tcp://{}", relay.addr))
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &wrong.path().display().to_string())
        .launch();
    assert_eventually!(
        refused.log().contains("TLS handshake with the engine")
            // UnknownIssuer: the engine's certificate is not from the CA in ca.pem.
            && refused.log().contains("invalid peer certificate"),
        PROPAGATION * 5,
        "no clear error: {}",
        refused.log()
    );
    let readiness = refused.admin_get("/readyz").expect("admin answers");
    assert_eq!(readiness.status, 503, "ready without an engine");
    assert_eq!(refused.status(&host, "/"), 503, "routes without an engine");
    let check = check_over(relay.addr, &wrong);
    assert_eq!(check.status.code(), Some(2), "{check:?}");
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");
}

/// `dockhand check --json` against the engine at `addr` over TLS with the files in `certs`.
fn check_over(addr: SocketAddr, certs: &CertDir) -> std::process::Output {
    std::process::Command::new(DOCKHAND)
        .env_clear()
        .env("DOCKER_HOST", format!("tcp://{addr}"))
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", certs.path())
        .args(["check", "--json"])
        .output()
        .expect("the dockhand binary runs")
}

/// A TLS → Docker socket relay standing in for an engine on `tcp://…:2376`: its certificate is
/// for 127.0.0.1 from `ca`, and it requires a client certificate from `ca`, as `dockerd
/// --tlsverify` does. Its runtime, and every connection, ends on drop.
struct TlsRelay {
    addr: SocketAddr,
    handshakes: Arc<std::sync::atomic::AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

impl TlsRelay {
    fn start(ca: &TestCa) -> TlsRelay {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let issued = ca.issue(&["127.0.0.1"]);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca.der()))
            .expect("the test CA");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.into(),
            provider.clone(),
        )
        .build()
        .expect("client verifier");
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from(issued.der.clone())],
                PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).expect("key"),
            )
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("relay runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the relay");
        let addr = listener.local_addr().expect("relay address");
        let handshakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = handshakes.clone();
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, counted) = (acceptor.clone(), counted.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return; // a refused client: the handshake failed on its side too
                    };
                    counted.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut engine) =
                        tokio::net::UnixStream::connect("/var/run/docker.sock").await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut engine).await;
                });
            }
        });
        TlsRelay {
            addr,
            handshakes,
            _runtime: runtime,
        }
    }

    fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }
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
