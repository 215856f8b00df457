//! HTTPS as nginx-proxy users know it: the same certificate folder, SNI lookup order, HTTPS_METHOD
//! policies, HSTS, HTTP/2, ACME webroot, basic auth, and certificates that change under load.

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use dockhand_testkit::assert_eventually;
use dockhand_testkit::certs::{CertDir, TestCa};
use dockhand_testkit::http::{self, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use crate::support::*;

const TRUST_DEFAULT: &str = "com.github.nginx-proxy.nginx-proxy.trust-default-cert";

/// The leaf certificate a handshake for `host` presents, or `None` when it is refused.
fn served_cert(proxy: &Dockhand, host: &str) -> Option<Vec<u8>> {
    let tls = proxy.get_tls(host, "/").ok()?.tls?;
    tls.peer_certificates.into_iter().next()
}

#[test]
fn sni_picks_certificates_in_nginx_proxy_order() {
    require_docker!();
    let zone = unique("sni");
    let (ca, certs) = (TestCa::new(), CertDir::new());
    let exact = ca.issue(&[&format!("exact.{zone}")]);
    let parent = ca.issue(&[&zone, &format!("*.{zone}")]);
    let named = ca.issue(&["shared.example"]);
    let fallback = ca.issue(&["default.example"]);
    certs.install(&format!("exact.{zone}"), &exact);
    certs.install(&zone, &parent);
    certs.install("shared", &named);
    certs.install("default", &fallback);
    let proxy = dockhand().certs(certs.path()).start();

    let _exact = backend().vhost(&format!("exact.{zone}")).start();
    let _child = backend().vhost(&format!("child.{zone}")).start();
    let _named = backend()
        .vhost(&format!("named.{zone}"))
        .env("CERT_NAME", "shared")
        .start();
    let _other = backend().vhost(&format!("other-{zone}")).start();
    let _strict = backend()
        .vhost(&format!("strict-{zone}"))
        .label(TRUST_DEFAULT, "false")
        .start();
    for host in ["exact", "child", "named"] {
        proxy.wait_status(&format!("{host}.{zone}"), "/", 301);
    }
    // `other` and `strict` must be routed too before certificates are compared: until then they
    // are unknown names, which also get the default certificate (the `strict` assertion below
    // once raced the container's discovery this way).
    proxy.wait_status(&format!("other-{zone}"), "/", 301);
    proxy.wait_status(&format!("strict-{zone}"), "/", 200);

    assert_eq!(
        served_cert(&proxy, &format!("exact.{zone}")),
        Some(exact.der.clone())
    );
    assert_eq!(
        served_cert(&proxy, &format!("child.{zone}")),
        Some(parent.der.clone()),
        "parent"
    );
    assert_eq!(
        served_cert(&proxy, &format!("named.{zone}")),
        Some(named.der.clone()),
        "CERT_NAME"
    );
    assert_eq!(
        served_cert(&proxy, &format!("other-{zone}")),
        Some(fallback.der.clone()),
        "default"
    );
    // An unknown name gets the default certificate and the unknown-host answer.
    assert_eq!(proxy.status_tls(&unique("unknown"), "/"), 503);
    // A vhost that refuses the default certificate is not served over TLS, and falls back to
    // plain HTTP (ENABLE_HTTP_ON_MISSING_CERT).
    assert_eq!(served_cert(&proxy, &format!("strict-{zone}")), None);
    let metrics = proxy.metrics();
    assert!(
        metrics.contains("dockhand_tls_handshakes_total"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "dockhand_tls_certificate_not_after_seconds{{cert=\"exact.{zone}\"}}"
    )));
}

