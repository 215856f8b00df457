//! The ACME HTTP-01 challenge location: files under `<webroot>/.well-known/acme-challenge/`,
//! written there by an ACME client (acme-companion, certbot) and served on plain HTTP.

use std::path::Path;

use bytes::Bytes;
use tokio::io::AsyncReadExt;

/// Largest challenge file served; real ones are under 100 bytes. Default 64 KiB.
pub const MAX_CHALLENGE_SIZE: u64 = 64 * 1024;

/// Whether `token` can name a challenge file: one non-empty path segment, not `.` or `..`, with
/// no `/`, `\`, NUL or `..` in it, so that it can never leave the challenge folder.
pub fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token != "."
        && !token.contains("..")
        && !token.bytes().any(|b| matches!(b, b'/' | b'\\' | 0))
}

/// Reads the challenge file for `token` under `webroot`.
///
/// `None` (the caller answers 404) when the token is invalid, the file is missing, is not a
/// regular file, or is larger than [`MAX_CHALLENGE_SIZE`].
pub async fn read_challenge(webroot: &Path, token: &str) -> Option<Bytes> {
    if !is_token(token) {
        return None;
    }
    let path = webroot.join(".well-known/acme-challenge").join(token);
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "no ACME challenge file");
            return None;
        }
    };
    let meta = file.metadata().await.ok()?;
    if !meta.is_file() || meta.len() > MAX_CHALLENGE_SIZE {
        tracing::warn!(path = %path.display(), size = meta.len(), "refusing ACME challenge file");
        return None;
    }
    // The size is re-checked while reading: the file may grow between `metadata` and `read`.
    let mut buf = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    let read = file
        .take(MAX_CHALLENGE_SIZE + 1)
        .read_to_end(&mut buf)
        .await;
    match read {
        Ok(n) if n as u64 <= MAX_CHALLENGE_SIZE => Some(Bytes::from(buf)),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read ACME challenge file");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webroot(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("dockhand-acme-{name}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".well-known/acme-challenge")).unwrap();
        dir
    }

    #[test]
    fn tokens_are_single_segments() {
        assert!(is_token("Xy_-12abc"));
        assert!(is_token("a.b"));
        for bad in [
            "", ".", "..", "../x", "a/b", "a\\b", "a\0b", "x..y", "%2e%2e/x",
        ] {
            assert!(!is_token(bad), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn serves_the_file_and_nothing_else() {
        let root = webroot("serve");
        std::fs::write(root.join(".well-known/acme-challenge/tok"), "tok.key").unwrap();
        std::fs::write(root.join("secret"), "no").unwrap();
        std::fs::create_dir_all(root.join(".well-known/acme-challenge/dir")).unwrap();
        assert_eq!(
            read_challenge(&root, "tok").await.as_deref(),
            Some(&b"tok.key"[..])
        );
        assert_eq!(read_challenge(&root, "missing").await, None);
        assert_eq!(read_challenge(&root, "../../secret").await, None);
        assert_eq!(read_challenge(&root, "dir").await, None);
    }

    #[tokio::test]
    async fn refuses_oversized_files() {
        let root = webroot("big");
        let big = vec![b'a'; MAX_CHALLENGE_SIZE as usize + 1];
        std::fs::write(root.join(".well-known/acme-challenge/big"), big).unwrap();
        let edge = vec![b'a'; MAX_CHALLENGE_SIZE as usize];
        std::fs::write(root.join(".well-known/acme-challenge/edge"), edge).unwrap();
        assert_eq!(read_challenge(&root, "big").await, None);
        assert_eq!(
            read_challenge(&root, "edge").await.map(|b| b.len()),
            Some(MAX_CHALLENGE_SIZE as usize)
        );
    }
}
