use super::*;

const APR1: &str = "$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00"; // "password"
const SHA: &str = "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="; // "password"

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dockhand-auth-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn basic(user: &str, password: &str) -> HeaderValue {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
}

#[test]
fn file_names_follow_nginx_proxy() {
    let files = AuthFiles::new("web.tld", "/");
    assert_eq!(files.host_file.as_deref(), Some("web.tld"));
    assert_eq!(
        files.path_file.as_deref(),
        Some("web.tld_42099b4af021e53fd8fd4e056c2568d7c2e3ffa8")
    );
    assert_eq!(files.host_realm, "Basic realm=\"Restricted web.tld\"");
    assert_eq!(files.path_realm, "Basic realm=\"Restricted web.tld/\"");
    let regex = AuthFiles::new("~^api\\.", "/api/");
    let hashed = sha1_hex(b"~^api\\.");
    assert_eq!(regex.host_file.as_deref(), Some(hashed.as_str()));
    assert_eq!(regex.host_realm, "Basic realm=\"Restricted access\"");
    assert_eq!(AuthFiles::new("..", "/").host_file, None);
}

#[test]
fn malformed_authorization_is_no_credentials() {
    for bad in [
        "Basic",
        "Basic !!!",
        "Bearer dXNlcjpwYXNz",
        "Basic dXNlcnBhc3M=", // "userpass": no colon
        "Basic //79/w==",     // not UTF-8
    ] {
        assert_eq!(credentials(&HeaderValue::from_static(bad)), None, "{bad}");
    }
    assert_eq!(
        credentials(&basic("u", "p:q")),
        Some(("u".to_owned(), "p:q".to_owned()))
    );
    assert!(credentials(&HeaderValue::from_static("basic dTpw")).is_some());
}

#[tokio::test]
async fn missing_file_means_no_auth() {
    let auth = BasicAuth::new(dir("missing"));
    let files = AuthFiles::new("open.tld", "/");
    assert_eq!(auth.check(&files, None).await, Ok(()));
}

#[tokio::test]
async fn host_file_protects_the_vhost() {
    let root = dir("host");
    std::fs::write(root.join("web.tld"), format!("alice:{APR1}\nbob:{SHA}\n")).unwrap();
    let auth = BasicAuth::new(&root);
    let files = AuthFiles::new("web.tld", "/");
    let realm = HeaderValue::from_static("Basic realm=\"Restricted web.tld\"");
    assert_eq!(auth.check(&files, None).await, Err(realm.clone()));
    assert_eq!(
        auth.check(&files, Some(&basic("alice", "nope"))).await,
        Err(realm.clone())
    );
    assert_eq!(
        auth.check(&files, Some(&HeaderValue::from_static("Basic ????")))
            .await,
        Err(realm)
    );
    assert_eq!(
        auth.check(&files, Some(&basic("alice", "password"))).await,
        Ok(())
    );
    assert_eq!(
        auth.check(&files, Some(&basic("bob", "password"))).await,
        Ok(())
    );
}

#[tokio::test]
async fn path_file_wins_for_its_location() {
    let root = dir("path");
    let bcrypt = bcrypt::hash("api-pass", 4).unwrap();
    std::fs::write(root.join("web.tld"), format!("alice:{APR1}\n")).unwrap();
    let api = format!("web.tld_{}", sha1_hex(b"/api/"));
    std::fs::write(root.join(api), format!("carol:{bcrypt}\n")).unwrap();
    let auth = BasicAuth::new(&root);
    let api = AuthFiles::new("web.tld", "/api/");
    let root_path = AuthFiles::new("web.tld", "/");
    assert_eq!(
        auth.check(&api, Some(&basic("alice", "password"))).await,
        Err(HeaderValue::from_static(
            "Basic realm=\"Restricted web.tld/api/\""
        ))
    );
    assert_eq!(
        auth.check(&api, Some(&basic("carol", "api-pass"))).await,
        Ok(())
    );
    // Cached now; still refused on the other location, which has another file.
    assert_eq!(
        auth.check(&api, Some(&basic("carol", "api-pass"))).await,
        Ok(())
    );
    assert!(auth
        .check(&root_path, Some(&basic("carol", "api-pass")))
        .await
        .is_err());
    assert_eq!(
        auth.check(&root_path, Some(&basic("alice", "password")))
            .await,
        Ok(())
    );
}

