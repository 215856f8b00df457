//! nginx `server_name` matching: exact names, `*.example.com`, `example.*` and `~regex`.
//!
//! Priority follows nginx: exact, then the longest leading wildcard, then the longest trailing
//! wildcard, then the first matching regex in config order (nginx-proxy sorts vhosts by name).

use std::borrow::Cow;
use std::sync::Arc;

use foldhash::HashMap;
use regex::{Regex, RegexBuilder};

/// A `VIRTUAL_HOST` entry that cannot be served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern is empty (after trimming).
    #[error("empty pattern")]
    Empty,
    /// A `*` appears somewhere other than a whole first or last label.
    #[error("invalid wildcard in {0:?}: only `*.name` or `name.*` are allowed")]
    Wildcard(String),
    /// The name holds a character that cannot appear in a `Host` header.
    #[error("invalid character in host {0:?}")]
    Character(String),
    /// A `~` pattern is not a valid regular expression, or a path pattern is malformed.
    #[error("invalid pattern {pattern:?}: {reason}")]
    Invalid {
        /// The pattern as written.
        pattern: String,
        /// Why it was rejected.
        reason: String,
    },
}

/// One parsed `server_name`.
#[derive(Clone, Debug)]
pub enum HostPattern {
    /// `example.com`, `172.20.0.1`, `[fd00::1]`: equal to the normalized host.
    Exact(Arc<str>),
    /// `*.example.com`, stored as the suffix `.example.com`: any depth of subdomain, not the apex.
    Leading(Arc<str>),
    /// `example.*`, stored as the prefix `example.`.
    Trailing(Arc<str>),
    /// `~regex`: unanchored unless written with `^`/`$`; always case-insensitive because hosts are
    /// lower-cased before matching.
    Regex {
        /// The name as written, `~` included (the sort key of regex priority).
        source: Arc<str>,
        /// The compiled expression.
        regex: Regex,
    },
}

impl HostPattern {
    /// Parses one `VIRTUAL_HOST` entry (trimmed and lower-cased first, except regexes).
    pub fn parse(raw: &str) -> Result<HostPattern, PatternError> {
        let raw = raw.trim();
        if let Some(expr) = raw.strip_prefix('~') {
            let regex = RegexBuilder::new(expr.trim())
                .case_insensitive(true)
                .build()
                .map_err(|e| PatternError::Invalid {
                    pattern: raw.to_owned(),
                    reason: e.to_string(),
                })?;
            return Ok(HostPattern::Regex {
                source: raw.into(),
                regex,
            });
        }
        let name = raw.to_ascii_lowercase();
        if name.is_empty() {
            return Err(PatternError::Empty);
        }
        if !name.bytes().all(|b| is_host_byte(b) || b == b'*') {
            return Err(PatternError::Character(name));
        }
        if let Some(suffix) = name.strip_prefix('*') {
            if !suffix.starts_with('.') || suffix.len() < 2 || suffix.contains('*') {
                return Err(PatternError::Wildcard(name));
            }
            return Ok(HostPattern::Leading(suffix.into()));
        }
        if let Some(prefix) = name.strip_suffix('*') {
            if !prefix.ends_with('.') || prefix.len() < 2 || prefix.contains('*') {
                return Err(PatternError::Wildcard(name));
            }
            return Ok(HostPattern::Trailing(prefix.into()));
        }
        if name.contains('*') {
            return Err(PatternError::Wildcard(name));
        }
        Ok(HostPattern::Exact(name.into()))
    }

    /// Whether `host` (already [`normalize_host`]d) matches this pattern on its own.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => host == &**name,
            HostPattern::Leading(suffix) => host.len() > suffix.len() && host.ends_with(&**suffix),
            HostPattern::Trailing(prefix) => {
                host.len() > prefix.len() && host.starts_with(&**prefix)
            }
            HostPattern::Regex { regex, .. } => regex.is_match(host),
        }
    }
}

/// Bytes allowed in a normalized host: a DNS name, an IPv4 address or a bracketed IPv6 address.
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'[' | b']')
}

