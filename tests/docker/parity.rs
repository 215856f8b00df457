//! Drop-in parity with nginx-proxy on the wire: header-name case, the `Server` header,
//! `DEFAULT_ROOT`, error pages, external ports, the debug endpoint, access-log formats.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use dockhand_testkit::echo::Echo;

use crate::support::*;

/// Sends `request` as written (header-name case included) and reads the answer to the end
/// (the request should say `Connection: close`).
fn raw(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The echo in a raw answer's body.
fn echo_of(answer: &str) -> Echo {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not an echo ({e}):\n{answer}"))
}

/// The header names of a raw answer's head, as written.
fn response_names(answer: &str) -> Vec<&str> {
    let head = answer
        .split_once("\r\n\r\n")
        .map_or(answer, |(head, _)| head);
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(':').map(|(name, _)| name))
        .collect()
}

#[test]
fn header_names_keep_the_clients_case_and_added_ones_are_title_case() {
    require_docker!();
    let host = unique("case");
    let proxy = dockhand().start();
    let _web = backend().vhost(&host).start();
    proxy.wait_status(&host, "/", 200);

    let answer = raw(
        proxy.http,
        &format!(
            "GET /case HTTP/1.1\r\nHOST: {host}\r\nX-CamelCase-Token: a\r\nx-all-lower: b\r\n\
             X-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n"
        ),
    );
    let seen = echo_of(&answer);
    let names = &seen.header_names;
    for name in [
        // The client's, as written.
        "HOST",
        "X-CamelCase-Token",
        "x-all-lower",
        "X-Forwarded-For",
        // dockhand's own, in canonical Title-Case.
        "X-Real-Ip",
        "X-Forwarded-Proto",
        "X-Forwarded-Host",
        "X-Forwarded-Port",
        "X-Forwarded-Ssl",
        "X-Original-Uri",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
    assert!(
        names
            .iter()
            .all(|n| n != "x-real-ip" && n != "x-camelcase-token"),
        "{names:?}"
    );
    // The backend's response names keep the backend's case (the echo writes lower case), the
    // ones hyper adds for dockhand are Title-Case.
    let head = response_names(&answer);
    assert!(head.contains(&"x-backend"), "{head:?}");
    assert!(head.contains(&"content-type"), "{head:?}");

    // dockhand's own pages: canonical names.
    let answer = raw(
        proxy.http,
        &format!(
            "GET / HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            unique("nobody")
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let head = response_names(&answer);
    assert!(head.contains(&"Content-Type"), "{head:?}");
    assert!(head.contains(&"Content-Length"), "{head:?}");
}
