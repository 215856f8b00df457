//! `VIRTUAL_HOST_MULTIPORTS`: several hosts, paths and ports on one container, as YAML or JSON.
//!
//! Shape: `host → null | { "/path": null | {port?, proto?, dest?}, external_http_port?,
//! external_https_port? }`. As in nginx-proxy: a null host, or one without path keys, means
//! `{"/": {}}`; other keys (and other keys inside a path) are ignored, so only paths starting
//! with `/` are possible here; a missing or `"default"` port is the container's default port
//! (the only exposed TCP port, else 80), never `VIRTUAL_PORT`. Duplicate keys are refused (by
//! the YAML parser, as go-yaml v3 does), and so are two keys that mean the same host or path.

use serde_yaml_ng::{Mapping, Value};

use super::host::parse_host;
use super::options::{parse_port, parse_proto};
use super::path::{parse_dest, parse_path};
use super::{ContractError, HostRoutes, PathRoute};

/// The variable's name.
pub(crate) const VARIABLE: &str = "VIRTUAL_HOST_MULTIPORTS";

const EXTERNAL_HTTP_PORT: &str = "external_http_port";
const EXTERNAL_HTTPS_PORT: &str = "external_https_port";

/// Parses a trimmed, non-empty `VIRTUAL_HOST_MULTIPORTS`; `default_port` serves paths that set
/// no port. Hosts come out in the order written.
pub(crate) fn parse_multiports(
    raw: &str,
    default_port: u16,
) -> Result<Vec<HostRoutes>, ContractError> {
    let doc: Value = serde_yaml_ng::from_str(raw)
        .map_err(|e| ContractError::new(VARIABLE, raw, format!("not valid YAML or JSON: {e}")))?;
    let Value::Mapping(hosts) = doc else {
        return Err(ContractError::new(
            VARIABLE,
            raw,
            "must be a map from host names to paths",
        ));
    };
    let mut out: Vec<HostRoutes> = Vec::with_capacity(hosts.len());
    for (key, value) in &hosts {
        let name = key_string(key, VARIABLE, "host names")?;
        let variable = format!("{VARIABLE}[{}]", name.trim());
        let host = parse_host(name.trim())
            .map_err(|why| ContractError::new(&variable, name.as_str(), why))?;
        if out.iter().any(|h| h.host == host) {
            let why = format!("host `{host}` is listed twice");
            return Err(ContractError::new(variable, name, why));
        }
        out.push(parse_host_value(&host, &variable, value, default_port)?);
    }
    Ok(out)
}

fn parse_host_value(
    host: &str,
    variable: &str,
    value: &Value,
    default_port: u16,
) -> Result<HostRoutes, ContractError> {
    let mut routes = HostRoutes {
        host: host.to_owned(),
        paths: Vec::new(),
        external_http_port: None,
        external_https_port: None,
    };
    let entries = match value {
        Value::Null => Mapping::new(),
        Value::Mapping(m) => m.clone(),
        other => {
            let why = "must be a map of paths, or empty";
            return Err(ContractError::new(variable, render(other), why));
        }
    };
    for (key, value) in &entries {
        let key = key_string(key, variable, "keys")?;
        match key.trim() {
            EXTERNAL_HTTP_PORT => {
                routes.external_http_port = Some(port_value(variable, &key, value, None)?);
            }
            EXTERNAL_HTTPS_PORT => {
                routes.external_https_port = Some(port_value(variable, &key, value, None)?);
            }
            path if path.starts_with('/') => {
                let route = parse_path_value(variable, path, value, default_port)?;
                if routes.paths.iter().any(|p| p.path == route.path) {
                    let why = format!("path `{}` is listed twice", route.path);
                    return Err(ContractError::new(variable, key, why));
                }
                routes.paths.push(route);
            }
            _ => {}
        }
    }
    if routes.paths.is_empty() {
        routes.paths.push(PathRoute {
            path: super::path::ROOT.to_owned(),
            port: default_port,
            proto: Default::default(),
            dest: None,
        });
    }
    Ok(routes)
}

fn parse_path_value(
    host_variable: &str,
    path: &str,
    value: &Value,
    default_port: u16,
) -> Result<PathRoute, ContractError> {
    let variable = format!("{host_variable}[{path}]");
    let location = parse_path(path).map_err(|why| ContractError::new(&variable, path, why))?;
    let options = match value {
        Value::Null => Mapping::new(),
        Value::Mapping(m) => m.clone(),
        other => {
            let why = "must be a map of port, proto and dest, or empty";
            return Err(ContractError::new(variable, render(other), why));
        }
    };
    let mut route = PathRoute {
        path: location.canonical.clone(),
        port: default_port,
        proto: Default::default(),
        dest: None,
    };
    if let Some(port) = options.get("port") {
        route.port = port_value(&variable, "port", port, Some(default_port))?;
    }
    if let Some(proto) = text_option(&variable, "proto", options.get("proto"))? {
        let field = format!("{variable}.proto");
        route.proto = parse_proto(&proto).map_err(|why| ContractError::new(field, proto, why))?;
    }
    if let Some(dest) = text_option(&variable, "dest", options.get("dest"))? {
        let field = format!("{variable}.dest");
        let dest =
            parse_dest(&dest, &location).map_err(|why| ContractError::new(field, dest, why))?;
        route.dest = Some(dest);
    }
    Ok(route)
}

/// A port given as a number or a numeric string; `default` (when allowed) also by null or
/// the string `"default"`.
fn port_value(
    variable: &str,
    field: &str,
    value: &Value,
    default: Option<u16>,
) -> Result<u16, ContractError> {
    let variable = format!("{variable}.{field}");
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        Value::Null => String::new(),
        other => {
            return Err(ContractError::new(
                variable,
                render(other),
                "must be a number",
            ))
        }
    };
    match default {
        Some(port) if text.is_empty() || text.eq_ignore_ascii_case("default") => Ok(port),
        _ => parse_port(&text).map_err(|why| ContractError::new(variable, text, why)),
    }
}

/// A string option; `None` when absent, null or blank.
fn text_option(
    variable: &str,
    field: &str,
    value: Option<&Value>,
) -> Result<Option<String>, ContractError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(other) => Err(ContractError::new(
            format!("{variable}.{field}"),
            render(other),
            "must be a string",
        )),
    }
}

fn key_string(key: &Value, variable: &str, what: &str) -> Result<String, ContractError> {
    match key {
        Value::String(s) => Ok(s.clone()),
        other => Err(ContractError::new(
            variable,
            render(other),
            format!("{what} must be strings (quote them)"),
        )),
    }
}

/// A YAML value as the user would write it, for error messages.
fn render(value: &Value) -> String {
    serde_yaml_ng::to_string(value)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| format!("{value:?}"))
}

#[cfg(test)]
mod tests;
