//! Host lookup: [`HostMatcher::get`] with 10, 1,000 and 10,000 exact names plus a fixed set of
//! wildcards and regexes, as `RouteTable` holds them.
//!
//! Cases: an exact hit, a leading-wildcard hit, a trailing-wildcard hit, a regex hit, and a miss
//! (the worst case: every map probed, then every regex tried).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dockhand_proxy::{normalize_host, HostMatcher, HostPattern};

/// Exact-name counts measured.
const SIZES: [usize; 3] = [10, 1_000, 10_000];
/// Wildcard names of each kind (`*.wN.example.org` and `tN.*`) added to every matcher.
const WILDCARDS: usize = 20;
/// Regex names added to every matcher; a miss tries them all.
const REGEXES: usize = 5;

/// A matcher with `exact` names `app{i}.example.com` plus the fixed wildcards and regexes.
fn matcher(exact: usize) -> HostMatcher<usize> {
    let mut names: Vec<String> = (0..exact).map(|i| format!("app{i}.example.com")).collect();
    names.extend((0..WILDCARDS).map(|i| format!("*.w{i}.example.org")));
    names.extend((0..WILDCARDS).map(|i| format!("t{i}.*")));
    names.extend((0..REGEXES).map(|i| format!("~^re{i}-[a-z0-9]+\\.example\\.net$")));
    let mut matcher = HostMatcher::new();
    for (value, name) in names.iter().enumerate() {
        match HostPattern::parse(name) {
            Ok(pattern) => assert!(matcher.insert(pattern, value), "duplicate {name}"),
            Err(e) => panic!("bench pattern {name} rejected: {e}"),
        }
    }
    matcher
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("host_lookup");
    for size in SIZES {
        let matcher = matcher(size);
        let cases = [
            ("exact_hit", format!("app{}.example.com", size / 2)),
            ("leading_wildcard_hit", "www.shop.w7.example.org".to_owned()),
            ("trailing_wildcard_hit", "t7.example.io".to_owned()),
            ("regex_hit", format!("re{}-blue.example.net", REGEXES - 1)),
            ("miss", "unknown.example.com".to_owned()),
        ];
        for (name, host) in &cases {
            // A bench that measures the wrong path is worse than none: check the outcome first.
            assert_eq!(
                matcher.get(host).is_some(),
                *name != "miss",
                "{name}: {host}"
            );
            group.bench_with_input(BenchmarkId::new(*name, size), host, |b, host| {
                b.iter(|| matcher.get(black_box(host)));
            });
        }
    }
    group.finish();
}

/// `normalize_host` on a `Host` header with a port and upper case, run before every lookup.
fn normalize(c: &mut Criterion) {
    c.bench_function("host_normalize", |b| {
        b.iter(|| normalize_host(black_box("App42.Example.COM:8080")).map(|h| h.len()));
    });
}

criterion_group!(benches, lookup, normalize);
criterion_main!(benches);
