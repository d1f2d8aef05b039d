//! Bad configs are refused with file, line and field; shipped examples load.

use crate::support::*;

/// A valid config: listener `web` routing everything to pool `main`
/// (balancer on line 10, backends on line 11).
fn good() -> String {
    single_pool_config(
        "builtin:round-robin",
        "",
        ["{ address = \"127.0.0.1:9\" }".to_owned()],
    )
}

#[test]
fn good_config_checks_ok() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = check(dir.path(), "good.toml", &good());
    assert!(ok, "{stderr}");
}

#[test]
fn unknown_field_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = good().replace(
        "  pool = \"main\"",
        "  pool = \"main\"\n  path-prefx = \"/\"",
    );
    let (ok, stderr) = check(dir.path(), "typo.toml", &bad);
    assert!(!ok);
    let expected = format!(
        "{}:8:3: listeners[0].routes[0].path-prefx: unknown field `path-prefx`",
        dir.path().join("typo.toml").display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn all_validation_errors_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let bad = good()
        .replace("pool = \"main\"", "pool = \"mian\"")
        .replace("127.0.0.1:9", "no-port")
        .replace("builtin:round-robin", "builtin:round-robn");
    let (ok, stderr) = check(dir.path(), "many.toml", &bad);
    assert!(!ok);
    assert!(
        stderr.contains(
            "many.toml:11:25: pools.main.backends[0].address: invalid backend address `no-port`"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("many.toml:7:10: listeners[0].routes[0].pool: no pool named `mian`"),
        "{stderr}"
    );
}

#[test]
fn unknown_builtin_and_rejected_options_point_at_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = check(
        dir.path(),
        "builtin.toml",
        &good().replace("round-robin", "round-robn"),
    );
    assert!(!ok);
    assert!(
        stderr.contains(
            "builtin.toml:10:12: pools.main.balancer: no built-in plugin named `round-robn`"
        ),
        "{stderr}"
    );

    let options = format!(
        "{}[pools.main.balancer-options]\nweights = [1, 2]\n",
        good()
    );
    let (ok, stderr) = check(dir.path(), "options.toml", &options);
    assert!(!ok);
    assert!(stderr.contains("options.toml:13:1: pools.main.balancer-options: plugin builtin:round-robin rejected its options"), "{stderr}");
}

#[test]
fn plugin_that_rejects_its_config_fails_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = test_plugin("test-misbehaving");
    let config = good().replace("builtin:round-robin", &plugin.display().to_string())
        + "\n[pools.main.balancer-options]\nmode = \"reject-config\"\n";
    let (ok, stderr) = check(dir.path(), "reject.toml", &config);
    assert!(!ok);
    assert!(
        stderr.contains("pools.main.balancer-options: plugin")
            && stderr.contains("configuration rejected on purpose"),
        "{stderr}"
    );
}

#[test]
fn missing_or_invalid_wasm_file_is_a_load_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = good().replace("builtin:round-robin", "missing.wasm");
    let (ok, stderr) = check(dir.path(), "missing.toml", &missing);
    assert!(!ok);
    assert!(
        stderr.contains("missing.toml:10:12: pools.main.balancer: cannot read plugin"),
        "{stderr}"
    );

    std::fs::write(dir.path().join("garbage.wasm"), b"not wasm").unwrap();
    let garbage = good().replace("builtin:round-robin", "garbage.wasm");
    let (ok, stderr) = check(dir.path(), "garbage.toml", &garbage);
    assert!(!ok);
    assert!(
        stderr.contains("pools.main.balancer: plugin") && stderr.contains("cannot be loaded"),
        "{stderr}"
    );
}

#[test]
fn run_refuses_a_bad_config_without_serving() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        good().replace("address = \"127.0.0.1:0\"", "address = \"localhost\""),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bascule"))
        .args(["run", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml:4:11: listeners[0].address: invalid socket address `localhost`"),
        "{stderr}"
    );
}

/// Every example config passes `bascule check`. Examples that name
/// `certs/NAME.pem` and `certs/NAME.key` are checked from a copy beside
/// certificates made now (none is checked in).
#[test]
fn every_example_config_checks_ok() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let copy = tempfile::tempdir().unwrap();
        let checked_path = if text.contains("certs/") {
            let certs = copy.path().join("certs");
            std::fs::create_dir(&certs).unwrap();
            for name in text
                .split("certs/")
                .skip(1)
                .filter_map(|rest| rest.split_once(".pem"))
                .map(|(name, _)| name)
            {
                let made = rcgen::generate_simple_self_signed(vec![format!("{name}.example.com")])
                    .unwrap();
                std::fs::write(certs.join(format!("{name}.pem")), made.cert.pem()).unwrap();
                std::fs::write(
                    certs.join(format!("{name}.key")),
                    made.signing_key.serialize_pem(),
                )
                .unwrap();
            }
            let copied = copy.path().join(path.file_name().unwrap());
            std::fs::write(&copied, &text).unwrap();
            copied
        } else {
            path.clone()
        };
        let (ok, stderr) = check_file(&checked_path);
        assert!(ok, "{}: {stderr}", path.display());
        checked += 1;
    }
    assert!(
        checked >= 1,
        "no example configs found in {}",
        dir.display()
    );
}

#[test]
fn health_check_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let with = |health: &str| {
        single_pool_config(
            "builtin:round-robin",
            &format!("\n[pools.main.health]\n{health}\n"),
            ["{ address = \"127.0.0.1:9\" }".to_owned()],
        )
    };
    let cases = [
        (
            "interval = \"1s\"\ntimeout = \"2s\"",
            "pools.main.health.timeout: a timeout of 2s is longer than the interval of 1s",
        ),
        (
            "healthy-threshold = 0",
            "pools.main.health.healthy-threshold: 0 is out of range 1..=100",
        ),
        (
            "path = \"health\"",
            "pools.main.health.path: `health` is not an absolute request path",
        ),
        (
            "interpreter-options = { codes = \"2xx\" }",
            "pools.main.health.interpreter-options: plugin builtin:http-status rejected its options: `codes`: `2xx` is not an HTTP status or range of them",
        ),
        (
            "interpreter = \"builtin:round-robin\"",
            "pools.main.health.interpreter: plugin builtin:round-robin cannot be loaded: it is not a health interpreter of bascule:plugin@0.4.2",
        ),
        (
            "interpreter = \"builtin:tcp-expect\"\ninterpreter-options = { expect = \"+PONG\" }",
            "pools.main.health.interpreter-options: plugin builtin:tcp-expect rejected its options: tcp-expect judges TCP probes",
        ),
    ];
    for (health, expected) in cases {
        let (ok, stderr) = check(dir.path(), "health.toml", &with(health));
        assert!(!ok, "{health}");
        assert!(stderr.contains(expected), "{health}: {stderr}");
    }
    let outlier = single_pool_config(
        "builtin:round-robin",
        "\n[pools.main.outlier-detection]\nmax-ejection-percent = 101\n",
        ["{ address = \"127.0.0.1:9\" }".to_owned()],
    );
    let (ok, stderr) = check(dir.path(), "outlier.toml", &outlier);
    assert!(!ok);
    assert!(
        stderr.contains(
            "pools.main.outlier-detection.max-ejection-percent: 101 is out of range 0..=100"
        ),
        "{stderr}"
    );
}
