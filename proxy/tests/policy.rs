//! HTTPS policies end to end with real TCP backends: redirects with a certificate lookup that
//! says yes, HSTS on connections the service is told are TLS, ACME files, basic auth and
//! `NETWORK_ACCESS`.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use dockhand_proxy::spec::{AcmeChallenge, HttpsMethod, HttpsPolicy, NetworkAccess};
use dockhand_proxy::{
    serve, BackendRegistry, CertLookup, ConnInfo, Metrics, Proxy, ProxyConfig, RouteTable,
    TableReader, TableSpec,
};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use support::*;
use tokio::net::TcpListener;

/// Every vhost has a usable certificate.
struct AllCerts;

impl CertLookup for AllCerts {
    fn has_usable_cert(&self, _host: &str, _policy: &HttpsPolicy) -> bool {
        true
    }
}

/// Serves `spec` on 127.0.0.1:0; `tls` tells the service its connections are TLS (the bytes
/// stay plain, so no certificate is needed to test the HTTPS side of the policies).
async fn start(spec: TableSpec, config: ProxyConfig, tls: bool) -> SocketAddr {
    let metrics = Metrics::new(&prometheus::Registry::new()).unwrap();
    let table = RouteTable::build(&spec, 1, &metrics, &BackendRegistry::new());
    let table = TableReader::fixed(table);
    let proxy = Proxy::new(config, table, metrics).with_certs(Arc::new(AllCerts));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    if tls {
        tokio::spawn(serve_as_tls(listener, proxy));
    } else {
        let forever = std::future::pending::<()>();
        tokio::spawn(serve(listener, proxy, forever, Duration::from_secs(1)));
    }
    addr
}

