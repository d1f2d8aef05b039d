//! The built-in interpreters and a test plugin through the real `.wasm`:
//! what each declares, and its verdicts on real outcomes.

use std::time::Duration;

use http::HeaderName;

use super::*;
use crate::config::PluginRef;
use crate::health::Interpreter;
use crate::plugin::PluginRuntime;

fn interpreter(
    plugin: PluginRef,
    options: &str,
    kind: ProbeKind,
) -> Result<WasmInterpreter, Error> {
    let runtime = PluginRuntime::new().unwrap();
    let compiled = runtime.compile_interpreter(&plugin)?;
    WasmInterpreter::new(
        "test",
        compiled,
        options.to_owned(),
        kind,
        SandboxConfig::default(),
    )
}

fn builtin(name: &str, options: &str, kind: ProbeKind) -> WasmInterpreter {
    interpreter(PluginRef::Builtin(name.to_owned()), options, kind).unwrap()
}

fn test_plugin() -> PluginRef {
    PluginRef::File(
        std::path::Path::new(env!("BASCULE_TEST_PLUGIN_DIR")).join("test_health_header.wasm"),
    )
}

fn http(status: u16) -> ProbeOutcome {
    ProbeOutcome {
        kind: ProbeKind::Http,
        status: Some(status),
        headers: Vec::new(),
        body: Vec::new(),
        latency: Duration::from_millis(1),
        error: None,
    }
}

#[test]
fn http_status_judges_codes_as_configured() {
    let default = builtin("http-status", "{}", ProbeKind::Http);
    assert_eq!(
        default.needs(),
        &ProbeNeeds::default(),
        "reads nothing past the status"
    );
    assert_eq!(
        default.interpret(&http(204)).unwrap(),
        Verdict::Healthy("status 204".into())
    );
    assert_eq!(
        default.interpret(&http(503)).unwrap(),
        Verdict::Unhealthy("status 503 is not expected".into())
    );
    let only_200 = builtin("http-status", r#"{"codes": "200"}"#, ProbeKind::Http);
    assert!(matches!(
        only_200.interpret(&http(204)).unwrap(),
        Verdict::Unhealthy(_)
    ));
}

#[test]
fn http_status_refuses_bad_codes_and_tcp_pools() {
    let error = interpreter(
        PluginRef::Builtin("http-status".into()),
        r#"{"codes": "2xx"}"#,
        ProbeKind::Http,
    )
    .err()
    .unwrap();
    assert!(matches!(error, Error::Rejected { .. }), "{error:?}");
    assert!(
        interpreter(
            PluginRef::Builtin("http-status".into()),
            "{}",
            ProbeKind::Tcp
        )
        .is_err()
    );
}

#[test]
fn json_health_maps_load_to_a_degraded_weight() {
    let json = builtin("json-health", r#"{"load-field": "load"}"#, ProbeKind::Http);
    assert!(json.needs().body);
    let outcome = ProbeOutcome {
        body: br#"{"status":"degraded","load":0.8}"#.to_vec(),
        ..http(200)
    };
    assert_eq!(
        json.interpret(&outcome).unwrap(),
        Verdict::Degraded {
            permille: 200,
            reason: "status = degraded, load 0.8".into()
        }
    );
}

#[test]
fn tcp_interpreters_declare_what_to_send_and_judge_the_answer() {
    let connect = builtin("tcp-connect", "{}", ProbeKind::Tcp);
    let tcp = |body: &[u8], error: Option<&str>| ProbeOutcome {
        kind: ProbeKind::Tcp,
        status: None,
        headers: Vec::new(),
        body: body.to_vec(),
        latency: Duration::from_micros(250),
        error: error.map(str::to_owned),
    };
    assert_eq!(
        connect.interpret(&tcp(b"", None)).unwrap(),
        Verdict::Healthy("connected in 250 µs".into())
    );
    assert!(matches!(
        connect
            .interpret(&tcp(b"", Some("connection refused")))
            .unwrap(),
        Verdict::Unhealthy(_)
    ));
    let redis = builtin(
        "tcp-expect",
        r#"{"send": "PING\r\n", "expect": "+PONG"}"#,
        ProbeKind::Tcp,
    );
    assert_eq!(redis.needs().send.as_deref(), Some(&b"PING\r\n"[..]));
    assert_eq!(redis.needs().until.as_deref(), Some(&b"\n"[..]));
    assert!(matches!(
        redis.interpret(&tcp(b"+PONG\r\n", None)).unwrap(),
        Verdict::Healthy(_)
    ));
    assert!(matches!(
        redis.interpret(&tcp(b"-ERR\r\n", None)).unwrap(),
        Verdict::Unhealthy(_)
    ));
}

#[test]
fn a_user_interpreter_reads_a_declared_header_and_a_trap_is_a_plugin_failure() {
    let header = interpreter(test_plugin(), "{}", ProbeKind::Http).unwrap();
    assert_eq!(
        header.needs().headers,
        [HeaderName::from_static("x-health")]
    );
    let with = |value: &str| ProbeOutcome {
        headers: vec![("x-health".into(), value.into())],
        ..http(200)
    };
    assert_eq!(
        header.interpret(&with("ok")).unwrap(),
        Verdict::Healthy("x-health: ok".into())
    );
    assert_eq!(
        header.interpret(&with("degraded")).unwrap(),
        Verdict::Degraded {
            permille: 500,
            reason: "x-health: degraded".into()
        }
    );
    let trapped = header
        .interpret(&with("trap"))
        .expect_err("a trap fails the call");
    assert!(
        crate::error_chain(&trapped).contains("trapped"),
        "{}",
        crate::error_chain(&trapped)
    );
    // The trapped instance was replaced: the next call answers.
    assert!(header.interpret(&with("ok")).is_ok());
}

#[test]
fn a_balancer_is_not_an_interpreter() {
    let error = interpreter(
        PluginRef::Builtin("round-robin".into()),
        "{}",
        ProbeKind::Http,
    )
    .err()
    .unwrap();
    assert!(
        crate::error_chain(&error).contains("not a health interpreter of bascule:plugin@0.4.2"),
        "{}",
        crate::error_chain(&error)
    );
}

#[test]
fn out_of_range_weight_factors_are_invalid() {
    for factor in [0.0, -1.0, 1.5, f32::NAN] {
        let verdict = health::Verdict::Degraded(health::Degraded {
            weight_factor: factor,
            reason: String::new(),
        });
        assert!(checked_verdict(verdict).is_err(), "{factor}");
    }
    let long = health::Verdict::Healthy("é".repeat(300));
    let Ok(Verdict::Healthy(reason)) = checked_verdict(long) else {
        panic!("a long reason is cut, not refused");
    };
    assert!(reason.len() <= MAX_REASON);
}
