//! HTTPS end to end: real TLS clients against `serve_tls` with certificates from a folder.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dockhand_proxy::spec::SslPolicy;
use dockhand_proxy::{
    serve_tls, server_config, CertStore, Metrics, Proxy, ProxyConfig, RouteTable, TableReader,
    TableSpec, TlsMetrics, TlsOptions,
};
use dockhand_testkit::certs::TestCa;
use http::{Request, Version};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{AlertDescription, ClientConfig, RootCertStore};
use support::*;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A test CA that issues leaves into a certificate folder.
struct Ca {
    ca: TestCa,
    dir: TempDir,
}

impl Ca {
    fn new() -> Ca {
        Ca {
            ca: TestCa::new(),
            dir: TempDir::new().unwrap(),
        }
    }

    /// Issues a leaf for `names` and installs it as `<file>.crt`/`.key` the way certificate
    /// tools replace files (written aside, renamed over). Returns the leaf's DER.
    fn install(&self, file: &str, names: &[&str]) -> Vec<u8> {
        let issued = self.ca.issue(names);
        replace(
            &self.dir.path().join(format!("{file}.crt")),
            &issued.chain_pem,
        );
        replace(
            &self.dir.path().join(format!("{file}.key")),
            &issued.key_pem,
        );
        issued.der
    }

    fn client(&self, alpn: &[&[u8]]) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(self.ca.der())).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }
}

fn replace(path: &Path, contents: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, contents).unwrap();
    std::fs::rename(aside, path).unwrap();
}