async fn serve_as_tls(listener: TcpListener, proxy: Proxy) {
    let local = listener.local_addr().unwrap();
    while let Ok((stream, peer)) = listener.accept().await {
        let service = proxy.service(ConnInfo {
            peer,
            local,
            tls: true,
            client_verify: None,
            proxied_port: None,
        });
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn with_https(mut spec: TableSpec, https: HttpsPolicy) -> TableSpec {
    for vhost in &mut spec.vhosts {
        vhost.https = https.clone();
    }
    spec
}

fn method(method: HttpsMethod) -> HttpsPolicy {
    HttpsPolicy {
        method,
        ..HttpsPolicy::default()
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dockhand-policy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn send(addr: SocketAddr, method: Method, host: &str, path: &str) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    request(addr, req).await
}

fn header<'r>(reply: &'r Reply, name: &str) -> Option<&'r str> {
    reply.headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn plain_http_redirects_to_https_keeping_path_and_query() {
    let web = backend("web").start().await;
    let spec = table().vhost("web.tld", vec![path("/", &[&web])]).spec();
    let https = HttpsPolicy {
        non_get_redirect: 308,
        ..HttpsPolicy::default()
    };
    let config = ProxyConfig {
        https_port: 8443,
        ..ProxyConfig::default()
    };
    let addr = start(with_https(spec, https), config, false).await;
    let reply = get(addr, "Web.TLD:8080", "/a/b?c=d").await;
    assert_eq!(reply.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        header(&reply, "location"),
        Some("https://web.tld:8443/a/b?c=d")
    );
    assert_eq!(header(&reply, "strict-transport-security"), None);
    let post = send(addr, Method::POST, "web.tld", "/form").await;
    assert_eq!(post.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header(&post, "location"), Some("https://web.tld:8443/form"));
    assert_eq!(web.requests(), 0);
}

#[tokio::test]
async fn acme_challenge_files_are_served_before_the_redirect() {
    let web = backend("web").start().await;
    let root = temp_dir("acme");
    let challenges = root.join(".well-known/acme-challenge");
    std::fs::create_dir_all(&challenges).unwrap();
    std::fs::write(challenges.join("tok-1"), "tok-1.thumbprint").unwrap();
    std::fs::write(root.join("secret"), "private").unwrap();
    let spec = table().vhost("web.tld", vec![path("/", &[&web])]).spec();
    let config = ProxyConfig {
        acme_webroot: root,
        ..ProxyConfig::default()
    };
    let addr = start(spec, config, false).await;
    let reply = get(addr, "web.tld", "/.well-known/acme-challenge/tok-1").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "tok-1.thumbprint");
    assert_eq!(header(&reply, "content-type"), Some("text/plain"));
    for missing in [
        "/.well-known/acme-challenge/nope",
        "/.well-known/acme-challenge/..%2F..%2Fsecret",
        "/.well-known/acme-challenge/",
    ] {
        let reply = get(addr, "web.tld", missing).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{missing}");
    }
    assert_eq!(
        get(addr, "web.tld", "/other").await.status,
        StatusCode::MOVED_PERMANENTLY
    );
    assert_eq!(web.requests(), 0);
}

#[tokio::test]
async fn nohttp_and_nohttps_answer_like_an_unknown_host() {
    let web = backend("web").start().await;
    let spec = |m| {
        with_https(
            table().vhost("web.tld", vec![path("/", &[&web])]).spec(),
            method(m),
        )
    };
    let http = start(spec(HttpsMethod::NoHttp), ProxyConfig::default(), false).await;
    let reply = get(http, "web.tld", "/.well-known/acme-challenge/x").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let https = start(spec(HttpsMethod::NoHttps), ProxyConfig::default(), true).await;
    assert_eq!(
        get(https, "web.tld", "/").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let both = start(spec(HttpsMethod::NoHttps), ProxyConfig::default(), false).await;
    assert_eq!(get(both, "web.tld", "/").await.backend(), "web");
}

#[tokio::test]
async fn hsts_is_on_every_https_answer_of_redirect_vhosts() {
    let web = backend("web").start().await;
    let spec = table()
        .vhost("web.tld", vec![path("/app/", &[&web])])
        .vhost("down.tld", vec![path("/", &[])])
        .spec();
    let custom = HttpsPolicy {
        hsts: Some("max-age=60; includeSubDomains".to_owned()),
        ..HttpsPolicy::default()
    };
    let addr = start(with_https(spec, custom), ProxyConfig::default(), true).await;
    let expected = Some("max-age=60; includeSubDomains");
    let ok = get(addr, "web.tld", "/app/x").await;
    assert_eq!(ok.backend(), "web");
    assert_eq!(header(&ok, "strict-transport-security"), expected);
    let no_path = get(addr, "web.tld", "/elsewhere").await;
    assert_eq!(no_path.status, StatusCode::NOT_FOUND);
    assert_eq!(header(&no_path, "strict-transport-security"), expected);
    let bad_gateway = get(addr, "down.tld", "/").await;
    assert_eq!(bad_gateway.status, StatusCode::BAD_GATEWAY);
    assert_eq!(header(&bad_gateway, "strict-transport-security"), expected);
    let unknown = get(addr, "other.tld", "/").await;
    assert_eq!(unknown.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&unknown, "strict-transport-security"), None);
}

#[tokio::test]
async fn no_hsts_for_noredirect_or_when_off() {
    let web = backend("web").start().await;
    let spec = || table().vhost("web.tld", vec![path("/", &[&web])]).spec();
    let off = HttpsPolicy {
        hsts: None,
        ..HttpsPolicy::default()
    };
    for policy in [method(HttpsMethod::NoRedirect), off] {
        let addr = start(with_https(spec(), policy), ProxyConfig::default(), true).await;
        let reply = get(addr, "web.tld", "/").await;
        assert_eq!(reply.backend(), "web");
        assert_eq!(header(&reply, "strict-transport-security"), None);
    }
    let default = start(spec(), ProxyConfig::default(), true).await;
    let reply = get(default, "web.tld", "/").await;
    assert_eq!(
        header(&reply, "strict-transport-security"),
        Some("max-age=31536000")
    );
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

async fn authed(addr: SocketAddr, path: &str, authorization: &str) -> Reply {
    let req = Request::get(path)
        .header("host", "web.tld")
        .header("authorization", authorization)
        .body(Full::new(Bytes::new()))
        .unwrap();
    request(addr, req).await
}

#[tokio::test]
async fn basic_auth_protects_a_vhost_from_its_htpasswd_file() {
    let web = backend("web").start().await;
    let dir = temp_dir("auth");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(dir.join("web.tld"), format!("alice:{hash}\n")).unwrap();
    // With a certificate, the default `redirect` would answer plain HTTP with a 301.
    let spec = table().vhost("web.tld", vec![path("/", &[&web])]).spec();
    let spec = with_https(spec, method(HttpsMethod::NoRedirect));
    let config = ProxyConfig {
        htpasswd_dir: dir.clone(),
        ..ProxyConfig::default()
    };
    let addr = start(spec, config, false).await;
    let anonymous = get(addr, "web.tld", "/").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&anonymous, "www-authenticate"),
        Some("Basic realm=\"Restricted web.tld\"")
    );
    let wrong = authed(addr, "/", &basic("alice", "guess")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let garbage = authed(addr, "/", "Basic %%%").await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);
    assert_eq!(web.requests(), 0);
    let right = authed(addr, "/", &basic("alice", "s3cret")).await;
    assert_eq!(right.backend(), "web");
    assert_eq!(right.sent("authorization"), [basic("alice", "s3cret")]);
    // A file added for one location wins there, once the proxy has looked again.
    let sha1_root = "42099b4af021e53fd8fd4e056c2568d7c2e3ffa8";
    std::fs::write(
        dir.join(format!("web.tld_{sha1_root}")),
        "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n",
    )
    .unwrap();
    assert_eventually!(
        authed(addr, "/", &basic("bob", "password")).await.status == StatusCode::OK,
        "the per-path htpasswd file was not picked up"
    );
    let alice = authed(addr, "/", &basic("alice", "s3cret")).await;
    assert_eq!(alice.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&alice, "www-authenticate"),
        Some("Basic realm=\"Restricted web.tld/\"")
    );
}

