use super::*;

fn policy(method: HttpsMethod) -> HttpsPolicy {
    HttpsPolicy {
        method,
        ..HttpsPolicy::default()
    }
}

fn facts<'a>(tls: bool, method: &'a Method, path_and_query: &'a str) -> RequestFacts<'a> {
    RequestFacts {
        tls,
        method,
        host: "web.tld",
        path_and_query,
        https_port: 443,
    }
}

fn decide(policy: &HttpsPolicy, cert_ok: bool, tls: bool, path: &str) -> Gate {
    let effective = effective_method(policy, cert_ok);
    gate(policy, effective, &facts(tls, &Method::GET, path))
}

fn redirect(location: &str) -> Gate {
    Gate::Redirect {
        status: StatusCode::MOVED_PERMANENTLY,
        location: location.to_owned(),
    }
}

#[test]
fn the_matrix_with_and_without_a_certificate() {
    use HttpsMethod::*;
    let to_https = redirect("https://web.tld/x?y=1");
    // (method, cert_ok, gate on HTTP, gate on HTTPS)
    let cases = [
        (Redirect, true, to_https.clone(), Gate::Proxy),
        (Redirect, false, Gate::Proxy, Gate::Proxy),
        (NoRedirect, true, Gate::Proxy, Gate::Proxy),
        (NoRedirect, false, Gate::Proxy, Gate::Proxy),
        (NoHttp, true, Gate::Unknown, Gate::Proxy),
        (NoHttp, false, Gate::Proxy, Gate::Proxy),
        (NoHttps, true, Gate::Proxy, Gate::Unknown),
        (NoHttps, false, Gate::Proxy, Gate::Unknown),
    ];
    for (method, cert_ok, http, https) in cases {
        let p = policy(method);
        assert_eq!(
            decide(&p, cert_ok, false, "/x?y=1"),
            http,
            "{method:?} cert={cert_ok} http"
        );
        assert_eq!(
            decide(&p, cert_ok, true, "/x?y=1"),
            https,
            "{method:?} cert={cert_ok} https"
        );
    }
}

#[test]
fn the_downgrade_needs_http_on_missing_cert() {
    let strict = |method| HttpsPolicy {
        http_on_missing_cert: false,
        ..policy(method)
    };
    assert_eq!(
        effective_method(&strict(HttpsMethod::Redirect), false),
        HttpsMethod::Redirect
    );
    assert_eq!(
        effective_method(&strict(HttpsMethod::NoHttp), false),
        HttpsMethod::NoHttp
    );
    assert_eq!(
        effective_method(&policy(HttpsMethod::Redirect), false),
        HttpsMethod::NoRedirect
    );
    assert_eq!(
        effective_method(&policy(HttpsMethod::NoHttp), false),
        HttpsMethod::NoRedirect
    );
    assert_eq!(
        effective_method(&policy(HttpsMethod::NoHttps), false),
        HttpsMethod::NoHttps
    );
    assert_eq!(
        effective_method(&policy(HttpsMethod::Redirect), true),
        HttpsMethod::Redirect
    );
}

#[test]
fn non_get_methods_use_non_get_redirect() {
    for (configured, expected) in [(301, 301), (307, 307), (308, 308), (302, 301)] {
        let p = HttpsPolicy {
            non_get_redirect: configured,
            ..HttpsPolicy::default()
        };
        for method in [
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
            Method::PATCH,
        ] {
            let Gate::Redirect { status, .. } =
                gate(&p, HttpsMethod::Redirect, &facts(false, &method, "/"))
            else {
                panic!("{method} not redirected");
            };
            assert_eq!(status.as_u16(), expected, "{method} with {configured}");
        }
        for method in [Method::GET, Method::HEAD] {
            let Gate::Redirect { status, .. } =
                gate(&p, HttpsMethod::Redirect, &facts(false, &method, "/"))
            else {
                panic!("{method} not redirected");
            };
            assert_eq!(status, StatusCode::MOVED_PERMANENTLY, "{method}");
        }
    }
}

