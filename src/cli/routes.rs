//! `dockhand routes`: the route table of a running dockhand, from its admin API
//! (`GET /api/routes`), as a table or as the API's JSON.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::EX_USAGE;

/// How long the admin listener gets to connect and to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Prints the table of the dockhand whose admin listener is `admin` (`--admin`): an
/// unspecified address (`0.0.0.0:9180`, as the image sets) means this host's loopback.
/// Exit status 0, 1 when the admin listener cannot be read, 64 when `admin` is not an address.
pub fn run(admin: &str, json: bool) -> ExitCode {
    let addr = match admin.parse::<SocketAddr>() {
        Ok(addr) => loopback_if_unspecified(addr),
        Err(error) => {
            eprintln!("dockhand routes: --admin {admin:?}: {error} (expected ip:port)");
            return ExitCode::from(EX_USAGE);
        }
    };
    let body = match fetch(addr, "/api/routes") {
        Ok(body) => body,
        Err(error) => {
            eprintln!("dockhand routes: cannot read http://{addr}/api/routes: {error}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{}", body.trim_end());
        return ExitCode::SUCCESS;
    }
    match serde_json::from_str::<Value>(&body) {
        Ok(routes) => {
            print!("{}", render(&routes));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("dockhand routes: http://{addr}/api/routes is not JSON: {error}");
            ExitCode::FAILURE
        }
    }
}

fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// A plain HTTP/1.1 GET with `Connection: close`, read to the end; the body of a 200.
pub(crate) fn fetch(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no complete HTTP response"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(std::io::Error::other(format!("answered {status:?}")));
    }
    Ok(body.to_owned())
}

/// `/api/routes` as a table: one line per backend (a location without any gets one line).
fn render(routes: &Value) -> String {
    let table = &routes["table"];
    let mut out = format!(
        "generation {}, {}, docker {}\n",
        table["generation"],
        if routes["ready"] == true {
            "ready"
        } else {
            "not ready"
        },
        if routes["docker_up"] == true {
            "up"
        } else {
            "down"
        },
    );
    if let Some(host) = table["default_host"].as_str() {
        let _ = writeln!(out, "default host {host}");
    }
    let mut rows = vec![[
        "VHOST",
        "PATH",
        "BACKEND",
        "ADDRESS",
        "STATE",
        "IN-FLIGHT",
        "HTTPS",
    ]
    .map(str::to_owned)];
    for vhost in array(&table["vhosts"]) {
        let https = vhost["https"]["method"].as_str().unwrap_or("-").to_owned();
        for path in array(&vhost["paths"]) {
            let backends = array(&path["backends"]);
            let cells = |b: Option<&Value>| {
                [
                    text(&vhost["host"]),
                    text(&path["path"]),
                    b.map_or("-".into(), |b| text(&b["container"])),
                    b.map_or("-".into(), |b| text(&b["addr"])),
                    b.map_or("no backend".into(), state),
                    b.map_or("-".into(), |b| b["in_flight"].to_string()),
                    https.clone(),
                ]
            };
            if backends.is_empty() {
                rows.push(cells(None));
            }
            rows.extend(backends.iter().map(|b| cells(Some(b))));
        }
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let line: Vec<String> = (row.iter().zip(&widths))
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

/// Whether a backend gets traffic, and why not.
fn state(backend: &Value) -> String {
    if backend["reachable"] != true {
        return "unreachable (no shared network)".to_owned();
    }
    if backend["ejected"] == true {
        let ms = backend["ejected_for_ms"].as_u64().unwrap_or(0);
        return format!("ejected ({:.1}s left)", ms as f64 / 1000.0);
    }
    match backend["health"].as_str() {
        Some("starting") => "health: starting".to_owned(),
        Some("unhealthy") => "health: unhealthy".to_owned(),
        _ => "up".to_owned(),
    }
}

fn array(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_line_per_backend_with_its_state() {
        let routes = serde_json::json!({"ready": true, "docker_up": true, "table": {
        "generation": 3, "default_host": null, "vhosts": [{
            "host": "a.test", "https": {"method": "redirect"},
            "paths": [{"path": "/", "backends": [
                {"container": "web1", "addr": "172.17.0.2:80", "reachable": true,
                 "health": "none", "in_flight": 2, "ejected": false, "ejected_for_ms": 0},
                {"container": "web2", "addr": "172.17.0.3:80", "reachable": true,
                 "health": "none", "in_flight": 0, "ejected": true, "ejected_for_ms": 1500},
                {"container": "web3", "addr": null, "reachable": false,
                 "health": "none", "in_flight": 0, "ejected": false, "ejected_for_ms": 0}
            ]}, {"path": "/empty", "backends": []}]
        }]}});
        let out = render(&routes);
        assert!(out.starts_with("generation 3, ready, docker up\n"), "{out}");
        let line = |name: &str| out.lines().find(|l| l.contains(name)).unwrap().to_owned();
        assert!(line("web1").contains("172.17.0.2:80") && line("web1").contains("up"));
        assert!(line("web2").contains("ejected (1.5s left)"), "{out}");
        assert!(line("web3").contains("unreachable"), "{out}");
        assert!(line("/empty").contains("no backend"), "{out}");
    }

    #[test]
    fn an_unspecified_admin_address_means_this_host() {
        let addr = loopback_if_unspecified("0.0.0.0:9180".parse().unwrap());
        assert_eq!(addr, "127.0.0.1:9180".parse().unwrap());
    }
}
