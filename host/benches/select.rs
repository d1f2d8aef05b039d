//! One balancing decision through the real round-robin plugin, beside the
//! native reference implementation, for pools of 3, 100 and 1,000 backends;
//! and the cost of pushing a new backend list (`set-backends`) to the plugin.
//!
//! Run: `cargo bench -p bascule --bench select` (or `make bench`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;
use std::sync::Arc;

use bascule::config::{PluginRef, SandboxConfig};
use bascule::plugin::{PluginRuntime, WasmBalancer};
use bascule::upstream::{
    Backend, BackendSelection, BackendSet, NativeRoundRobin, Protocol, RequestInfo,
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const POOL_SIZES: [usize; 3] = [3, 100, 1_000];

fn backends(count: usize, generation: u64) -> Arc<BackendSet> {
    Arc::new(BackendSet {
        generation,
        backends: (0..count)
            .map(|i| Backend {
                id: format!("backend-{i}"),
                address: format!("10.0.{}.{}:8080", i / 256, i % 256),
                weight: 1,
                metadata: Vec::new(),
                stats: Arc::default(),
            })
            .collect(),
    })
}

fn request() -> RequestInfo {
    let (parts, ()) = http::Request::get("/api/users?id=7")
        .header("host", "api.example.com")
        .header("user-agent", "bench")
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

fn round_robin(runtime: &PluginRuntime, set: &Arc<BackendSet>) -> WasmBalancer {
    let compiled = runtime
        .compile_balancer(&PluginRef::Builtin("round-robin".to_owned()))
        .unwrap();
    WasmBalancer::new(compiled, "{}".to_owned(), SandboxConfig::default(), set).unwrap()
}

fn select(c: &mut Criterion) {
    let runtime = PluginRuntime::new().unwrap();
    let mut group = c.benchmark_group("select/round-robin");
    for size in POOL_SIZES {
        let set = backends(size, 1);
        let wasm = round_robin(&runtime, &set);
        let native = NativeRoundRobin::default();
        let mut request = request();
        group.bench_with_input(BenchmarkId::new("wasm", size), &set, |b, set| {
            b.iter(|| black_box(wasm.select(set, &mut request).unwrap()))
        });
        group.bench_with_input(BenchmarkId::new("native", size), &set, |b, set| {
            b.iter(|| black_box(native.select(set, &mut request).unwrap()))
        });
    }
    group.finish();
}

fn set_backends(c: &mut Criterion) {
    let runtime = PluginRuntime::new().unwrap();
    let mut group = c.benchmark_group("set-backends+select/round-robin");
    for size in POOL_SIZES {
        // Alternating generations forces the instance to learn the list on
        // every call, so this measures the push plus one select.
        let sets = [backends(size, 1), backends(size, 2)];
        let wasm = round_robin(&runtime, &sets[0]);
        let mut request = request();
        let mut turn = 0usize;
        group.bench_function(BenchmarkId::new("wasm", size), |b| {
            b.iter(|| {
                turn ^= 1;
                black_box(wasm.select(&sets[turn], &mut request).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, select, set_backends);
criterion_main!(benches);