#[test]
fn without_default_cert_unknown_names_are_refused_and_bad_files_are_named() {
    require_docker!();
    let host = unique("nodefault");
    let (ca, certs) = (TestCa::new(), CertDir::new());
    certs.install(&host, &ca.issue(&[&host]));
    certs.write(
        "broken.crt",
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
    );
    certs.write("broken.key", "nonsense");
    let proxy = dockhand().certs(certs.path()).start();
    let _web = backend().vhost(&host).start();
    proxy.wait_status(&host, "/", 301);

    assert_eq!(proxy.status_tls(&host, "/"), 200);
    let refused = proxy
        .get_tls(&unique("stranger"), "/")
        .expect_err("handshake refused");
    let message = format!("{refused:?}").to_lowercase();
    assert!(
        message.contains("unrecognisedname") || message.contains("unrecognized"),
        "{message}"
    );
    assert!(
        proxy
            .log()
            .lines()
            .any(|l| l.contains("broken.crt") || l.contains("broken")),
        "{}",
        proxy.log()
    );
}

/// nginx-proxy's default server listens on 443 even with an empty certificate folder and
/// rejects handshakes (`ssl_reject_handshake`): HTTPS to an HTTP-only vhost ends in a TLS alert,
/// not a refused connection, and a certificate added later is served without a restart.
#[test]
fn https_is_bound_without_certificates_and_refuses_with_unrecognized_name() {
    require_docker!();
    let host = unique("httponly");
    let certs = CertDir::new();
    let proxy = dockhand().certs(certs.path()).start();
    let _web = backend().vhost(&host).start();
    proxy.wait_status(&host, "/", 200);

    let refused = proxy.get_tls(&host, "/").expect_err("handshake refused");
    let message = format!("{refused:?}").to_lowercase();
    assert!(
        message.contains("unrecognisedname") || message.contains("unrecognized"),
        "a TLS alert, not a refused connection: {message}"
    );

    certs.install(&host, &TestCa::new().issue(&[&host]));
    assert_eventually!(
        proxy.status_tls(&host, "/") == 200,
        Duration::from_secs(10),
        "the new certificate was never served:\n{}",
        proxy.log()
    );
}

