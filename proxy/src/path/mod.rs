//! nginx `location` matching for `VIRTUAL_PATH`, and the `VIRTUAL_DEST` rewrite.
//!
//! Selection follows nginx: an exact (`= /x`) location wins; a prefix location named like the
//! request path plus `/` answers 301 to add the slash; otherwise the longest prefix is remembered,
//! used at once if it is `^~`, else the first regex that matches (in sorted order) wins, else the
//! longest prefix.

mod normalize;
mod rewrite;

pub use normalize::normalize_path;
pub use rewrite::{encode_path, redirect_location, replace_prefix};

use regex::{Regex, RegexBuilder};

use crate::host::PatternError;

/// One parsed `VIRTUAL_PATH`.
#[derive(Clone, Debug)]
pub enum PathPattern {
    /// `/api/`: matches paths starting with it; the longest prefix wins.
    Prefix(String),
    /// `^~ /api/`: a prefix that, when it is the longest match, skips the regexes.
    PreferPrefix(String),
    /// `= /x`: matches exactly this path and beats everything else.
    Exact(String),
    /// `~ regex` (case-sensitive) or `~* regex` (case-insensitive), unanchored.
    Regex {
        /// The path as written (`~…`), the sort key of regex priority.
        source: String,
        /// The compiled expression.
        regex: Regex,
    },
}

impl PathPattern {
    /// Parses one `VIRTUAL_PATH` (trimmed). Prefixes must start with `/` and hold no whitespace.
    pub fn parse(raw: &str) -> Result<PathPattern, PatternError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(PatternError::Empty);
        }
        let invalid = |reason: &str| PatternError::Invalid {
            pattern: raw.to_owned(),
            reason: reason.to_owned(),
        };
        let (expr, insensitive) = if let Some(expr) = raw.strip_prefix("~*") {
            (Some(expr), true)
        } else if let Some(expr) = raw.strip_prefix('~') {
            (Some(expr), false)
        } else {
            (None, false)
        };
        if let Some(expr) = expr {
            let regex = RegexBuilder::new(expr.trim())
                .case_insensitive(insensitive)
                .build()
                .map_err(|e| invalid(&e.to_string()))?;
            return Ok(PathPattern::Regex {
                source: raw.to_owned(),
                regex,
            });
        }
        let (name, build): (&str, fn(String) -> PathPattern) =
            if let Some(rest) = raw.strip_prefix("^~") {
                (rest.trim_start(), PathPattern::PreferPrefix)
            } else if let Some(rest) = raw.strip_prefix('=') {
                (rest.trim_start(), PathPattern::Exact)
            } else {
                (raw, PathPattern::Prefix)
            };
        if !name.starts_with('/') {
            return Err(invalid("a path must start with `/`"));
        }
        if name.chars().any(char::is_whitespace) {
            return Err(invalid("a path cannot contain whitespace"));
        }
        Ok(build(name.to_owned()))
    }

    /// The path as written, modifiers included: the key under which locations are unique.
    pub fn source(&self) -> String {
        match self {
            PathPattern::Prefix(p) => p.clone(),
            PathPattern::PreferPrefix(p) => format!("^~ {p}"),
            PathPattern::Exact(p) => format!("= {p}"),
            PathPattern::Regex { source, .. } => source.clone(),
        }
    }
}

/// The outcome of [`PathMatcher::select`].
#[derive(Debug, PartialEq, Eq)]
pub enum Selected<'a, T> {
    /// Forward to this location. `matched` is the length of the location name when it is a
    /// prefix or exact location (the part `VIRTUAL_DEST` replaces); `None` for a regex.
    Location {
        /// The location's value.
        value: &'a T,
        /// Length of the matched prefix in the path, for `VIRTUAL_DEST`.
        matched: Option<usize>,
    },
    /// The path lacks the trailing slash of this prefix location: answer 301 to it.
    AddSlash {
        /// The location name, ending in `/`.
        location: &'a str,
    },
}

