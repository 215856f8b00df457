//! Building the URI sent upstream (`VIRTUAL_DEST`) and the 301 target that adds a slash.

use std::fmt::Write as _;

/// Replaces the first `matched` bytes of `path` (the location name) by `dest`.
///
/// nginx's `proxy_pass http://up<dest>` semantics, except for one artefact: path `/foo` with
/// dest `/` turns `/foo/port` into `//port` in nginx; here the join of `dest` and the rest emits
/// a single `/` (only that join is collapsed). The result is never empty.
pub fn replace_prefix(path: &str, matched: usize, dest: &str) -> String {
    let rest = path.get(matched..).unwrap_or_default();
    let rest = match (dest.ends_with('/'), rest.strip_prefix('/')) {
        (true, Some(stripped)) => stripped,
        _ => rest,
    };
    let mut out = String::with_capacity(dest.len() + rest.len() + 1);
    out.push_str(dest);
    out.push_str(rest);
    if !out.starts_with('/') {
        out.insert(0, '/');
    }
    out
}

/// Percent-encodes the bytes of a decoded path that cannot appear raw in a URI path
/// (as nginx's `ngx_escape_uri`), so a normalized path can be sent upstream again.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        let keep = b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `Location` of the 301 that adds the trailing slash: `scheme://host[:port]<location>[?query]`,
/// with the port omitted when it is the scheme's default.
pub fn redirect_location(
    https: bool,
    host: &str,
    port: u16,
    location: &str,
    query: Option<&str>,
) -> String {
    let scheme = if https { "https" } else { "http" };
    let mut out = String::with_capacity(scheme.len() + host.len() + location.len() + 16);
    let _ = write!(out, "{scheme}://{host}");
    if port != if https { 443 } else { 80 } {
        let _ = write!(out, ":{port}");
    }
    out.push_str(location);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dest_replaces_the_matched_prefix() {
        assert_eq!(replace_prefix("/app1/foo", 6, "/"), "/foo");
        assert_eq!(replace_prefix("/app1/", 6, "/"), "/");
        assert_eq!(replace_prefix("/customdest", 11, "/port"), "/port");
        assert_eq!(replace_prefix("/api/v1/x", 5, "/backend/"), "/backend/v1/x");
        assert_eq!(replace_prefix("/api/x", 4, "/b"), "/b/x");
    }

    #[test]
    fn slash_join_is_collapsed_once() {
        // nginx would send `//port`.
        assert_eq!(replace_prefix("/foo/port", 4, "/"), "/port");
        assert_eq!(replace_prefix("/foo//port", 4, "/"), "//port");
        assert_eq!(replace_prefix("/foo/port", 4, "/x/"), "/x/port");
    }

    #[test]
    fn result_is_never_empty_or_relative() {
        assert_eq!(replace_prefix("/a", 2, ""), "/");
        assert_eq!(replace_prefix("/a/b", 3, "x"), "/xb");
    }

    #[test]
    fn encoding_escapes_only_what_a_path_cannot_hold() {
        assert_eq!(encode_path("/a b?c#d%e"), "/a%20b%3Fc%23d%25e");
        assert_eq!(
            encode_path("/ok/-._~:@!$&'()*+,;="),
            "/ok/-._~:@!$&'()*+,;="
        );
        assert_eq!(encode_path("/é"), "/%C3%A9");
    }

    #[test]
    fn redirect_keeps_non_default_port_and_query() {
        assert_eq!(
            redirect_location(false, "host", 8080, "/foo/", Some("a=1")),
            "http://host:8080/foo/?a=1"
        );
        assert_eq!(
            redirect_location(false, "host", 80, "/foo/", None),
            "http://host/foo/"
        );
        assert_eq!(
            redirect_location(true, "h", 443, "/x/", None),
            "https://h/x/"
        );
        assert_eq!(
            redirect_location(true, "h", 80, "/x/", None),
            "https://h:80/x/"
        );
    }
}