#[test]
fn https_methods_redirects_and_hsts() {
    require_docker!();
    let zone = unique("methods");
    let (ca, certs) = (TestCa::new(), CertDir::new());
    certs.install(&zone, &ca.issue(&[&zone, &format!("*.{zone}")]));
    let proxy = dockhand().certs(certs.path()).start();
    let host = |name: &str| format!("{name}.{zone}");
    let _redirect = backend()
        .vhost(&host("redirect"))
        .label("com.github.nginx-proxy.nginx-proxy.non-get-redirect", "307")
        .start();
    let _noredirect = backend()
        .vhost(&host("noredirect"))
        .env("HTTPS_METHOD", "noredirect")
        .start();
    let _nohttp = backend()
        .vhost(&host("nohttp"))
        .env("HTTPS_METHOD", "nohttp")
        .env("HSTS", "max-age=60; preload")
        .start();
    let _nohttps = backend()
        .vhost(&host("nohttps"))
        .env("HTTPS_METHOD", "nohttps")
        .start();
    let _nohsts = backend().vhost(&host("nohsts")).env("HSTS", "off").start();
    proxy.wait_status(&host("redirect"), "/", 301);

    // redirect: 301 for GET keeping path, query and the non-default HTTPS port; 307 for POST.
    let moved = proxy.get(&host("redirect"), "/a/b?c=d");
    let location = format!(
        "https://{}:{}/a/b?c=d",
        host("redirect"),
        proxy.https.port()
    );
    assert_eq!(moved.header("location"), Some(location.as_str()));
    let post = Request::new(hyper::Method::POST, proxy.http, "/form")
        .host(&host("redirect"))
        .send()
        .expect("POST");
    assert_eq!(post.status, 307);
    let secure = proxy.get_tls(&host("redirect"), "/").expect("https");
    assert_eq!(
        secure.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    let missing = proxy
        .get_tls(&host("redirect"), "/status/404")
        .expect("https 404");
    assert_eq!(
        (
            missing.status.as_u16(),
            missing.header("strict-transport-security")
        ),
        (404, Some("max-age=31536000"))
    );

    // noredirect: both serve, and never HSTS.
    proxy.wait_status(&host("noredirect"), "/", 200);
    let both = proxy.get_tls(&host("noredirect"), "/").expect("https");
    assert_eq!(
        (
            both.status.as_u16(),
            both.header("strict-transport-security")
        ),
        (200, None)
    );

    // nohttp: HTTPS carries the custom HSTS verbatim; plain HTTP is the unknown-host answer.
    // Polled over TLS: plain HTTP answers 503 before the container is discovered too.
    assert_eventually!(proxy
        .get_tls(&host("nohttp"), "/")
        .is_ok_and(|r| r.header("strict-transport-security") == Some("max-age=60; preload")));
    assert_eq!(proxy.get(&host("nohttp"), "/").status, 503);

    // nohttps: plain HTTP only. Over TLS the name falls to the fallback server, which has no
    // default.crt here, so the handshake is refused (nginx's ssl_reject_handshake).
    proxy.wait_status(&host("nohttps"), "/", 200);
    assert!(
        proxy.get_tls(&host("nohttps"), "/").is_err(),
        "nohttps served over TLS"
    );

    // HSTS=off: still redirected, no header over HTTPS.
    proxy.wait_status(&host("nohsts"), "/", 301);
    assert_eq!(
        proxy
            .get_tls(&host("nohsts"), "/")
            .expect("https")
            .header("strict-transport-security"),
        None
    );
}

#[test]
fn http2_front_and_forwarded_headers_over_tls() {
    require_docker!();
    let host = unique("h2");
    let (ca, certs) = (TestCa::new(), CertDir::new());
    certs.install(&host, &ca.issue(&[&host]));
    let proxy = dockhand().certs(certs.path()).start();
    let _web = backend().vhost(&host).start();
    proxy.wait_status(&host, "/", 301);

    let response = proxy.get_tls(&host, "/hello").expect("https");
    assert_eq!(response.version, hyper::Version::HTTP_2, "ALPN chose h2");
    assert_eq!(
        response
            .tls
            .as_ref()
            .and_then(|t| t.alpn.clone())
            .as_deref(),
        Some(&b"h2"[..])
    );
    let echo = response.echo().expect("echo");
    assert_eq!(echo.version, "HTTP/1.1", "pooled HTTP/1.1 to the backend");
    assert_eq!(echo.header("x-forwarded-proto"), Some("https"));
    assert_eq!(echo.header("x-forwarded-ssl"), Some("on"));
    assert_eq!(
        echo.header("x-forwarded-port"),
        Some(proxy.https.port().to_string().as_str())
    );
}

#[test]
fn a_replaced_certificate_takes_effect_without_cutting_open_connections() {
    require_docker!();
    let host = unique("renew");
    let (ca, certs) = (TestCa::new(), CertDir::new());
    let (old, new) = (ca.issue(&[&host]), ca.issue(&[&host]));
    certs.install(&host, &old);
    let proxy = dockhand().certs(certs.path()).start();
    let _web = backend().vhost(&host).start();
    proxy.wait_status(&host, "/", 301);

    // One keep-alive connection, opened before the renewal and used again after it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let get = || {
        hyper::Request::get("/")
            .header("host", host.as_str())
            .body(Empty::<Bytes>::new())
            .expect("request")
    };
    let mut sender = runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(proxy.https)
            .await
            .expect("connect");
        let (tls, info) = http::tls::connect(tcp, &host, false)
            .await
            .expect("handshake");
        assert_eq!(info.peer_certificates.first(), Some(&old.der));
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("h1");
        tokio::spawn(conn);
        assert_eq!(
            sender.send_request(get()).await.expect("first").status(),
            200
        );
        sender
    });

    certs.install(&host, &new);
    assert_eventually!(
        served_cert(&proxy, &host) == Some(new.der.clone()),
        Duration::from_secs(5),
        "renewal not seen"
    );

    runtime.block_on(async {
        let response = sender
            .send_request(get())
            .await
            .expect("keep-alive request after renewal");
        assert_eq!(response.status(), 200);
        let _ = response.into_body().collect().await;
    });
}

