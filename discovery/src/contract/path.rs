//! `VIRTUAL_PATH` and `VIRTUAL_DEST`: the nginx `location` forms dockhand serves.
//!
//! nginx-proxy pastes `VIRTUAL_PATH` after `location `. dockhand accepts these forms (after
//! trimming), tested in this order, and writes them as the data plane's `PathPattern::source`
//! does:
//! - `~*<regex>`: case-insensitive regex (nginx `~*`); kept as written. `<regex>`, trimmed,
//!   compiles with the `regex` crate, case-insensitive.
//! - `~<regex>`: case-sensitive regex (nginx `~`); kept as written (so `~ ^/a` and `~^/a` stay
//!   distinct and sort as in nginx-proxy). `<regex>`, trimmed, compiles case-sensitive.
//! - `^~<prefix>`: a prefix that, when it is the longest match, stops the regex search; written
//!   `^~ <prefix>`.
//! - `=<path>`: an exact match; written `= <path>`.
//! - `<prefix>`: a plain prefix.
//!
//! Space between a modifier and its operand is allowed. Prefixes and exact paths start with `/`
//! and hold no whitespace, control character, `?` or `#`.

use regex::RegexBuilder;

/// The default `VIRTUAL_PATH`.
pub(crate) const ROOT: &str = "/";

/// A validated location, in canonical spelling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    /// The canonical spelling (see the module docs).
    pub(crate) canonical: String,
    /// True for the `~` and `~*` forms, which cannot take a `VIRTUAL_DEST`.
    pub(crate) is_regex: bool,
}

/// Validates one trimmed, non-empty `VIRTUAL_PATH`; the error is the reason.
pub(crate) fn parse_path(raw: &str) -> Result<Location, String> {
    if let Some(body) = raw.strip_prefix("~*") {
        return regex_location(raw, body, true);
    }
    if let Some(body) = raw.strip_prefix('~') {
        return regex_location(raw, body, false);
    }
    let (modifier, operand) = if let Some(rest) = raw.strip_prefix("^~") {
        ("^~", rest.trim_start())
    } else if let Some(rest) = raw.strip_prefix('=') {
        ("=", rest.trim_start())
    } else if raw.starts_with('@') {
        return Err("named locations (`@name`) are not supported".to_owned());
    } else {
        ("", raw)
    };
    check_uri_path(operand).map_err(|why| {
        if modifier.is_empty() {
            format!(
                "{why}; a path is a prefix such as `/api/`, a `~`/`~*` regex, \
                 `= /exact` or `^~ /prefix`"
            )
        } else {
            format!("after `{modifier}`: {why}")
        }
    })?;
    let canonical = if modifier.is_empty() {
        operand.to_owned()
    } else {
        format!("{modifier} {operand}")
    };
    Ok(Location {
        canonical,
        is_regex: false,
    })
}

/// Compiles the body of a `~` (`caseless == false`) or `~*` path exactly as the data plane will
/// (trimmed).
pub(crate) fn compile_path_regex(body: &str, caseless: bool) -> Result<regex::Regex, String> {
    let body = body.trim();
    if body.is_empty() {
        return Err("a regex path needs a regular expression after `~` or `~*`".to_owned());
    }
    RegexBuilder::new(body)
        .case_insensitive(caseless)
        .build()
        .map_err(|e| format!("the regular expression does not compile: {e}"))
}

/// Validates a trimmed, non-empty `VIRTUAL_DEST` for `location`; the error is the reason.
pub(crate) fn parse_dest(raw: &str, location: &Location) -> Result<String, String> {
    if location.is_regex {
        return Err(format!(
            "VIRTUAL_DEST cannot be used with the regex path `{}` (nginx refuses a URI in \
             proxy_pass inside a regex location)",
            location.canonical
        ));
    }
    check_uri_path(raw)?;
    Ok(raw.to_owned())
}

fn regex_location(raw: &str, body: &str, caseless: bool) -> Result<Location, String> {
    compile_path_regex(body, caseless)?;
    Ok(Location {
        canonical: raw.to_owned(),
        is_regex: true,
    })
}

fn check_uri_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("it must start with `/`".to_owned());
    }
    let bad = |c: char| c.is_whitespace() || c.is_control() || c == '?' || c == '#';
    match path.chars().find(|&c| bad(c)) {
        Some(c) => Err(format!("{c:?} is not allowed in a path")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(raw: &str) -> String {
        parse_path(raw).unwrap().canonical
    }

    #[test]
    fn prefixes_are_kept() {
        assert_eq!(canonical("/"), "/");
        assert_eq!(canonical("/api/"), "/api/");
        assert!(!parse_path("/api").unwrap().is_regex);
    }

    #[test]
    fn modifiers_are_spelled_like_the_data_plane() {
        assert_eq!(canonical("= /exact"), "= /exact");
        assert_eq!(canonical("=/exact"), "= /exact");
        assert_eq!(canonical("^~/static/"), "^~ /static/");
        assert_eq!(canonical("^~   /static/"), "^~ /static/");
    }

    #[test]
    fn regexes_are_kept_as_written() {
        assert_eq!(canonical(r"~ ^/(web3|alt)/"), r"~ ^/(web3|alt)/");
        assert_eq!(canonical(r"~^/(web3|alt)/"), r"~^/(web3|alt)/");
        assert_eq!(canonical(r"~*\.PNG$"), r"~*\.PNG$");
        assert_eq!(canonical(r"~*   \.png$"), r"~*   \.png$");
        assert!(parse_path("~ ^/a").unwrap().is_regex);
        assert!(parse_path("~* ^/a").unwrap().is_regex);
        assert!(!parse_path("^~ /a").unwrap().is_regex);
    }

    #[test]
    fn regex_case_follows_the_modifier_and_spaces_are_trimmed() {
        assert!(compile_path_regex("  ^/api", false)
            .unwrap()
            .is_match("/api"));
        assert!(!compile_path_regex("^/api", false).unwrap().is_match("/API"));
        assert!(compile_path_regex("^/api", true).unwrap().is_match("/API"));
    }

    #[test]
    fn bad_paths_are_refused_with_a_reason() {
        let cases = [
            ("api/", "must start with `/`"),
            ("/a b", "not allowed"),
            ("/a?x=1", "not allowed"),
            ("= api", "after `=`: it must start with `/`"),
            ("^~", "after `^~`: it must start with `/`"),
            ("~", "needs a regular expression"),
            ("~*", "needs a regular expression"),
            ("~ ^/(", "does not compile"),
            ("~ (?=x)", "does not compile"),
            ("@fallback", "named locations"),
        ];
        for (raw, why) in cases {
            let e = parse_path(raw).unwrap_err();
            assert!(e.contains(why), "{raw}: {e}");
        }
    }

    #[test]
    fn dest_must_be_a_path_and_not_follow_a_regex() {
        let prefix = parse_path("/app/").unwrap();
        assert_eq!(parse_dest("/", &prefix).unwrap(), "/");
        assert_eq!(parse_dest("/port", &prefix).unwrap(), "/port");
        assert!(parse_dest("port", &prefix)
            .unwrap_err()
            .contains("start with `/`"));
        let exact = parse_path("= /app").unwrap();
        assert_eq!(parse_dest("/x", &exact).unwrap(), "/x");
        let regex = parse_path("~ ^/app").unwrap();
        let e = parse_dest("/", &regex).unwrap_err();
        assert!(
            e.contains("cannot be used with the regex path `~ ^/app`"),
            "{e}"
        );
    }
}
