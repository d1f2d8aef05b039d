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
        tls: None,
        http: None,
    }
}

fn builtin(runtime: &PluginRuntime, name: &str, set: &Arc<BackendSet>) -> WasmBalancer {
    let compiled = runtime
        .compile_balancer(&PluginRef::Builtin(name.to_owned()))
        .unwrap();
    WasmBalancer::new(
        "test",
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

/// A component that exports `bascule:plugin/balance@0.2.0`, the contract
/// before this one: what a plugin built with the old guest SDK looks like
/// to the host.
const BALANCER_0_2: &str = r#"
(component
  (core module $m
    (func (export "select") (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (func $select (result u32) (canon lift (core func $i "select")))
  (instance $balance (export "select" (func $select)))
  (export "bascule:plugin/balance@0.2.0" (instance $balance))
)
"#;

#[test]
fn a_plugin_built_against_0_2_is_refused_naming_both_versions() {
    let runtime = PluginRuntime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("bascule-contract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("old.wasm");
    std::fs::write(&path, wat::parse_str(BALANCER_0_2).unwrap()).unwrap();
    let error = runtime
        .compile_balancer(&PluginRef::File(path.clone()))
        .err()
        .expect("a 0.2 plugin must not load");
    let message = crate::error_chain(&error);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        message.contains("bascule:plugin@0.2.0") && message.contains("bascule:plugin@0.4.2"),
        "{message}"
    );
}

#[test]
fn a_header_filter_is_not_a_balancer() {
    let runtime = PluginRuntime::new().unwrap();
    let error = runtime
        .compile_balancer(&PluginRef::Builtin("headers".to_owned()))
        .err()
        .expect("a filter must not load as a balancer");
    let message = crate::error_chain(&error);
    assert!(
        message.contains("not a balancer of bascule:plugin@0.4.2"),
        "{message}"
    );
}

/// The built-in `name` as a plugin built against `bascule:plugin@0.4.1`
/// would be: every `@0.4.2` in its names turned into `@0.4.1` (same
/// length, so the binary stays well formed).
fn built_against_0_4_0(name: &str) -> Vec<u8> {
    let mut bytes = super::source::read(&PluginRef::Builtin(name.to_owned()))
        .unwrap()
        .into_owned();
    let (from, to) = (b"@0.4.2", b"@0.4.1");
    let mut replaced = 0;
    let mut at = 0;
    while let Some(offset) = bytes[at..].windows(from.len()).position(|w| w == from) {
        bytes[at + offset..at + offset + from.len()].copy_from_slice(to);
        at += offset + from.len();
        replaced += 1;
    }
    assert!(replaced > 0, "{name} names no @0.4.2 interface");
    bytes
}

#[test]
fn a_plugin_built_against_0_4_0_loads_and_balances() {
    let dir = std::env::temp_dir().join(format!("bascule-0-4-0-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("round-robin-0.4.1.wasm");
    std::fs::write(&path, built_against_0_4_0("round-robin")).unwrap();
    let runtime = PluginRuntime::new().unwrap();
    let compiled = runtime.compile_balancer(&PluginRef::File(path));
    std::fs::remove_dir_all(&dir).unwrap();
    let set = backend_set(3);
    let wasm = WasmBalancer::new(
        "test",
        compiled.expect("0.4.1 is compatible with 0.4.2"),
        "{}".to_owned(),
        vec![Protocol::Http],
        SandboxConfig::default(),
        &set,
    )
    .unwrap();
    let firsts: Vec<u32> = (0..4)
        .map(|_| wasm.select(&set, &request()).unwrap().candidates[0])
        .collect();
    assert_eq!(firsts, [0, 1, 2, 0]);
}
