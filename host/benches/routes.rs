//! Finding a request's route: 1 route beside 1,000 exact host routes,
//! 1,000 wildcard host routes, and 100 mixed routes (host, prefix, regex,
//! headers) where the request takes the last; what the route step costs
//! per request as tables grow.
//!
//! Run: `cargo bench -p bascule --bench routes`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use bascule::config::{FieldCondition, Pattern, RouteConditions, ValueTest};
use bascule::host_pattern::HostPattern;
use bascule::l7::{Conditions, PathPolicy, Route, RouteTable, RouteTarget, Split};
use bascule::upstream::BackendPool;
use criterion::{Criterion, criterion_group, criterion_main};

fn route(host: Option<HostPattern>, prefix: &str, conditions: RouteConditions) -> Route {
    let target = RouteTarget::Pools(Split::single(BackendPool::empty_for_tests("p")));
    Route::plain(host, prefix, Conditions::new(&conditions), target)
}

fn head(path: &str) -> http::request::Parts {
    http::Request::get(path)
        .header("user-agent", "bench/1.0")
        .body(())
        .unwrap()
        .into_parts()
        .0
}

fn find(c: &mut Criterion) {
    let one = RouteTable::new(
        vec![route(None, "/", RouteConditions::default())],
        PathPolicy::default(),
    );
    let exact = RouteTable::new(
        (0..1000)
            .map(|n| {
                let host = HostPattern::Exact(format!("host{n}.example.com"));
                route(Some(host), "/", RouteConditions::default())
            })
            .collect(),
        PathPolicy::default(),
    );
    let wildcard = RouteTable::new(
        (0..1000)
            .map(|n| {
                let host = HostPattern::Wildcard(format!(".tenant{n}.example.com"));
                route(Some(host), "/", RouteConditions::default())
            })
            .collect(),
        PathPolicy::default(),
    );
    // 99 routes the request fails (other hosts, prefixes, a regex and a
    // header test on its own host), then the one it takes.
    let mut mixed: Vec<Route> = (0..99)
        .map(|n| match n % 4 {
            0 => route(
                Some(HostPattern::Exact(format!("other{n}.example.com"))),
                "/",
                RouteConditions::default(),
            ),
            1 => route(None, &format!("/prefix{n}/"), RouteConditions::default()),
            2 => route(
                None,
                "/",
                RouteConditions {
                    path_regex: Some(Pattern::new(&format!("/items/{n}/[a-z]+")).unwrap()),
                    ..RouteConditions::default()
                },
            ),
            _ => route(
                Some(HostPattern::Exact("www.example.com".into())),
                "/",
                RouteConditions {
                    headers: vec![FieldCondition {
                        name: "x-variant".into(),
                        test: ValueTest::Exact(n.to_string()),
                    }],
                    ..RouteConditions::default()
                },
            ),
        })
        .collect();
    mixed.push(route(None, "/", RouteConditions::default()));
    let mixed = RouteTable::new(mixed, PathPolicy::default());
    let request = head("/items/7/list");

    let mut group = c.benchmark_group("route");
    group.bench_function("1 route", |b| {
        b.iter(|| black_box(one.find(Some("www.example.com"), black_box(&request))))
    });
    group.bench_function("1000 exact hosts", |b| {
        b.iter(|| black_box(exact.find(Some("host777.example.com"), black_box(&request))))
    });
    group.bench_function("1000 wildcard hosts", |b| {
        b.iter(|| black_box(wildcard.find(Some("a.tenant777.example.com"), black_box(&request))))
    });
    group.bench_function("100 mixed, last wins", |b| {
        b.iter(|| black_box(mixed.find(Some("www.example.com"), black_box(&request))))
    });
    group.finish();
}

criterion_group!(benches, find);
criterion_main!(benches);