/// The locations of one vhost.
#[derive(Clone, Debug)]
pub struct PathMatcher<T> {
    exact: Vec<(String, T)>,
    /// Longest first; the flag marks `^~`.
    prefixes: Vec<(String, bool, T)>,
    /// Sorted by source, the config order of nginx-proxy.
    regexes: Vec<(String, Regex, T)>,
}

impl<T> Default for PathMatcher<T> {
    fn default() -> Self {
        PathMatcher {
            exact: Vec::new(),
            prefixes: Vec::new(),
            regexes: Vec::new(),
        }
    }
}

impl<T> PathMatcher<T> {
    /// An empty matcher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a location. Returns `false` (keeping the first) when the same path is already there,
    /// including `/a` next to `^~ /a`, which nginx rejects as a duplicate.
    pub fn insert(&mut self, pattern: PathPattern, value: T) -> bool {
        match pattern {
            PathPattern::Exact(name) => {
                if self.exact.iter().any(|(n, _)| *n == name) {
                    return false;
                }
                self.exact.push((name, value));
            }
            PathPattern::Prefix(name) | PathPattern::PreferPrefix(name)
                if self.prefixes.iter().any(|(n, _, _)| *n == name) =>
            {
                return false;
            }
            PathPattern::Prefix(name) => self.insert_prefix(name, false, value),
            PathPattern::PreferPrefix(name) => self.insert_prefix(name, true, value),
            PathPattern::Regex { source, regex } => {
                match self
                    .regexes
                    .binary_search_by(|(s, _, _)| s.as_str().cmp(&source))
                {
                    Ok(_) => return false,
                    Err(at) => self.regexes.insert(at, (source, regex, value)),
                }
            }
        }
        true
    }

    fn insert_prefix(&mut self, name: String, prefer: bool, value: T) {
        let at = self
            .prefixes
            .partition_point(|(n, _, _)| n.len() >= name.len());
        self.prefixes.insert(at, (name, prefer, value));
    }

