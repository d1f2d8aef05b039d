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
use std::sync::Arc;
use std::time::Duration;

use bascule::config::{PluginRef, SandboxConfig};
use bascule::plugin::{PluginRuntime, WasmBalancer};
use bascule::upstream::{Backend, BackendSelection, BackendSet, Protocol, RequestInfo};
use bascule_guest_sdk as sdk;
use bascule_guest_sdk::Balancer;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const POOL_SIZES: [usize; 3] = [3, 100, 1_000];

fn backends(count: usize) -> Arc<BackendSet> {
    Arc::new(BackendSet::new(
        (0..count)
            .map(|i| {
                let backend = Backend::new(
                    format!("backend-{i}"),
                    format!("10.0.{}.{}:8080", i / 256, i % 256),
                    1,
                    Vec::new(),
                    Arc::default(),
                );
                let latency = 500 + (i as u64 * 37) % 900;
                backend.stats.record_success(Duration::from_micros(latency));
                backend
            })
            .collect(),
    ))
}

fn request() -> RequestInfo {
    let (parts, ()) = http::Request::get("/api/users?id=7")
        .header("host", "api.example.com")
        .header("x-user", "user-1234")
        .header("cookie", "session=abc123")
        .body(())
        .unwrap()
        .into_parts();
    RequestInfo {
        protocol: Protocol::Http,
        listener: "bench".into(),
        client: "192.0.2.10:40000".parse().unwrap(),
        sni: None,
        http: Some(parts),
    }
}

fn fixture(set: &BackendSet) -> sdk::Request {
    sdk::Request::fixture(sdk::RequestFixture {
        client_ip: "192.0.2.10".into(),
        path: "/api/users".into(),
        query: Some("id=7".into()),
        headers: vec![("x-user".into(), "user-1234".into())],
        cookies: vec![("session".into(), "abc123".into())],
        stats: set
            .backends
            .iter()
            .map(|b| sdk::BackendStats {
                ewma_latency_us: b.stats.snapshot().ewma_latency_us,
                ..sdk::BackendStats::default()
            })
            .collect(),
        ..sdk::RequestFixture::default()
    })
}

fn native_backends(set: &BackendSet) -> Vec<sdk::Backend> {
    set.backends
        .iter()
        .map(|b| sdk::Backend {
            id: b.id.clone(),
            address: b.address.clone(),
            weight: b.weight,
            ramp_permille: b.ramp_permille,
            token: b.token.clone(),
            metadata: Vec::new(),
        })
        .collect()
}

fn wasm(runtime: &PluginRuntime, name: &str, options: &str, set: &Arc<BackendSet>) -> WasmBalancer {
    let compiled = runtime
        .compile_balancer(&PluginRef::Builtin(name.to_owned()))
        .unwrap();
    let protocols = vec![Protocol::Http];
    WasmBalancer::new(
        compiled,
        options.to_owned(),
        protocols,
        SandboxConfig::default(),
        set,
    )
    .unwrap()
}

fn algorithm<B: Balancer>(c: &mut Criterion, runtime: &PluginRuntime, name: &str, options: &str) {
    let mut group = c.benchmark_group(format!("select/{name}"));
    for size in POOL_SIZES {
        let set = backends(size);
        let balancer = wasm(runtime, name, options, &set);
        let mut request = request();
        group.bench_with_input(BenchmarkId::new("wasm", size), &set, |b, set| {
            b.iter(|| black_box(balancer.select(set, &mut request).unwrap()))
        });
        let mut native = B::configure(&sdk::Options::from_json(options)).unwrap();
        native.set_backends(set.generation, native_backends(&set));
        let native_request = fixture(&set);
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
    let balancer = wasm(runtime, name, options, &sets[0]);
    let mut request = request();
    let mut turn = 0usize;
    group.bench_function(BenchmarkId::new("wasm", 1_000), |b| {
        b.iter(|| {
            turn ^= 1;
            black_box(balancer.select(&sets[turn], &mut request).unwrap())
        })
    });
    group.finish();
}

fn balancers(c: &mut Criterion) {
    let runtime = PluginRuntime::new().unwrap();
    let r = &runtime;
    let by_user = r#"{"key": "header:x-user"}"#;
    algorithm::<round_robin::RoundRobin>(c, r, "round-robin", "{}");
    algorithm::<weighted_round_robin::WeightedRoundRobin>(c, r, "weighted-round-robin", "{}");
    algorithm::<random::Random>(c, r, "random", "{}");
    algorithm::<weighted_random::WeightedRandom>(c, r, "weighted-random", "{}");
    algorithm::<least_connections::LeastConnections>(c, r, "least-connections", "{}");
    algorithm::<power_of_two_choices::PowerOfTwoChoices>(c, r, "power-of-two-choices", "{}");
    algorithm::<least_response_time::LeastResponseTime>(c, r, "least-response-time", "{}");
    algorithm::<ip_hash::IpHash>(c, r, "ip-hash", "{}");
    algorithm::<consistent_hash::ConsistentHash>(c, r, "consistent-hash", by_user);
    algorithm::<bounded_load_hash::BoundedLoadHash>(c, r, "bounded-load-hash", by_user);
    algorithm::<maglev::Maglev>(c, r, "maglev", by_user);
    algorithm::<rendezvous::Rendezvous>(c, r, "rendezvous", by_user);
    algorithm::<sticky_cookie::StickyCookie>(c, r, "sticky-cookie", r#"{"cookie": "session"}"#);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = balancers
}
criterion_main!(benches);