/// `serve_tls` on 127.0.0.1:0 over the CA's folder, with the folder watched.
struct TlsProxy {
    addr: SocketAddr,
    store: CertStore,
    registry: prometheus::Registry,
    stop: Option<oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TlsProxy {
    async fn start(ca: &Ca, spec: TableSpec) -> TlsProxy {
        TlsProxy::start_with(ca, spec, ProxyConfig::default()).await
    }

    async fn start_with(ca: &Ca, spec: TableSpec, config: ProxyConfig) -> TlsProxy {
        let registry = prometheus::Registry::new();
        let metrics = Metrics::new(&registry).unwrap();
        let table = RouteTable::build(&spec, 1, &metrics, &Default::default());
        let table = TableReader::fixed(table);
        dockhand_proxy::register_ejected_gauge(&registry, table.clone()).unwrap();
        let proxy = Proxy::new(config, table.clone(), metrics);
        let store = CertStore::new(
            ca.dir.path().to_path_buf(),
            TlsMetrics::new(&registry).unwrap(),
        );
        store.reload();
        let tls = server_config(store.clone(), table, TlsOptions::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let serve = serve_tls(
            listener,
            proxy,
            tls,
            store.metrics().clone(),
            shutdown,
            Duration::from_secs(5),
        );
        let tasks = vec![
            tokio::spawn(async move { serve.await.unwrap() }),
            tokio::spawn(store.clone().watch(Duration::from_millis(20))),
        ];
        TlsProxy {
            addr,
            store,
            registry,
            stop: Some(stop),
            tasks,
        }
    }

    async fn connect(
        &self,
        client: &TlsConnector,
        sni: &str,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        let name = ServerName::try_from(sni.to_owned()).unwrap();
        client.connect(name, tcp).await
    }

    fn metrics_text(&self) -> String {
        let mut out = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &self.registry.gather(),
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn presented(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    let certs: &[CertificateDer<'_>] = stream.get_ref().1.peer_certificates().unwrap();
    certs[0].to_vec()
}

/// An HTTP/1.1 sender over an established TLS stream.
async fn http1(
    stream: TlsStream<TcpStream>,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn get1(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: &str,
    path: &str,
) -> Reply {
    let req = Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    collect(sender.send_request(req).await.unwrap()).await
}

fn alert(error: &std::io::Error) -> Option<AlertDescription> {
    match error.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

#[tokio::test]
async fn sni_chooses_the_certificate() {
    let ca = Ca::new();
    let app = ca.install("app.test", &["app.test"]);
    let wild = ca.install("example.test", &["example.test", "*.example.test"]);
    let web = backend("web").start().await;
    let spec = table()
        .vhost("app.test", vec![path("/", &[&web])])
        .vhost("shop.example.test", vec![path("/", &[&web])])
        .spec();
    let proxy = TlsProxy::start(&ca, spec).await;
    let client = ca.client(&[b"http/1.1"]);

    let stream = proxy.connect(&client, "app.test").await.unwrap();
    assert_eq!(presented(&stream), app);
    let stream = proxy.connect(&client, "shop.example.test").await.unwrap();
    assert_eq!(presented(&stream), wild, "the parent domain's certificate");
    let mut sender = http1(stream).await;
    let reply = get1(&mut sender, "shop.example.test", "/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.backend(), "web");
    let metrics = proxy.metrics_text();
    assert!(metrics.contains("dockhand_tls_handshakes_total{result=\"ok\"} 2"));
    assert!(metrics.contains("dockhand_tls_certificates 2"), "{metrics}");
    assert!(metrics.contains("dockhand_tls_certificate_not_after_seconds{cert=\"app.test\"}"));
}

#[tokio::test]
async fn unknown_name_without_default_is_refused_with_unrecognized_name() {
    let ca = Ca::new();
    ca.install("app.test", &["app.test"]);
    let proxy = TlsProxy::start(&ca, table().spec()).await;
    let client = ca.client(&[b"http/1.1"]);
    let error = proxy.connect(&client, "unknown.test").await.unwrap_err();
    assert_eq!(
        alert(&error),
        Some(AlertDescription::UnrecognisedName),
        "{error:?}"
    );
    assert!(proxy
        .metrics_text()
        .contains("dockhand_tls_handshakes_total{result=\"no_cert\"} 1"));
}

#[tokio::test]
async fn unknown_name_with_default_gets_default_and_503() {
    let ca = Ca::new();
    let default = ca.install("default", &["unknown.test"]);
    let proxy = TlsProxy::start(&ca, table().spec()).await;
    let client = ca.client(&[b"http/1.1"]);
    let stream = proxy.connect(&client, "unknown.test").await.unwrap();
    assert_eq!(presented(&stream), default);
    let mut sender = http1(stream).await;
    assert_eq!(get1(&mut sender, "unknown.test", "/").await.status, 503);
}

#[tokio::test]
async fn h2_over_alpn_reaches_an_http1_backend_with_forwarded_headers() {
    let ca = Ca::new();
    ca.install("app.test", &["app.test"]);
    let web = backend("web").start().await;
    let spec = table().vhost("app.test", vec![path("/", &[&web])]).spec();
    let proxy = TlsProxy::start(&ca, spec).await;
    let client = ca.client(&[b"h2", b"http/1.1"]);
    let stream = proxy.connect(&client, "app.test").await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("https://app.test/hello?x=1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    let reply = collect(response).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.backend(), "web");
    assert_eq!(reply.uri(), "/hello?x=1");
    let port = proxy.addr.port().to_string();
    assert_eq!(reply.sent("x-forwarded-proto"), ["https"]);
    assert_eq!(reply.sent("x-forwarded-ssl"), ["on"]);
    assert_eq!(reply.sent("x-forwarded-port"), [port.as_str()]);
    assert_eq!(reply.sent("host"), [format!("app.test:{port}")]);
}

#[tokio::test]
async fn replaced_certificate_serves_new_connections_and_spares_open_ones() {
    let ca = Ca::new();
    let old = ca.install("app.test", &["app.test"]);
    let web = backend("web").start().await;
    let spec = table().vhost("app.test", vec![path("/", &[&web])]).spec();
    let proxy = TlsProxy::start(&ca, spec).await;
    let client = ca.client(&[b"http/1.1"]);
    let stream = proxy.connect(&client, "app.test").await.unwrap();
    assert_eq!(presented(&stream), old);
    let mut open = http1(stream).await;
    assert_eq!(get1(&mut open, "app.test", "/").await.status, 200);

    let new = ca.install("app.test", &["app.test"]);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let stream = proxy.connect(&client, "app.test").await.unwrap();
        if presented(&stream) == new {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(proxy.store.index().len(), 1);
    // The keep-alive connection negotiated before the swap goes on as it was.
    let reply = get1(&mut open, "app.test", "/again").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.uri(), "/again");
}

#[tokio::test]
async fn removed_certificate_is_refused_within_seconds() {
    let ca = Ca::new();
    ca.install("app.test", &["app.test"]);
    let proxy = TlsProxy::start(&ca, table().spec()).await;
    let client = ca.client(&[b"http/1.1"]);
    proxy.connect(&client, "app.test").await.unwrap();
    std::fs::remove_file(ca.dir.path().join("app.test.key")).unwrap();
    assert_eventually!(
        proxy.connect(&client, "app.test").await.is_err(),
        "the removed certificate is still served"
    );
}

#[tokio::test]
async fn a_tls_session_quiet_after_its_handshake_is_closed() {
    let ca = Ca::new();
    ca.install("app.test", &["app.test"]);
    let web = backend("web").start().await;
    let spec = table().vhost("app.test", vec![path("/", &[&web])]).spec();
    let config = ProxyConfig {
        header_read_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    };
    let proxy = TlsProxy::start_with(&ca, spec, config).await;
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let mut stream = proxy
            .connect(&ca.client(&[alpn]), "app.test")
            .await
            .unwrap();
        // The handshake is done; the client sends nothing more.
        let mut buf = [0u8; 1024];
        let closed = tokio::time::timeout(DEADLINE, async {
            while let Ok(n) = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a quiet {alpn:?} session was kept open");
    }
    assert_eq!(web.requests(), 0);
}

#[tokio::test]
async fn an_h2_ping_flood_over_tls_gets_goaway_enhance_your_calm() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = Ca::new();
    ca.install("app.test", &["app.test"]);
    let proxy = TlsProxy::start(&ca, table().spec()).await;
    let stream = proxy
        .connect(&ca.client(&[b"h2"]), "app.test")
        .await
        .unwrap();
    let (mut read, mut write) = tokio::io::split(stream);
    let ping = [0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    let writer = tokio::spawn(async move {
        write.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await?;
        write.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await?;
        for _ in 0..1_000 {
            write.write_all(&ping.repeat(100)).await?;
        }
        std::io::Result::Ok(())
    });
    // Frames as they come, until a GOAWAY: its error code is the last 4 bytes.
    let mut received = Vec::new();
    let goaway = tokio::time::timeout(DEADLINE, async {
        loop {
            while received.len() >= 9 {
                let len = u32::from_be_bytes([0, received[0], received[1], received[2]]) as usize;
                if received.len() < 9 + len {
                    break;
                }
                let frame: Vec<u8> = received.drain(..9 + len).collect();
                if frame[3] == 7 {
                    return frame;
                }
            }
            let mut chunk = [0; 16384];
            let n = read
                .read(&mut chunk)
                .await
                .expect("closed without a GOAWAY");
            assert_ne!(n, 0, "closed without a GOAWAY");
            received.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("no GOAWAY in time");
    assert_eq!(goaway[13..17], [0, 0, 0, 0xb], "{goaway:?}");
    let ended = tokio::time::timeout(DEADLINE, writer).await;
    assert!(
        ended.is_ok(),
        "the flood was still accepted after the GOAWAY"
    );
}

/// A client like `Ca::client` that speaks only TLS 1.2.
fn tls12_client(ca: &Ca) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca.ca.der())).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn ssl_policy_per_vhost_sets_the_tls_versions() {
    let ca = Ca::new();
    ca.install("modern.test", &["modern.test"]);
    ca.install("usual.test", &["usual.test"]);
    let web = backend("web").start().await;
    let mut spec = table()
        .vhost("modern.test", vec![path("/", &[&web])])
        .vhost("usual.test", vec![path("/", &[&web])])
        .spec();
    let modern = spec
        .vhosts
        .iter_mut()
        .find(|v| v.host == "modern.test")
        .unwrap();
    modern.https.ssl_policy = SslPolicy::parse("Mozilla-Modern").unwrap();
    let proxy = TlsProxy::start(&ca, spec).await;

    // Mozilla-Modern is TLS 1.3 only: a TLS 1.2 client is refused, a TLS 1.3 one served.
    let error = proxy
        .connect(&tls12_client(&ca), "modern.test")
        .await
        .unwrap_err();
    assert_eq!(
        alert(&error),
        Some(AlertDescription::ProtocolVersion),
        "{error:?}"
    );
    let stream = proxy
        .connect(&ca.client(&[b"http/1.1"]), "modern.test")
        .await
        .unwrap();
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    // The default, Mozilla-Intermediate, still serves TLS 1.2.
    let stream = proxy
        .connect(&tls12_client(&ca), "usual.test")
        .await
        .unwrap();
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

#[tokio::test]
async fn http2_turned_off_for_a_vhost_is_not_offered_by_alpn() {
    let ca = Ca::new();
    ca.install("h1.test", &["h1.test"]);
    ca.install("h2.test", &["h2.test"]);
    let web = backend("web").start().await;
    let mut spec = table()
        .vhost("h1.test", vec![path("/", &[&web])])
        .vhost("h2.test", vec![path("/", &[&web])])
        .spec();
    let h1 = spec
        .vhosts
        .iter_mut()
        .find(|v| v.host == "h1.test")
        .unwrap();
    h1.https.http2 = false;
    let proxy = TlsProxy::start(&ca, spec).await;
    let client = ca.client(&[b"h2", b"http/1.1"]);

    let stream = proxy.connect(&client, "h1.test").await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut sender = http1(stream).await;
    assert_eq!(get1(&mut sender, "h1.test", "/").await.status, 200);
    let stream = proxy.connect(&client, "h2.test").await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
}

/// A client trusting the server CA of `ca`, presenting `cert` (issued by another CA).
fn client_with_cert(ca: &Ca, cert: &dockhand_testkit::certs::Issued) -> TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca.ca.der())).unwrap();
    let chain = CertificateDer::pem_slice_iter(cert.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// GET / for `host` with an `X-SSL-Client-Verify` the client made up, over `stream`.
async fn get_claiming_success(stream: TlsStream<TcpStream>, host: &str) -> Reply {
    let mut sender = http1(stream).await;
    let req = Request::get("/")
        .header("host", host)
        .header("x-ssl-client-verify", "SUCCESS")
        .body(Full::new(Bytes::new()))
        .unwrap();
    collect(sender.send_request(req).await.unwrap()).await
}

#[tokio::test]
async fn client_certificates_per_vhost_as_nginx_proxy_reads_them() {
    use dockhand_proxy::spec::VerifyClient;
    let ca = Ca::new();
    for host in ["mtls.test", "opt.test", "noca.test", "off.test"] {
        ca.install(host, &[host]);
    }
    let clients = TestCa::new();
    let (good, revoked) = (clients.issue(&["alice"]), clients.issue(&["mallory"]));
    let stranger = TestCa::new().issue(&["eve"]);
    let write = |file: &str, text: &str| std::fs::write(ca.dir.path().join(file), text).unwrap();
    write("mtls.test.ca.crt", &clients.pem());
    write("mtls.test.crl.pem", &clients.crl(&[&revoked]));
    write("opt.test.ca.crt", &clients.pem());
    // The global CA serves every vhost without a CA of its own.
    write("ca.crt", &clients.pem());
    write("ca.crl.pem", &clients.crl(&[&revoked]));
    let web = backend("web").start().await;
    let mut spec = table()
        .vhost("mtls.test", vec![path("/", &[&web])])
        .vhost("opt.test", vec![path("/", &[&web])])
        .vhost("noca.test", vec![path("/", &[&web])])
        .vhost("off.test", vec![path("/", &[&web])])
        .spec();
    for vhost in &mut spec.vhosts {
        vhost.https.verify_client = match vhost.host.as_str() {
            "opt.test" => VerifyClient::Optional,
            "noca.test" => VerifyClient::OptionalNoCa,
            "off.test" => VerifyClient::Off,
            _ => VerifyClient::On,
        };
    }
    let proxy = TlsProxy::start(&ca, spec).await;
    let anonymous = ca.client(&[b"http/1.1"]);

    // GET / on `host` through a new TLS connection made by `client`.
    let proxy = &proxy;
    let claim = |client: TlsConnector, host: &'static str| async move {
        let stream = proxy.connect(&client, host).await.unwrap();
        get_claiming_success(stream, host).await
    };
    let with = |cert| client_with_cert(&ca, cert);

    // `on` (the default): a verified certificate is forwarded as SUCCESS, whatever the client
    // claims. As with nginx the handshake always succeeds: none is a 400 ("No required SSL
    // certificate was sent"), and so is a revoked one or one from another CA ("The SSL
    // certificate error"), never forwarded.
    let reply = claim(with(&good), "mtls.test").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.sent("x-ssl-client-verify"), ["SUCCESS"]);
    assert_eq!(claim(anonymous.clone(), "mtls.test").await.status, 400);
    for refused in [&revoked, &stranger] {
        let reply = claim(with(refused), "mtls.test").await;
        assert_eq!(reply.status, 400, "{} was not refused", refused.serial);
    }

    // `optional`: no certificate is NONE, the client's claim replaced; a certificate is
    // verified all the same, and one that does not verify is a 400 as under `on`.
    let reply = claim(anonymous.clone(), "opt.test").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.sent("x-ssl-client-verify"), ["NONE"]);
    let reply = claim(with(&good), "opt.test").await;
    assert_eq!(reply.sent("x-ssl-client-verify"), ["SUCCESS"]);
    assert_eq!(claim(with(&stranger), "opt.test").await.status, 400);

    // `optional_no_ca` (with the global ca.crt present): a certificate of an unknown issuer is
    // forwarded as FAILED with OpenSSL's reason; one the CA issued verifies; a revoked one is
    // still refused (nginx lets only issuer errors through).
    let reply = claim(with(&stranger), "noca.test").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.sent("x-ssl-client-verify"),
        ["FAILED:unable to get local issuer certificate"]
    );
    let reply = claim(with(&good), "noca.test").await;
    assert_eq!(reply.sent("x-ssl-client-verify"), ["SUCCESS"]);
    assert_eq!(claim(with(&revoked), "noca.test").await.status, 400);

    // `off`: no certificate asked for, and the request's headers are the client's business.
    let reply = claim(anonymous, "off.test").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.sent("x-ssl-client-verify"), ["SUCCESS"]);
}
