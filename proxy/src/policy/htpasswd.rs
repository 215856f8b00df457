//! Apache htpasswd files: `user:hash` lines, checked with maintained hash implementations.
//!
//! Supported hashes: bcrypt (`$2y$`, `$2a$`, `$2b$`, the `bcrypt` crate), apr1 (`$apr1$`,
//! `htpasswd-verify`), SHA-1 (`{SHA}`), `{PLAIN}`, and crypt(3) (`$1$`, `$5$`, `$6$`, DES;
//! `pwhash`). A malformed hash never matches, and never panics.

use std::collections::HashMap;

use base64::Engine;
use sha1::{Digest, Sha1};

/// A parsed htpasswd file: the hash of each user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Htpasswd {
    users: HashMap<String, String>,
}

impl Htpasswd {
    /// Parses `text`: one `user:hash` per line; blank lines, `#` comments and lines without
    /// `:` are skipped; `\r` line ends are accepted. A later line for the same user wins.
    pub fn parse(text: &str) -> Htpasswd {
        let users = text
            .lines()
            .map(|line| line.trim_end_matches('\r'))
            .filter(|line| !line.trim_start().starts_with('#'))
            .filter_map(|line| line.split_once(':'))
            .filter(|(user, _)| !user.is_empty())
            .map(|(user, hash)| (user.to_owned(), hash.trim().to_owned()))
            .collect();
        Htpasswd { users }
    }

    /// The stored hash of `user`, if the file names them.
    pub fn hash_of(&self, user: &str) -> Option<&str> {
        self.users.get(user).map(String::as_str)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file names no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `password` is `user`'s. Slow for bcrypt (by design): call off the async threads.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        self.hash_of(user)
            .is_some_and(|hash| verify_hash(hash, password))
    }
}

/// Whether `password` matches `hash`, whatever its format.
pub fn verify_hash(hash: &str, password: &str) -> bool {
    if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
        bcrypt::verify(password, hash).unwrap_or(false)
    } else if let Some(rest) = hash.strip_prefix("$apr1$") {
        verify_apr1(rest, password)
    } else if let Some(digest) = hash.strip_prefix("{SHA}") {
        let ours = base64::engine::general_purpose::STANDARD.encode(Sha1::digest(password));
        constant_time_eq(ours.as_bytes(), digest.as_bytes())
    } else if let Some(plain) = hash.strip_prefix("{PLAIN}") {
        constant_time_eq(plain.as_bytes(), password.as_bytes())
    } else if is_crypt(hash) {
        pwhash::unix::verify(password, hash)
    } else {
        false
    }
}

/// `<salt>$<digest>` after `$apr1$`: the salt is at most 8 ASCII characters.
fn verify_apr1(rest: &str, password: &str) -> bool {
    let Some((salt, digest)) = rest.split_once('$') else {
        return false;
    };
    if salt.is_empty() || salt.len() > 8 || !salt.is_ascii() || digest.is_empty() {
        return false;
    }
    let ours = htpasswd_verify::md5::md5_apr1_encode(password, salt);
    constant_time_eq(ours.as_bytes(), digest.as_bytes())
}

/// The crypt(3) shapes `pwhash` implements: MD5 (`$1$`), SHA-256 (`$5$`), SHA-512 (`$6$`), and
/// 13-character DES.
fn is_crypt(hash: &str) -> bool {
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'/';
    ["$1$", "$5$", "$6$"].iter().any(|p| hash.starts_with(p))
        || (hash.len() == 13 && hash.bytes().all(alphabet))
}

/// Compares without an early exit, so the time taken does not tell how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known vectors: apr1 and SHA from `htpasswd -m` / `-s`, crypt from `openssl passwd`.
    const APR1: &str = "$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00"; // "password"
    const SHA: &str = "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="; // "password"
    const MD5_CRYPT: &str = "$1$5pZSV9va$azfrPr6af3Fc7dLblQXVa0"; // "password"

    #[test]
    fn verifies_each_hash_format() {
        let bcrypt = bcrypt::hash("s3cret", 4).unwrap();
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let hash = format!("{prefix}{}", &bcrypt[4..]);
            assert!(verify_hash(&hash, "s3cret"), "{hash}");
            assert!(!verify_hash(&hash, "wrong"), "{hash}");
        }
        for hash in [APR1, SHA, MD5_CRYPT, "{PLAIN}password"] {
            assert!(verify_hash(hash, "password"), "{hash}");
            assert!(!verify_hash(hash, "Password"), "{hash}");
            assert!(!verify_hash(hash, ""), "{hash}");
        }
    }

    #[test]
    fn malformed_hashes_never_match() {
        for hash in [
            "",
            "$apr1$",
            "$apr1$toolongsalt$x",
            "$apr1$abc",
            "$2y$",
            "$2y$99$garbage",
            "{SHA}",
            "$1$",
            "$6$x",
            "plaintext",
            "é€",
        ] {
            assert!(!verify_hash(hash, "password"), "{hash:?}");
            assert!(!verify_hash(hash, ""), "{hash:?}");
        }
    }

    #[test]
    fn parses_users_comments_and_crlf() {
        let file = Htpasswd::parse(&format!(
            "# admins\r\nalice:{APR1}\r\n\r\nnocolon\n:nouser\nbob:{SHA}\n"
        ));
        assert_eq!(file.len(), 2);
        assert!(file.verify("alice", "password"));
        assert!(file.verify("bob", "password"));
        assert!(!file.verify("carol", "password"));
        assert!(!file.verify("", "nouser"));
    }
}