#[test]
fn location_keeps_path_and_query_and_a_custom_port() {
    let p = HttpsPolicy::default();
    let req = RequestFacts {
        https_port: 8443,
        host: "foo.tld",
        ..facts(false, &Method::GET, "/a/b%20c?q=1&r")
    };
    assert_eq!(
        gate(&p, HttpsMethod::Redirect, &req),
        redirect("https://foo.tld:8443/a/b%20c?q=1&r")
    );
    assert_eq!(https_location("h.tld", 443, "/"), "https://h.tld/");
    assert_eq!(https_location("[::1]", 443, "*"), "https://[::1]/*");
}

#[test]
fn hsts_only_over_tls_for_redirect_and_nohttp() {
    use HttpsMethod::*;
    assert!(hsts_applies(Redirect, true));
    assert!(hsts_applies(NoHttp, true));
    assert!(!hsts_applies(NoRedirect, true));
    assert!(!hsts_applies(NoHttps, true));
    for method in [Redirect, NoRedirect, NoHttp, NoHttps] {
        assert!(!hsts_applies(method, false), "{method:?}");
    }
}

#[test]
fn acme_is_served_before_the_redirect() {
    let p = HttpsPolicy::default();
    let token = "/.well-known/acme-challenge/abc_-1";
    assert_eq!(
        decide(&p, true, false, token),
        Gate::Acme("abc_-1".to_owned())
    );
    assert_eq!(
        decide(&p, true, false, "/.well-known/acme-challenge/abc?x=1"),
        Gate::Acme("abc".to_owned())
    );
    // Not on HTTPS: proxied like anything else.
    assert_eq!(decide(&p, true, true, token), Gate::Proxy);
    for method in [HttpsMethod::NoRedirect, HttpsMethod::NoHttps] {
        assert_eq!(
            decide(&policy(method), true, false, token),
            Gate::Acme("abc_-1".to_owned())
        );
    }
    // nohttp has no port-80 server at all.
    assert_eq!(
        decide(&policy(HttpsMethod::NoHttp), true, false, token),
        Gate::Unknown
    );
}

#[test]
fn acme_refuses_traversal_and_empty_tokens() {
    let p = HttpsPolicy::default();
    for path in [
        "/.well-known/acme-challenge/",
        "/.well-known/acme-challenge/../../etc/passwd",
        "/.well-known/acme-challenge/a/b",
        "/.well-known/acme-challenge/..",
        "/.well-known/acme-challenge/a%00b/..",
    ] {
        assert_eq!(decide(&p, true, false, path), Gate::NotFound, "{path}");
    }
}

#[test]
fn acme_disabled_and_legacy() {
    let token = "/.well-known/acme-challenge/t";
    let with = |acme_challenge, method| HttpsPolicy {
        acme_challenge,
        ..policy(method)
    };
    assert_eq!(
        decide(
            &with(AcmeChallenge::Disabled, HttpsMethod::Redirect),
            true,
            false,
            token
        ),
        redirect("https://web.tld/.well-known/acme-challenge/t")
    );
    assert_eq!(
        decide(
            &with(AcmeChallenge::Disabled, HttpsMethod::NoRedirect),
            true,
            false,
            token
        ),
        Gate::Proxy
    );
    assert_eq!(
        decide(
            &with(AcmeChallenge::Legacy, HttpsMethod::Redirect),
            true,
            false,
            token
        ),
        Gate::Acme("t".to_owned())
    );
    // Legacy serves only when the effective method redirects: not after the downgrade.
    assert_eq!(
        decide(
            &with(AcmeChallenge::Legacy, HttpsMethod::Redirect),
            false,
            false,
            token
        ),
        Gate::Proxy
    );
    assert_eq!(
        decide(
            &with(AcmeChallenge::Legacy, HttpsMethod::NoRedirect),
            true,
            false,
            token
        ),
        Gate::Proxy
    );
}