#[test]
fn acme_challenges_are_served_on_port_80_before_the_redirect() {
    require_docker!();
    let host = unique("acme");
    let (ca, certs) = (TestCa::new(), CertDir::new());
    certs.install(&host, &ca.issue(&[&host]));
    let webroot = CertDir::new();
    std::fs::create_dir_all(webroot.path().join(".well-known/acme-challenge")).expect("mkdir");
    std::fs::write(
        webroot.path().join(".well-known/acme-challenge/tok3n"),
        "tok3n.thumbprint",
    )
    .expect("token");
    let proxy = dockhand()
        .certs(certs.path())
        .env("DOCKHAND_ACME_WEBROOT", &webroot.path().to_string_lossy())
        .start();
    let _web = backend().vhost(&host).start();
    proxy.wait_status(&host, "/", 301);

    let challenge = proxy.get(&host, "/.well-known/acme-challenge/tok3n");
    assert_eq!(
        (challenge.status.as_u16(), challenge.text()),
        (200, "tok3n.thumbprint".to_owned())
    );
    assert_eq!(
        proxy.status(&host, "/.well-known/acme-challenge/missing"),
        404
    );
    assert_eq!(
        proxy.status(&host, "/.well-known/acme-challenge/..%2F..%2Fetc%2Fpasswd"),
        404
    );
}

#[test]
fn basic_auth_from_htpasswd_files() {
    require_docker!();
    let (host, open) = (unique("auth"), unique("open"));
    let htpasswd = CertDir::new();
    let apr1 = openssl(&["passwd", "-apr1", "s3cret"]);
    htpasswd.write(&host, &format!("alice:{apr1}\n"));
    let proxy = dockhand()
        .env("DOCKHAND_HTPASSWD_DIR", &htpasswd.path().to_string_lossy())
        .env("HTTPS_METHOD", "noredirect")
        .start();
    let _web = backend().vhost(&host).start();
    let _open = backend().vhost(&open).start();
    proxy.wait_status(&open, "/", 200);
    proxy.wait_status(&host, "/", 401);

    let denied = proxy.get(&host, "/");
    assert_eq!(denied.status, 401);
    let realm = format!("Basic realm=\"Restricted {host}\"");
    assert_eq!(denied.header("www-authenticate"), Some(realm.as_str()));
    let basic = |user: &str, password: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    let with = |auth: String| {
        Request::get(proxy.http, "/")
            .host(&host)
            .header("authorization", &auth)
            .send()
            .expect("request")
    };
    assert_eq!(with(basic("alice", "s3cret")).status, 200);
    assert_eq!(with(basic("alice", "wrong")).status, 401);
    assert_eq!(with("Basic !!!".to_owned()).status, 401);

    // The file is re-read when it changes: a SHA1 entry for bob.
    let sha = openssl_pipe("s3cret", &["dgst", "-sha1", "-binary"]);
    use base64::Engine as _;
    htpasswd.write(
        &host,
        &format!(
            "bob:{{SHA}}{}\n",
            base64::engine::general_purpose::STANDARD.encode(sha)
        ),
    );
    assert_eventually!(
        with(basic("bob", "s3cret")).status == 200,
        Duration::from_secs(5)
    );
    assert_eq!(with(basic("alice", "s3cret")).status, 401);
}

fn openssl(args: &[&str]) -> String {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(output.status.success(), "openssl {args:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn openssl_pipe(input: &str, args: &[&str]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    child.wait_with_output().expect("openssl output").stdout
}