/// Checks until `expected` (the watcher lists the folder every few milliseconds here), or fails
/// after a deadline.
async fn eventually(
    auth: &BasicAuth,
    files: &AuthFiles,
    authorization: Option<&HeaderValue>,
    expected: fn(&Result<(), HeaderValue>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = auth.check(files, authorization).await;
        if expected(&got) {
            return;
        }
        assert!(Instant::now() < deadline, "still {got:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn changes_to_the_file_are_picked_up() {
    let root = dir("change");
    let file = root.join("web.tld");
    std::fs::write(&file, format!("alice:{APR1}\n")).unwrap();
    let auth = BasicAuth::with_recheck(&root, Duration::from_millis(5));
    let files = AuthFiles::new("web.tld", "/");
    let alice = basic("alice", "password");
    assert_eq!(auth.check(&files, Some(&alice)).await, Ok(()));
    // Alice's cached verification must not outlive her removal.
    std::fs::write(&file, format!("bob:{SHA}\n# alice was removed\n")).unwrap();
    eventually(&auth, &files, Some(&alice), Result::is_err).await;
    let bob = basic("bob", "password");
    assert_eq!(auth.check(&files, Some(&bob)).await, Ok(()));
    std::fs::remove_file(&file).unwrap();
    eventually(&auth, &files, None, Result::is_ok).await;
    // A file that appears later is found too.
    let other = AuthFiles::new("other.tld", "/");
    assert_eq!(auth.check(&other, None).await, Ok(()));
    std::fs::write(root.join("other.tld"), format!("bob:{SHA}\n")).unwrap();
    eventually(&auth, &other, None, Result::is_err).await;
    assert_eq!(auth.check(&other, Some(&bob)).await, Ok(()));
}

#[tokio::test]
async fn a_new_file_waits_for_the_recheck_interval() {
    let root = dir("interval");
    let auth = BasicAuth::with_recheck(&root, Duration::from_secs(3600));
    let files = AuthFiles::new("web.tld", "/");
    assert_eq!(auth.check(&files, None).await, Ok(()));
    std::fs::write(root.join("web.tld"), format!("alice:{APR1}\n")).unwrap();
    // Not listed again within the interval: the cached "no file" still holds.
    assert_eq!(auth.check(&files, None).await, Ok(()));
}

#[tokio::test]
async fn an_unlistable_folder_denies_everybody() {
    // A file where the folder should be cannot be listed (running as root, permissions would
    // not stop the listing).
    let root = dir("unlistable");
    let not_a_folder = root.join("htpasswd");
    std::fs::write(&not_a_folder, "").unwrap();
    let auth = BasicAuth::new(&not_a_folder);
    let files = AuthFiles::new("web.tld", "/");
    let realm = HeaderValue::from_static("Basic realm=\"Restricted web.tld\"");
    assert_eq!(auth.check(&files, None).await, Err(realm.clone()));
    assert_eq!(
        auth.check(&files, Some(&basic("alice", "password"))).await,
        Err(realm)
    );
}

#[tokio::test]
async fn a_folder_under_a_vhost_name_is_no_file() {
    let root = dir("unreadable");
    std::fs::create_dir(root.join("web.tld")).unwrap();
    std::fs::write(root.join("locked.tld"), format!("alice:{APR1}\n")).unwrap();
    let auth = BasicAuth::new(&root);
    assert_eq!(
        auth.check(&AuthFiles::new("web.tld", "/"), None).await,
        Ok(())
    );
    assert!(auth
        .check(&AuthFiles::new("locked.tld", "/"), None)
        .await
        .is_err());
}

#[test]
fn the_verification_cache_is_bounded() {
    let auth = BasicAuth::new("/nonexistent");
    for i in 0..(VERIFIED_CAPACITY * 2 + 1) {
        let key = cache_key("f", Some(&basic(&format!("u{i}"), "p")));
        auth.remember(key, format!("u{i}"), "h".to_owned());
    }
    let len = auth.verified.lock().unwrap().len();
    assert!(len <= VERIFIED_CAPACITY, "{len}");
}
