//! One `interpret` call per built-in health interpreter, through its real
//! `.wasm` in the sandbox, on the outcome it typically judges: what one
//! probe costs the host beyond its network round trip.
//!
//! Run: `cargo bench -p bascule --bench interpreters`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use bascule::config::{PluginRef, SandboxConfig};
use bascule::health::{Interpreter, ProbeKind, ProbeOutcome};
use bascule::plugin::{PluginRuntime, WasmInterpreter};
use criterion::{Criterion, criterion_group, criterion_main};

fn interpreter(
    runtime: &PluginRuntime,
    name: &str,
    options: &str,
    kind: ProbeKind,
) -> WasmInterpreter {
    let compiled = runtime
        .compile_interpreter(&PluginRef::Builtin(name.to_owned()))
        .unwrap();
    WasmInterpreter::new(
        "bench",
        compiled,
        options.to_owned(),
        kind,
        SandboxConfig::default(),
    )
    .unwrap()
}

fn outcome(kind: ProbeKind, status: Option<u16>, body: &[u8]) -> ProbeOutcome {
    ProbeOutcome {
        kind,
        status,
        headers: Vec::new(),
        body: body.to_vec(),
        latency: Duration::from_micros(420),
        error: None,
    }
}

fn interpret(c: &mut Criterion) {
    let runtime = PluginRuntime::new().unwrap();
    let cases = [
        (
            "http-status",
            "{}",
            outcome(ProbeKind::Http, Some(200), b""),
        ),
        (
            "json-health",
            r#"{"load-field": "load"}"#,
            outcome(
                ProbeKind::Http,
                Some(200),
                br#"{"status":"degraded","load":0.8,"checks":{"db":"ok","cache":"ok"}}"#,
            ),
        ),
        ("tcp-connect", "{}", outcome(ProbeKind::Tcp, None, b"")),
        (
            "tcp-expect",
            r#"{"send": "PING\r\n", "expect": "+PONG"}"#,
            outcome(ProbeKind::Tcp, None, b"+PONG\r\n"),
        ),
    ];
    let mut group = c.benchmark_group("interpret");
    for (name, options, probe) in cases {
        let kind = probe.kind;
        let interpreter = interpreter(&runtime, name, options, kind);
        interpreter.interpret(&probe).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| black_box(interpreter.interpret(black_box(&probe)).unwrap()));
        });
    }
    group.finish();
}

criterion_group!(benches, interpret);
criterion_main!(benches);