    /// Picks the location for `path` (already [`normalize_path`]ed, without the query).
    pub fn select<'a>(&'a self, path: &str) -> Option<Selected<'a, T>> {
        if let Some((name, value)) = self.exact.iter().find(|(n, _)| n == path) {
            return Some(Selected::Location {
                value,
                matched: Some(name.len()),
            });
        }
        let adds_slash = |(name, _, _): &&(String, bool, T)| {
            name.len() == path.len() + 1 && name.ends_with('/') && name.starts_with(path)
        };
        if let Some((location, _, _)) = self.prefixes.iter().find(adds_slash) {
            return Some(Selected::AddSlash { location });
        }
        let longest = self
            .prefixes
            .iter()
            .find(|(n, _, _)| path.starts_with(n.as_str()));
        let prefix = |(name, _, value): &'a (String, bool, T)| Selected::Location {
            value,
            matched: Some(name.len()),
        };
        if let Some(hit @ (_, true, _)) = longest {
            return Some(prefix(hit));
        }
        if let Some((_, _, value)) = self.regexes.iter().find(|(_, r, _)| r.is_match(path)) {
            return Some(Selected::Location {
                value,
                matched: None,
            });
        }
        longest.map(prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(paths: &[&str]) -> PathMatcher<String> {
        let mut m = PathMatcher::new();
        for p in paths {
            assert!(
                m.insert(PathPattern::parse(p).unwrap(), (*p).to_owned()),
                "{p}"
            );
        }
        m
    }

    fn pick(m: &PathMatcher<String>, path: &str) -> Option<String> {
        match m.select(path)? {
            Selected::Location { value, .. } => Some(value.clone()),
            Selected::AddSlash { location } => Some(format!("301 {location}")),
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let m = matcher(&["/", "/api/", "/api/v2/"]);
        assert_eq!(pick(&m, "/api/v2/x").as_deref(), Some("/api/v2/"));
        assert_eq!(pick(&m, "/api/v1").as_deref(), Some("/api/"));
        assert_eq!(pick(&m, "/other").as_deref(), Some("/"));
    }

    #[test]
    fn exact_beats_everything() {
        let m = matcher(&["/", "= /x", "~ ^/x", "^~ /x"]);
        assert_eq!(pick(&m, "/x").as_deref(), Some("= /x"));
        assert_eq!(pick(&m, "/xy").as_deref(), Some("^~ /x"));
    }

    #[test]
    fn regex_beats_plain_prefix_but_not_prefer_prefix() {
        let m = matcher(&["/static/", "^~ /assets/", "~ \\.png$"]);
        assert_eq!(pick(&m, "/static/a.png").as_deref(), Some("~ \\.png$"));
        assert_eq!(pick(&m, "/assets/a.png").as_deref(), Some("^~ /assets/"));
        assert_eq!(pick(&m, "/static/a.css").as_deref(), Some("/static/"));
        assert_eq!(pick(&m, "/b.png").as_deref(), Some("~ \\.png$"));
    }

    #[test]
    fn first_regex_in_sorted_order_wins() {
        let m = matcher(&["~ ^/b", "~ ^/(a|b)"]);
        // "~ ^/(a|b)" sorts before "~ ^/b".
        assert_eq!(pick(&m, "/b").as_deref(), Some("~ ^/(a|b)"));
    }

    #[test]
    fn regex_case_rules() {
        let m = matcher(&["~ ^/Web/"]);
        assert_eq!(pick(&m, "/web/"), None);
        let m = matcher(&["~* ^/Web/"]);
        assert_eq!(pick(&m, "/web/").as_deref(), Some("~* ^/Web/"));
    }

    #[test]
    fn no_match_is_none() {
        let m = matcher(&["/api/"]);
        assert_eq!(pick(&m, "/other"), None);
    }

    #[test]
    fn missing_slash_redirects_unless_exact() {
        let m = matcher(&["/", "/foo/"]);
        assert_eq!(pick(&m, "/foo").as_deref(), Some("301 /foo/"));
        assert_eq!(pick(&m, "/foo/").as_deref(), Some("/foo/"));
        assert_eq!(pick(&m, "/fo").as_deref(), Some("/"));
        let m = matcher(&["/foo/", "= /foo"]);
        assert_eq!(pick(&m, "/foo").as_deref(), Some("= /foo"));
        let m = matcher(&["/foo"]);
        assert_eq!(pick(&m, "/foo").as_deref(), Some("/foo"));
    }

    #[test]
    fn matched_length_is_the_location_name() {
        let m = matcher(&["/app1/", "~ ^/re"]);
        assert_eq!(
            m.select("/app1/x"),
            Some(Selected::Location {
                value: &"/app1/".to_owned(),
                matched: Some(6)
            })
        );
        assert!(matches!(
            m.select("/re"),
            Some(Selected::Location { matched: None, .. })
        ));
    }

    #[test]
    fn parse_forms_and_errors() {
        assert!(matches!(PathPattern::parse(" /a/ "), Ok(PathPattern::Prefix(p)) if p == "/a/"));
        assert!(matches!(PathPattern::parse("=/a"), Ok(PathPattern::Exact(p)) if p == "/a"));
        assert!(
            matches!(PathPattern::parse("^~ /a"), Ok(PathPattern::PreferPrefix(p)) if p == "/a")
        );
        assert!(matches!(
            PathPattern::parse("~^/a"),
            Ok(PathPattern::Regex { .. })
        ));
        assert!(matches!(PathPattern::parse(""), Err(PatternError::Empty)));
        assert!(PathPattern::parse("api").is_err());
        assert!(PathPattern::parse("/a b").is_err());
        assert!(PathPattern::parse("~ (").is_err());
        assert_eq!(PathPattern::parse("^~/a").unwrap().source(), "^~ /a");
    }

    #[test]
    fn duplicates_are_refused() {
        let mut m = PathMatcher::new();
        assert!(m.insert(PathPattern::parse("/a").unwrap(), 1));
        assert!(!m.insert(PathPattern::parse("^~ /a").unwrap(), 2));
        assert!(m.insert(PathPattern::parse("= /a").unwrap(), 3));
        assert!(!m.insert(PathPattern::parse("= /a").unwrap(), 4));
    }
}
