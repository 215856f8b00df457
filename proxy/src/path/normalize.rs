//! The path nginx matches locations against (`$uri`): percent-decoded, slashes merged, `.` and
//! `..` segments resolved.
//!
//! Matching the raw path instead would let `/public/../admin` or `/%61dmin` slip past a
//! location meant to catch `/admin`.

use std::borrow::Cow;

/// Normalizes a request path for location matching.
///
/// Borrows when the path is already normal (the common case: no `%`, no `//`, no dot segment).
/// Returns `None` for a path that does not start with `/`, climbs above the root, or decodes to
/// a NUL byte: nginx answers those with 400.
pub fn normalize_path(path: &str) -> Option<Cow<'_, str>> {
    if !path.starts_with('/') {
        return None;
    }
    if is_normal(path.as_bytes()) {
        return Some(Cow::Borrowed(path));
    }
    let decoded = percent_decode(path.as_bytes())?;
    let mut out: Vec<u8> = Vec::with_capacity(decoded.len());
    for segment in decoded.split(|&b| b == b'/').skip(1) {
        match segment {
            b"" | b"." => {}
            b".." => {
                let keep = out.iter().rposition(|&b| b == b'/')?;
                out.truncate(keep);
            }
            _ => {
                out.push(b'/');
                out.extend_from_slice(segment);
            }
        }
    }
    // A trailing `/`, `/.` or `/..` leaves the result naming a directory, as nginx does.
    let last = decoded.rsplit(|&b| b == b'/').next().unwrap_or_default();
    if out.is_empty() || matches!(last, b"" | b"." | b"..") {
        out.push(b'/');
    }
    Some(Cow::Owned(String::from_utf8_lossy(&out).into_owned()))
}

fn is_normal(path: &[u8]) -> bool {
    !path.contains(&b'%')
        && !path.windows(2).any(|w| w == b"//")
        && path
            .split(|&b| b == b'/')
            .all(|seg| seg != b"." && seg != b"..")
}

fn percent_decode(path: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        if b == b'%' {
            let hex = path
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                if v == 0 {
                    return None;
                }
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Option<String> {
        normalize_path(p).map(Cow::into_owned)
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for p in ["/", "/a", "/a/", "/a/b.c/d", "/.well-known/x", "/a..b"] {
            assert!(matches!(normalize_path(p), Some(Cow::Borrowed(_))), "{p}");
        }
    }

    #[test]
    fn dot_segments_and_double_slashes_are_resolved() {
        assert_eq!(norm("/public/../admin").as_deref(), Some("/admin"));
        assert_eq!(norm("/a/./b").as_deref(), Some("/a/b"));
        assert_eq!(norm("//a///b").as_deref(), Some("/a/b"));
        assert_eq!(norm("/a/b/..").as_deref(), Some("/a/"));
        assert_eq!(norm("/a/.").as_deref(), Some("/a/"));
        assert_eq!(norm("/a//").as_deref(), Some("/a/"));
        assert_eq!(norm("/..").as_deref(), None);
        assert_eq!(norm("/a/../..").as_deref(), None);
    }

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(norm("/%61dmin").as_deref(), Some("/admin"));
        assert_eq!(norm("/a%2F..%2Fb").as_deref(), Some("/b"));
        assert_eq!(norm("/100%").as_deref(), Some("/100%"));
        assert_eq!(norm("/%zz").as_deref(), Some("/%zz"));
        assert_eq!(norm("/a%00b"), None);
    }

    #[test]
    fn relative_paths_are_refused() {
        assert_eq!(norm("*"), None);
        assert_eq!(norm(""), None);
    }
}
