//! `DEBUG_ENDPOINT`: `/nginx-proxy-debug` answers with how the request was routed, in
//! nginx-proxy's JSON shape (`global`, `request`, `vhost`) where its fields apply to dockhand.
//! Values nginx-proxy takes from nginx variables dockhand does not have (`ssl_cipher`,
//! `ssl_protocol`, `http3`) are empty strings, as nginx's are when unset.

use bytes::Bytes;
use http::request::Parts;
use http::Version;
use serde_json::{json, Map, Value};

use super::{Conn, Shared};
use crate::config::DefaultRoot;
use crate::spec::HttpsMethod;
use crate::table::Vhost;

/// The location's path (a prefix, as nginx-proxy's `location /nginx-proxy-debug`).
pub(super) const PATH: &str = "/nginx-proxy-debug";

/// Longest answer with the paths in it; beyond it they are dropped with nginx-proxy's warning.
const MAX_LEN: usize = 4000;

/// The JSON answer for a request to `vhost`'s debug location.
pub(super) fn answer(
    shared: &Shared,
    conn: &Conn,
    vhost: &Vhost,
    parts: &Parts,
    host: &str,
) -> Bytes {
    let config = &shared.config;
    let https = &vhost.https;
    let flag = |on: bool| if on { "true" } else { "false" };
    let global = json!({
        "enable_debug_endpoint": flag(config.debug_endpoint),
        "default_root": default_root(&config.default_root),
        "external_https_port": config.https_port.to_string(),
        "trust_downstream_proxy": flag(config.trust_downstream_proxy),
        "acme_http_challenge_accept_unknown_host": flag(config.acme_accept_unknown_host),
    });
    let tls = conn.info.tls;
    let request = json!({
        "host": host,
        "https": if tls { "on" } else { "" },
        "http2": match (parts.version, tls) {
            (Version::HTTP_2, true) => "h2",
            (Version::HTTP_2, false) => "h2c",
            _ => "",
        },
        "http3": "",
        "ssl_cipher": "",
        "ssl_protocol": "",
    });
    let is_regexp = vhost.host.starts_with('~');
    let cert_ok = shared.certs.load().0.has_usable_cert(&vhost.host, https);
    let is_default = shared
        .table
        .load()
        .fallback()
        .is_some_and(|f| f.host == vhost.host);
    let mut described = json!({
        "cert": https.cert_name.clone().unwrap_or_else(|| if cert_ok { vhost.host.clone() } else { String::new() }),
        "cert_ok": cert_ok,
        "default": is_default,
        "enable_debug_endpoint": https.debug_endpoint,
        "hostname": if is_regexp {
            "Hostname is a regexp and unsafe to include in the debug response.".to_owned()
        } else {
            vhost.host.clone()
        },
        "hsts": https.hsts.clone().unwrap_or_else(|| "off".to_owned()),
        "http2_enabled": true,
        "http3_enabled": false,
        "https_method": method(https.method),
        "is_regexp": is_regexp,
        "paths": paths(vhost),
        "server_tokens": if https.server_tokens { "on" } else { "off" },
        "ssl_policy": "",
        "upstream_name": vhost.host,
        "external_http_port": https.external_http_port.map(|p| p.to_string()),
        "external_https_port": https.external_https_port.map(|p| p.to_string()),
    });
    let mut out = json!({ "global": global, "request": request, "vhost": described.clone() });
    let mut text = out.to_string();
    if text.len() > MAX_LEN {
        if let Some(vhost) = described.as_object_mut() {
            vhost.remove("paths");
        }
        out = json!({
            "global": out["global"].take(),
            "request": out["request"].take(),
            "vhost": described,
            "warning": "Virtual paths configuration for this hostname is too large and has been stripped from response.",
        });
        text = out.to_string();
    }
    Bytes::from(text)
}

/// The vhost's locations keyed by path, with nginx-proxy's keys where they apply.
fn paths(vhost: &Vhost) -> Value {
    let serialized = serde_json::to_value(vhost).unwrap_or_default();
    let mut paths = Map::new();
    for route in serialized["paths"].as_array().into_iter().flatten() {
        let Some(path) = route["path"].as_str() else {
            continue;
        };
        let ports: Vec<Value> = route["backends"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["addr"].as_str())
            .map(|addr| Value::from(addr.rsplit(':').next().unwrap_or_default()))
            .collect();
        paths.insert(
            path.to_owned(),
            json!({
                "dest": route["dest"].as_str().unwrap_or_default(),
                "keepalive": route["keepalive"],
                "loadbalance": route["balance"],
                "network_tag": route["network_access"],
                "ports": ports,
                "proto": route["proto"],
            }),
        );
    }
    Value::Object(paths)
}

fn method(method: HttpsMethod) -> &'static str {
    match method {
        HttpsMethod::Redirect => "redirect",
        HttpsMethod::NoRedirect => "noredirect",
        HttpsMethod::NoHttp => "nohttp",
        HttpsMethod::NoHttps => "nohttps",
    }
}

fn default_root(root: &DefaultRoot) -> String {
    match root {
        DefaultRoot::None => "none".to_owned(),
        DefaultRoot::Return { status, text: None } => status.to_string(),
        DefaultRoot::Return { status, .. } => format!("{status} …"),
    }
}
