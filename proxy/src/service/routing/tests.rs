use super::*;

fn head(method: &str, target: &str, version: Version, headers: &[(&str, &str)]) -> Parts {
    let mut req = http::Request::builder()
        .method(method)
        .uri(target)
        .version(version);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(()).expect("valid test request").into_parts().0
}

fn host_of(parts: &Parts) -> Result<Option<String>, ErrorKind> {
    HostSource::of(parts).map(|s| s.and_then(|s| s.normalized().map(Cow::into_owned)))
}

#[test]
fn one_host_line_is_routed_on() {
    let parts = head("GET", "/", Version::HTTP_11, &[("host", "A.tld:8080")]);
    assert_eq!(host_of(&parts), Ok(Some("a.tld".into())));
    let bare = head("GET", "/", Version::HTTP_10, &[]);
    assert_eq!(host_of(&bare), Ok(None));
}

#[test]
fn a_second_host_line_is_refused() {
    let two = [("host", "a.tld"), ("host", "b.tld")];
    assert_eq!(
        host_of(&head("GET", "/", Version::HTTP_11, &two)),
        Err(ErrorKind::BadRequest)
    );
    let same = [("host", "a.tld"), ("host", "a.tld")];
    assert_eq!(
        host_of(&head("GET", "/", Version::HTTP_10, &same)),
        Err(ErrorKind::BadRequest)
    );
}

#[test]
fn absolute_form_authority_wins_but_needs_a_valid_host_line() {
    let differ = head(
        "GET",
        "http://a.tld/x",
        Version::HTTP_11,
        &[("host", "b.tld")],
    );
    assert_eq!(host_of(&differ), Ok(Some("a.tld".into())));
    let missing = head("GET", "http://a.tld/x", Version::HTTP_11, &[]);
    assert_eq!(host_of(&missing), Err(ErrorKind::BadRequest));
    let invalid = head("GET", "http://a.tld/", Version::HTTP_11, &[("host", "a b")]);
    assert_eq!(host_of(&invalid), Err(ErrorKind::BadRequest));
    let old = head("GET", "http://a.tld/", Version::HTTP_10, &[]);
    assert_eq!(host_of(&old), Ok(Some("a.tld".into())));
}

#[test]
fn http2_host_must_name_the_authority() {
    let h2 = |host: &str| head("GET", "https://a.tld/", Version::HTTP_2, &[("host", host)]);
    for same in ["a.tld", "A.TLD", "a.tld:443", "a.tld."] {
        assert!(matches!(host_of(&h2(same)), Ok(Some(_))), "{same}");
    }
    for other in ["b.tld", "a.tld:80", "a.tld:x", "", "a.tld/"] {
        assert_eq!(host_of(&h2(other)), Err(ErrorKind::BadRequest), "{other}");
    }
    let none = head("GET", "http://a.tld/", Version::HTTP_2, &[]);
    assert_eq!(host_of(&none), Ok(Some("a.tld".into())));
}

#[test]
fn target_forms_other_than_origin_and_absolute_are_refused() {
    let v11 = Version::HTTP_11;
    assert_eq!(malformed(&head("GET", "/a", v11, &[])), None);
    assert_eq!(malformed(&head("GET", "http://a.tld", v11, &[])), None);
    for (method, target) in [
        ("GET", "a.tld:80"),
        ("OPTIONS", "*"),
        ("CONNECT", "a.tld:443"),
    ] {
        let parts = head(method, target, v11, &[]);
        assert_eq!(malformed(&parts), Some(ErrorKind::BadRequest), "{target}");
    }
}

#[test]
fn only_a_single_chunked_coding_is_forwarded() {
    let te = |values: &[&str]| {
        let headers: Vec<_> = values.iter().map(|v| ("transfer-encoding", *v)).collect();
        malformed(&head("POST", "/", Version::HTTP_11, &headers))
    };
    assert_eq!(te(&[]), None);
    assert_eq!(te(&["chunked"]), None);
    assert_eq!(te(&[" Chunked "]), None);
    assert_eq!(te(&["gzip, chunked"]), Some(ErrorKind::UnsupportedCoding));
    assert_eq!(te(&["identity"]), Some(ErrorKind::UnsupportedCoding));
    assert_eq!(te(&["chunked, chunked"]), Some(ErrorKind::BadBody));
    assert_eq!(te(&["gzip", "chunked"]), Some(ErrorKind::BadBody));
}
