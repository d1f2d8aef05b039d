//! Host-side tests of the real embedded plugins, differential against the
//! native reference implementations.

use std::sync::Arc;

use super::{PluginRuntime, WasmBalancer};
use crate::config::{PluginRef, SandboxConfig};
use crate::upstream::{
    Backend, BackendSelection, BackendSet, NativeRoundRobin, Protocol, RequestView,
};

fn backend_set(size: usize) -> Arc<BackendSet> {
    Arc::new(BackendSet::new(
        (0..size)
            .map(|i| {
                Backend::new(
                    format!("b{i}"),
                    crate::upstream::fixed_endpoints(
                        format!("127.0.0.1:{}", 10_000 + i).parse().unwrap(),
                    ),
                    1,
                    Vec::new(),
                    Arc::default(),
                )
            })
            .collect(),
    ))
}

fn request() -> RequestView {
    RequestView {
        protocol: Protocol::Http,
        listener: "test".into(),
        client: "127.0.0.1:40000".parse().unwrap(),
        sni: None,
        http: None,
    }
}

fn builtin(runtime: &PluginRuntime, name: &str, set: &Arc<BackendSet>) -> WasmBalancer {
    let compiled = runtime
        .compile_balancer(&PluginRef::Builtin(name.to_owned()))
        .unwrap();
    WasmBalancer::new(
        compiled,
        "{}".to_owned(),
        vec![Protocol::Http],
        SandboxConfig::default(),
        set,
    )
    .unwrap()
}

#[test]
fn round_robin_plugin_matches_the_native_reference() {
    let runtime = PluginRuntime::new().unwrap();
    for size in [1, 2, 3, 7, 16, 100] {
        let set = backend_set(size);
        let wasm = builtin(&runtime, "round-robin", &set);
        let native = NativeRoundRobin::default();
        let request = request();
        for call in 0..3 * size {
            assert_eq!(
                wasm.select(&set, &request).unwrap(),
                native.select(&set, &request).unwrap(),
                "{size} backends, call {call}"
            );
        }
    }
}

#[test]
fn round_robin_plugin_learns_a_new_backend_list() {
    let runtime = PluginRuntime::new().unwrap();
    let large = backend_set(10);
    let wasm = builtin(&runtime, "round-robin", &large);
    let request = request();
    for _ in 0..8 {
        wasm.select(&large, &request).unwrap();
    }
    // Shrinking keeps every index in range and the rotation going.
    let small = backend_set(3);
    let firsts: Vec<u32> = (0..4)
        .map(|_| wasm.select(&small, &request).unwrap().candidates[0])
        .collect();
    assert_eq!(firsts, [2, 0, 1, 2]);
}

#[test]
fn same_plugin_bytes_compile_once() {
    let runtime = PluginRuntime::new().unwrap();
    let round_robin = PluginRef::Builtin("round-robin".to_owned());
    let first = runtime.compile_balancer(&round_robin).unwrap();
    let second = runtime.compile_balancer(&round_robin).unwrap();
    assert_eq!(first.code(), second.code());
    let other = runtime
        .compile_balancer(&PluginRef::Builtin("maglev".to_owned()))
        .unwrap();
    assert_ne!(first.code(), other.code());
}
