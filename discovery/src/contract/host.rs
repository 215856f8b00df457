//! `VIRTUAL_HOST` entries: the four nginx `server_name` forms dockhand serves.
//!
//! Accepted, after trimming (the data plane relies on exactly these forms):
//! - `~<regex>`: kept verbatim (not lower-cased); `<regex>`, trimmed, is non-empty and compiles
//!   with the `regex` crate, case-insensitive, unanchored (the data plane compiles it the same
//!   way; hosts are lower-cased before matching anyway).
//! - `*.<name>` (leading wildcard) and `<name>.*` (trailing wildcard), lower-cased.
//! - `<name>`: an exact name, lower-cased.
//! - `[<ipv6>]`: a bracketed IPv6 literal, lower-cased (nginx-proxy's test_raw-ip-vhost).
//!
//! `<name>` is non-empty dot-separated labels of ASCII letters, digits, `-` and `_`, at most
//! 253 characters. Refused: ports (`host:port`), `*` anywhere else, nginx's `.example.com` form,
//! empty labels, non-ASCII (use punycode).

use regex::RegexBuilder;

/// Longest host name DNS allows.
const MAX_NAME_LEN: usize = 253;

/// Validates one trimmed, non-empty `VIRTUAL_HOST` entry and returns its canonical form.
///
/// The error is the reason, for the caller to wrap with the variable name and the entry.
pub(crate) fn parse_host(entry: &str) -> Result<String, String> {
    if let Some(body) = entry.strip_prefix('~') {
        compile_host_regex(body)?;
        return Ok(entry.to_owned());
    }
    let lower = entry.to_ascii_lowercase();
    if let Some(inner) = lower.strip_prefix('[') {
        check_bracketed_ipv6(inner)?;
        return Ok(lower);
    }
    if lower.contains(':') {
        return Err(
            "ports are not supported in VIRTUAL_HOST (nginx-proxy ignores them too); \
                    use VIRTUAL_PORT for the container's port"
                .to_owned(),
        );
    }
    if let Some(rest) = lower.strip_prefix("*.") {
        check_name(rest)?;
    } else if let Some(rest) = lower.strip_suffix(".*") {
        check_name(rest)?;
    } else if lower.starts_with('.') {
        return Err("nginx's `.example.com` form is not supported; list both \
                    `example.com,*.example.com` instead"
            .to_owned());
    } else {
        check_name(&lower)?;
    }
    Ok(lower)
}

/// Compiles the body of a `~` host exactly as the data plane will (trimmed).
pub(crate) fn compile_host_regex(body: &str) -> Result<regex::Regex, String> {
    let body = body.trim();
    if body.is_empty() {
        return Err("`~` must be followed by a regular expression".to_owned());
    }
    RegexBuilder::new(body)
        .case_insensitive(true)
        .build()
        .map_err(|e| format!("the regular expression does not compile: {e}"))
}

fn check_bracketed_ipv6(inner: &str) -> Result<(), String> {
    let Some((addr, after)) = inner.split_once(']') else {
        return Err("a `[` must close with `]` around an IPv6 address".to_owned());
    };
    if !after.is_empty() {
        return Err("ports are not supported in VIRTUAL_HOST; \
                    use VIRTUAL_PORT for the container's port"
            .to_owned());
    }
    addr.parse::<std::net::Ipv6Addr>()
        .map(|_| ())
        .map_err(|_| format!("{addr:?} is not an IPv6 address"))
}

fn check_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME_LEN {
        return Err(format!("a host name has at most {MAX_NAME_LEN} characters"));
    }
    if let Some(c) = name.chars().find(|c| !c.is_ascii()) {
        return Err(format!(
            "{c:?} is not ASCII; write internationalised names in punycode (xn--…)"
        ));
    }
    if name.contains('*') {
        return Err(
            "`*` is only allowed as the whole first label (`*.example.com`) or the \
                    whole last label (`example.*`)"
                .to_owned(),
        );
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if let Some(c) = name.chars().find(|&c| !allowed(c)) {
        return Err(format!("{c:?} is not allowed in a host name"));
    }
    if name.split('.').any(str::is_empty) {
        return Err(
            "a host name cannot have an empty label (leading, trailing or double dot)".to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcards_are_lower_cased() {
        assert_eq!(parse_host("WWW.Example.COM").unwrap(), "www.example.com");
        assert_eq!(parse_host("*.Example.com").unwrap(), "*.example.com");
        assert_eq!(parse_host("Example.*").unwrap(), "example.*");
        assert_eq!(
            parse_host("under_score.local").unwrap(),
            "under_score.local"
        );
        assert_eq!(parse_host("localhost").unwrap(), "localhost");
    }

    #[test]
    fn raw_ips_are_accepted() {
        assert_eq!(parse_host("172.20.0.1").unwrap(), "172.20.0.1");
        assert_eq!(parse_host("[FD00::1]").unwrap(), "[fd00::1]");
    }

    #[test]
    fn regex_keeps_its_case_and_must_compile() {
        assert_eq!(parse_host(r"~^Web3\..*$").unwrap(), r"~^Web3\..*$");
        let e = parse_host("~^(unclosed").unwrap_err();
        assert!(e.contains("does not compile"), "{e}");
        assert!(parse_host("~")
            .unwrap_err()
            .contains("followed by a regular expression"));
        assert!(parse_host("~  ")
            .unwrap_err()
            .contains("followed by a regular expression"));
        assert_eq!(parse_host(r"~ ^a\.").unwrap(), r"~ ^a\.");
    }

    #[test]
    fn host_regex_is_case_insensitive() {
        let re = compile_host_regex(r" ^Web3\.example$").unwrap();
        assert!(re.is_match("web3.example"));
    }

    #[test]
    fn ports_are_refused() {
        for entry in [
            "example.com:8080",
            "*.example.com:80",
            "[::1]:80",
            "example.*:1",
        ] {
            let e = parse_host(entry).unwrap_err();
            assert!(e.contains("ports are not supported"), "{entry}: {e}");
        }
    }

    #[test]
    fn malformed_wildcards_are_refused() {
        for entry in [
            "*",
            "*.",
            "*.*",
            "www.*.example.com",
            "*example.com",
            "example*",
            "a.*.*",
        ] {
            assert!(parse_host(entry).is_err(), "{entry} was accepted");
        }
        let e = parse_host("www.*.example.com").unwrap_err();
        assert!(e.contains("only allowed as the whole first label"), "{e}");
    }

    #[test]
    fn malformed_names_are_refused_with_a_reason() {
        let cases = [
            (".example.com", "not supported"),
            ("a..b", "empty label"),
            ("example.com.", "empty label"),
            ("exa mple.com", "not allowed"),
            ("a/b", "not allowed"),
            ("bücher.de", "punycode"),
            ("[::1", "must close"),
            ("[nope]", "not an IPv6 address"),
        ];
        for (entry, why) in cases {
            let e = parse_host(entry).unwrap_err();
            assert!(e.contains(why), "{entry}: {e}");
        }
        assert!(parse_host(&"a".repeat(254))
            .unwrap_err()
            .contains("at most 253"));
    }
}
