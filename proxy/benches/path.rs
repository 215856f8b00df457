//! Path selection: [`PathMatcher::select`] over a vhost with the usual mix of locations (`/`,
//! API and static prefixes, a `^~` prefix, an exact location and two regexes), plus one with
//! 100 prefixes to show the linear scan.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dockhand_proxy::{PathMatcher, PathPattern, Selected};

/// The locations of a typical multi-path vhost.
const LOCATIONS: [&str; 8] = [
    "/",
    "/api/",
    "/api/v2/",
    "/static/",
    "^~ /assets/",
    "= /healthz",
    "~* \\.(png|jpe?g|gif|svg)$",
    "~ ^/ws/[0-9]+$",
];

/// Prefix count of the large vhost.
const MANY: usize = 100;

fn matcher<'a>(locations: impl IntoIterator<Item = &'a str>) -> PathMatcher<usize> {
    let mut matcher = PathMatcher::new();
    for (value, raw) in locations.into_iter().enumerate() {
        match PathPattern::parse(raw) {
            Ok(pattern) => assert!(matcher.insert(pattern, value), "duplicate {raw}"),
            Err(e) => panic!("bench location {raw} rejected: {e}"),
        }
    }
    matcher
}

/// Panics unless `path` selects the location at index `want` of the matcher's input (or adds a
/// slash when `want` is `None`), so each case measures the branch it is named after.
fn check(matcher: &PathMatcher<usize>, path: &str, want: Option<usize>) {
    let got = match matcher.select(path) {
        Some(Selected::Location { value, .. }) => Some(*value),
        Some(Selected::AddSlash { .. }) => None,
        None => panic!("{path}: no location"),
    };
    assert_eq!(got, want, "{path}");
}

fn select(c: &mut Criterion) {
    let typical = matcher(LOCATIONS);
    let cases = [
        ("root_fallback", "/about/team", Some(0)),
        ("longest_prefix", "/api/v2/users/42", Some(2)),
        ("prefer_prefix", "/assets/app.js", Some(4)),
        ("exact", "/healthz", Some(5)),
        ("regex", "/img/logo.png", Some(6)),
        ("add_slash", "/static", None),
    ];
    let mut group = c.benchmark_group("path_select");
    for (name, path, want) in cases {
        check(&typical, path, want);
        group.bench_with_input(BenchmarkId::new(name, LOCATIONS.len()), path, |b, path| {
            b.iter(|| typical.select(black_box(path)).is_some());
        });
    }
    let names: Vec<String> = (0..MANY).map(|i| format!("/svc{i}/")).collect();
    let many = matcher(std::iter::once("/").chain(names.iter().map(String::as_str)));
    let deep = format!("/svc{}/x", MANY / 2);
    check(&many, &deep, Some(MANY / 2 + 1));
    check(&many, "/other", Some(0));
    group.bench_with_input(BenchmarkId::new("prefix_hit", MANY), &deep, |b, path| {
        b.iter(|| many.select(black_box(path)).is_some());
    });
    group.bench_with_input(
        BenchmarkId::new("root_fallback", MANY),
        "/other",
        |b, path| {
            b.iter(|| many.select(black_box(path)).is_some());
        },
    );
    group.finish();
}

criterion_group!(benches, select);
criterion_main!(benches);