#[tokio::test]
async fn internal_locations_refuse_peers_outside_the_allow_list() {
    let web = backend("web").start().await;
    let mut spec = table()
        .vhost(
            "web.tld",
            vec![path("/", &[&web]), path("/admin/", &[&web])],
        )
        .spec();
    spec.vhosts[0].paths[1].network_access = NetworkAccess::Internal;
    spec.vhosts[0].https = method(HttpsMethod::NoRedirect);
    let loopback = start(spec.clone(), ProxyConfig::default(), false).await;
    assert_eq!(get(loopback, "web.tld", "/admin/").await.backend(), "web");
    let config = ProxyConfig {
        network_internal: vec!["10.0.0.0/8".parse().unwrap()],
        ..ProxyConfig::default()
    };
    let elsewhere = start(spec, config, false).await;
    let refused = get(elsewhere, "web.tld", "/admin/x").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("403 Forbidden"));
    assert_eq!(get(elsewhere, "web.tld", "/").await.backend(), "web");
}

#[tokio::test]
async fn acme_legacy_only_serves_redirecting_vhosts() {
    let web = backend("web").start().await;
    let root = temp_dir("legacy");
    let challenges = root.join(".well-known/acme-challenge");
    std::fs::create_dir_all(&challenges).unwrap();
    std::fs::write(challenges.join("t"), "t.k").unwrap();
    let legacy = |m| HttpsPolicy {
        acme_challenge: AcmeChallenge::Legacy,
        ..method(m)
    };
    let config = || ProxyConfig {
        acme_webroot: root.clone(),
        ..ProxyConfig::default()
    };
    let spec = || table().vhost("web.tld", vec![path("/", &[&web])]).spec();
    let redirecting = start(
        with_https(spec(), legacy(HttpsMethod::Redirect)),
        config(),
        false,
    )
    .await;
    assert_eq!(
        get(redirecting, "web.tld", "/.well-known/acme-challenge/t")
            .await
            .body,
        "t.k"
    );
    let plain = start(
        with_https(spec(), legacy(HttpsMethod::NoRedirect)),
        config(),
        false,
    )
    .await;
    let reply = get(plain, "web.tld", "/.well-known/acme-challenge/t").await;
    assert_eq!(reply.backend(), "web");
}

#[tokio::test]
async fn the_routes_json_shows_the_policies() {
    let web = backend("web").start().await;
    let mut spec = table().vhost("web.tld", vec![path("/", &[&web])]).spec();
    spec.vhosts[0].paths[0].network_access = NetworkAccess::Internal;
    let spec = with_https(spec, method(HttpsMethod::NoHttp));
    let metrics = Metrics::new(&prometheus::Registry::new()).unwrap();
    let table = RouteTable::build(&spec, 1, &metrics, &BackendRegistry::new());
    let json = serde_json::to_value(&table).unwrap();
    let vhost = &json["vhosts"][0];
    assert_eq!(vhost["https"]["method"], "nohttp");
    assert_eq!(vhost["https"]["hsts"], "max-age=31536000");
    assert_eq!(vhost["paths"][0]["network_access"], "internal");
}