/// Lower-cases `raw`, strips a `:port` (also after `[::1]`) and a trailing dot.
///
/// Returns `None` when the result is empty or holds bytes no host can contain, so that garbage
/// never reaches matching, logs or upstream headers. Borrows unless lower-casing is needed.
pub fn normalize_host(raw: &str) -> Option<Cow<'_, str>> {
    let host = if raw.starts_with('[') {
        let end = raw.find(']')?;
        let rest = &raw[end + 1..];
        if !(rest.is_empty() || is_port(rest)) {
            return None;
        }
        &raw[..=end]
    } else {
        match raw.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return None,
            None => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || !host.bytes().all(is_host_byte) {
        return None;
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

/// `":8080"` or `"8080"` → true: one to five digits.
fn is_port(s: &str) -> bool {
    let digits = s.strip_prefix(':').unwrap_or(s);
    !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Maps hosts to values with nginx's `server_name` priority.
///
/// Wildcards are found by hashing each dot-delimited suffix (or prefix) of the host, longest first,
/// so a lookup costs a few hash probes whatever the number of names. The maps hash with foldhash
/// (randomly seeded), which halves the time of a lookup against SipHash (`benches/host`); a
/// client's host only probes maps whose keys come from Docker, so there is no flooding to resist.
/// Keys are shared with the patterns they came from: cloning a matcher copies no name.
#[derive(Clone, Debug)]
pub struct HostMatcher<T> {
    exact: HashMap<Arc<str>, T>,
    leading: HashMap<Arc<str>, T>,
    trailing: HashMap<Arc<str>, T>,
    /// Sorted by source, the config order of nginx-proxy.
    regexes: Vec<(Arc<str>, Regex, T)>,
}

impl<T> Default for HostMatcher<T> {
    fn default() -> Self {
        HostMatcher {
            exact: HashMap::default(),
            leading: HashMap::default(),
            trailing: HashMap::default(),
            regexes: Vec::new(),
        }
    }
}

impl<T> HostMatcher<T> {
    /// An empty matcher.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty matcher with room for `exact` exact names before it reallocates.
    pub fn with_capacity(exact: usize) -> Self {
        HostMatcher {
            exact: HashMap::with_capacity_and_hasher(exact, Default::default()),
            ..Self::default()
        }
    }

    /// Adds `pattern → value`. Returns `false` (and keeps the first value) when an equal pattern
    /// was already inserted.
    pub fn insert(&mut self, pattern: HostPattern, value: T) -> bool {
        let map = match pattern {
            HostPattern::Exact(name) => return insert_new(&mut self.exact, name, value),
            HostPattern::Leading(suffix) => return insert_new(&mut self.leading, suffix, value),
            HostPattern::Trailing(prefix) => return insert_new(&mut self.trailing, prefix, value),
            HostPattern::Regex { source, regex } => (source, regex),
        };
        match self.regex_index(&map.0) {
            Ok(_) => false,
            Err(at) => {
                self.regexes.insert(at, (map.0, map.1, value));
                true
            }
        }
    }

    /// Takes out the value of a pattern equal to `pattern`, if there is one.
    pub fn remove(&mut self, pattern: &HostPattern) -> Option<T> {
        match pattern {
            HostPattern::Exact(name) => self.exact.remove(name),
            HostPattern::Leading(suffix) => self.leading.remove(suffix),
            HostPattern::Trailing(prefix) => self.trailing.remove(prefix),
            HostPattern::Regex { source, .. } => {
                let at = self.regex_index(source).ok()?;
                Some(self.regexes.remove(at).2)
            }
        }
    }

    fn regex_index(&self, source: &str) -> Result<usize, usize> {
        self.regexes.binary_search_by(|(s, _, _)| (**s).cmp(source))
    }

    /// The value for `host`, which must already be [`normalize_host`]d.
    pub fn get(&self, host: &str) -> Option<&T> {
        if let Some(v) = self.exact.get(host) {
            return Some(v);
        }
        if !self.leading.is_empty() {
            // Leftmost dot first: the longest suffix, hence the longest wildcard.
            for (i, _) in host.match_indices('.').filter(|(i, _)| *i > 0) {
                if let Some(v) = self.leading.get(&host[i..]) {
                    return Some(v);
                }
            }
        }
        if !self.trailing.is_empty() {
            for (i, _) in host
                .rmatch_indices('.')
                .filter(|(i, _)| *i + 1 < host.len())
            {
                if let Some(v) = self.trailing.get(&host[..=i]) {
                    return Some(v);
                }
            }
        }
        self.regexes
            .iter()
            .find(|(_, regex, _)| regex.is_match(host))
            .map(|(_, _, v)| v)
    }

    /// Whether no pattern was inserted.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty()
            && self.leading.is_empty()
            && self.trailing.is_empty()
            && self.regexes.is_empty()
    }
}

fn insert_new<T>(map: &mut HashMap<Arc<str>, T>, key: Arc<str>, value: T) -> bool {
    match map.entry(key) {
        std::collections::hash_map::Entry::Occupied(_) => false,
        std::collections::hash_map::Entry::Vacant(slot) => {
            slot.insert(value);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(names: &[&str]) -> HostMatcher<String> {
        let mut m = HostMatcher::new();
        for name in names {
            assert!(m.insert(HostPattern::parse(name).unwrap(), (*name).to_owned()));
        }
        m
    }

    fn lookup<'a>(m: &'a HostMatcher<String>, host: &str) -> Option<&'a str> {
        m.get(&normalize_host(host).unwrap()).map(String::as_str)
    }

    #[test]
    fn removing_a_pattern_leaves_the_others() {
        let mut m = matcher(&["a.example.com", "*.example.com", "www.*", "~^api\\."]);
        for name in ["a.example.com", "*.example.com", "www.*", "~^api\\."] {
            let pattern = HostPattern::parse(name).unwrap();
            assert_eq!(m.remove(&pattern).as_deref(), Some(name));
            assert_eq!(m.remove(&pattern), None, "{name} is gone");
        }
        assert!(m.is_empty());
        let mut m = matcher(&["~^b\\.", "~^a\\.", "*.example.com"]);
        m.remove(&HostPattern::parse("~^a\\.").unwrap());
        assert_eq!(lookup(&m, "b.other"), Some("~^b\\."));
        assert_eq!(lookup(&m, "a.other"), None);
        assert_eq!(lookup(&m, "a.example.com"), Some("*.example.com"));
    }

    #[test]
    fn exact_beats_every_wildcard_and_regex() {
        let m = matcher(&["~^www\\.", "www.*", "*.example.com", "www.example.com"]);
        assert_eq!(lookup(&m, "www.example.com"), Some("www.example.com"));
    }

    #[test]
    fn leading_wildcard_matches_any_depth_but_not_the_apex() {
        let m = matcher(&["*.example.com"]);
        assert_eq!(lookup(&m, "a.example.com"), Some("*.example.com"));
        assert_eq!(lookup(&m, "a.b.c.example.com"), Some("*.example.com"));
        assert_eq!(lookup(&m, "example.com"), None);
        assert_eq!(lookup(&m, "badexample.com"), None);
    }

    #[test]
    fn longest_leading_wildcard_wins() {
        let m = matcher(&["*.com", "*.example.com", "*.b.example.com"]);
        assert_eq!(lookup(&m, "a.b.example.com"), Some("*.b.example.com"));
        assert_eq!(lookup(&m, "a.c.example.com"), Some("*.example.com"));
        assert_eq!(lookup(&m, "other.com"), Some("*.com"));
    }

    #[test]
    fn leading_beats_trailing_and_longest_trailing_wins() {
        let m = matcher(&["www.*", "www.example.*", "*.example.com"]);
        assert_eq!(lookup(&m, "www.example.com"), Some("*.example.com"));
        assert_eq!(lookup(&m, "www.example.org"), Some("www.example.*"));
        assert_eq!(lookup(&m, "www.other.org"), Some("www.*"));
        assert_eq!(lookup(&m, "www"), None);
    }

    #[test]
    fn regexes_come_last_in_sorted_order_and_ignore_case() {
        let m = matcher(&["~^web3\\..*\\.tld$", "~web", "exact.tld"]);
        // Both regexes match; "~^web3…" sorts before "~web".
        assert_eq!(lookup(&m, "WEB3.x.tld"), Some("~^web3\\..*\\.tld$"));
        assert_eq!(lookup(&m, "myweb.org"), Some("~web"));
        assert_eq!(lookup(&m, "exact.tld"), Some("exact.tld"));
        let upper = matcher(&["~^API\\."]);
        assert_eq!(lookup(&upper, "api.example.com"), Some("~^API\\."));
    }

    #[test]
    fn raw_ips_match_with_and_without_port() {
        let m = matcher(&["172.20.0.1", "[fd00::1]"]);
        assert_eq!(lookup(&m, "172.20.0.1:8080"), Some("172.20.0.1"));
        assert_eq!(lookup(&m, "[fd00::1]"), Some("[fd00::1]"));
        assert_eq!(lookup(&m, "[FD00::1]:80"), Some("[fd00::1]"));
    }

    #[test]
    fn normalize_strips_port_and_dot_and_lowercases() {
        assert_eq!(
            normalize_host("Example.COM:8080").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            normalize_host("example.com.").as_deref(),
            Some("example.com")
        );
        assert_eq!(normalize_host("[::1]:8080").as_deref(), Some("[::1]"));
        assert!(matches!(
            normalize_host("plain.tld"),
            Some(Cow::Borrowed(_))
        ));
        assert_eq!(normalize_host(""), None);
        assert_eq!(normalize_host(":80"), None);
        assert_eq!(normalize_host("a b"), None);
        assert_eq!(normalize_host("host:port"), None);
        assert_eq!(normalize_host("[::1"), None);
        assert_eq!(normalize_host("evil/../x"), None);
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(matches!(HostPattern::parse("  "), Err(PatternError::Empty)));
        assert!(matches!(
            HostPattern::parse("a.*.com"),
            Err(PatternError::Wildcard(_))
        ));
        assert!(matches!(
            HostPattern::parse("*example.com"),
            Err(PatternError::Wildcard(_))
        ));
        assert!(matches!(
            HostPattern::parse("*.*"),
            Err(PatternError::Wildcard(_))
        ));
        assert!(matches!(
            HostPattern::parse("a b"),
            Err(PatternError::Character(_))
        ));
        assert!(matches!(
            HostPattern::parse("~("),
            Err(PatternError::Invalid { .. })
        ));
    }

    #[test]
    fn duplicates_keep_the_first_value() {
        let mut m = HostMatcher::new();
        assert!(m.insert(HostPattern::parse("a.tld").unwrap(), 1));
        assert!(!m.insert(HostPattern::parse("A.tld").unwrap(), 2));
        assert!(m.insert(HostPattern::parse("~x").unwrap(), 3));
        assert!(!m.insert(HostPattern::parse("~x").unwrap(), 4));
        assert_eq!(m.get("a.tld"), Some(&1));
        assert_eq!(m.get("x"), Some(&3));
    }
}
