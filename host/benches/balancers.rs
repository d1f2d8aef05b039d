//! One balancing decision per built-in algorithm, through its real `.wasm`
//! in the sandbox and through the same plugin crate compiled natively, for
//! pools of 3, 100 and 1,000 backends; and the cost of pushing a new list
//! of 1,000 backends (`set-backends`: ring or table rebuild) plus one pick.
//!
//! Run: `make bench` (or `cargo bench -p bascule --bench balancers`).
//! A subset: `cargo bench -p bascule --bench balancers -- maglev`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;
use std::time::Duration;

use bascule::upstream::BackendSelection;
use bascule_guest_sdk as sdk;
use bascule_guest_sdk::Balancer;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

// The pools, requests and plugin loading the balancer tests use.
#[path = "../tests/builtin_balancers/harness.rs"]
#[allow(dead_code)]
mod harness;

use harness::{TestRequest, backend_set, native_backends, wasm_balancer};

const POOL_SIZES: [usize; 3] = [3, 100, 1_000];

/// `count` backends of weight 1 with varied latencies.
fn backends(count: usize) -> std::sync::Arc<bascule::upstream::BackendSet> {
    let ids: Vec<u64> = (0..count as u64).collect();
    let set = backend_set(&ids, &vec![1; count]);
    for (i, backend) in set.backends.iter().enumerate() {
        let latency = 500 + (i as u64 * 37) % 900;
        backend.stats.record_success(Duration::from_micros(latency));
    }
    set
}

fn bench_request() -> TestRequest {
    TestRequest {
        client_ip: "192.0.2.10".to_owned(),
        path: "/api/users".to_owned(),
        query: Some("id=7".to_owned()),
        headers: vec![("x-user".to_owned(), "user-1234".to_owned())],
        cookies: vec![("session".to_owned(), "abc123".to_owned())],
    }
}

fn algorithm<B: Balancer>(c: &mut Criterion, name: &str, options: &str) {
    let mut group = c.benchmark_group(format!("select/{name}"));
    for size in POOL_SIZES {
        let set = backends(size);
        let balancer = wasm_balancer(name, options, &set);
        let request = bench_request().info();
        group.bench_with_input(BenchmarkId::new("wasm", size), &set, |b, set| {
            b.iter(|| black_box(balancer.select(set, &request).unwrap()))
        });
        let mut native = B::configure(&sdk::Options::from_json(options)).unwrap();
        native.set_backends(set.generation, native_backends(&set));
        let native_request = bench_request().fixture(&set);
        group.bench_function(BenchmarkId::new("native", size), |b| {
            b.iter(|| black_box(native.select(&native_request).unwrap()))
        });
    }
    group.finish();

    // Alternating two lists forces the instance to learn a list on every
    // call: this measures set-backends (table or ring rebuild) plus a pick.
    let mut group = c.benchmark_group(format!("set-backends+select/{name}"));
    group.sample_size(10);
    let sets = [backends(1_000), backends(1_000)];
    let balancer = wasm_balancer(name, options, &sets[0]);
    let request = bench_request().info();
    let mut turn = 0usize;
    group.bench_function(BenchmarkId::new("wasm", 1_000), |b| {
        b.iter(|| {
            turn ^= 1;
            black_box(balancer.select(&sets[turn], &request).unwrap())
        })
    });
    group.finish();
}

fn balancers(c: &mut Criterion) {
    let by_user = r#"{"key": "header:x-user"}"#;
    algorithm::<round_robin::RoundRobin>(c, "round-robin", "{}");
    algorithm::<weighted_round_robin::WeightedRoundRobin>(c, "weighted-round-robin", "{}");
    algorithm::<random::Random>(c, "random", "{}");
    algorithm::<weighted_random::WeightedRandom>(c, "weighted-random", "{}");
    algorithm::<least_connections::LeastConnections>(c, "least-connections", "{}");
    algorithm::<power_of_two_choices::PowerOfTwoChoices>(c, "power-of-two-choices", "{}");
    algorithm::<least_response_time::LeastResponseTime>(c, "least-response-time", "{}");
    algorithm::<ip_hash::IpHash>(c, "ip-hash", "{}");
    algorithm::<consistent_hash::ConsistentHash>(c, "consistent-hash", by_user);
    algorithm::<bounded_load_hash::BoundedLoadHash>(c, "bounded-load-hash", by_user);
    algorithm::<maglev::Maglev>(c, "maglev", by_user);
    algorithm::<rendezvous::Rendezvous>(c, "rendezvous", by_user);
    algorithm::<sticky_cookie::StickyCookie>(c, "sticky-cookie", r#"{"cookie": "session"}"#);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = balancers
}
criterion_main!(benches);
