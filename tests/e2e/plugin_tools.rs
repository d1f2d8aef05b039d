//! `bascule plugin inspect`: a valid plugin, a core module, a component
//! of no Bascule world, one with an import the host lacks and one built
//! against another contract line, each with its verdict and reason.
//! `bascule plugin run`: a balancer's decisions checked against a model
//! computed here, simulated failures, a filter's edits and answers, a
//! health interpreter's verdicts, and bad inputs named by line.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// `bascule plugin inspect FILE` (with `extra` options): success, stdout
/// and stderr.
fn inspect(file: &Path, extra: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bascule"))
        .args(["plugin", "inspect"])
        .arg(file)
        .args(extra)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The built-in round robin's bytes with every `from` turned into `to`
/// (same length), written to `dir`.
fn rewritten(dir: &Path, from: &[u8], to: &[u8]) -> std::path::PathBuf {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(test_plugin("round-robin")).unwrap();
    let mut replaced = 0;
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(from.len()).position(|w| w == from) {
        bytes[at + found..at + found + to.len()].copy_from_slice(to);
        at += found + to.len();
        replaced += 1;
    }
    assert!(replaced > 0);
    let path = dir.join("rewritten.wasm");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_valid_plugin_is_described_and_loads() {
    let file = test_plugin("round-robin");
    let (ok, out, err) = inspect(&file, &[]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("format:    component"), "{out}");
    assert!(out.contains("world:     balancer (0.4.2)"), "{out}");
    assert!(out.contains("  bascule:plugin/balance@0.4.2"), "{out}");
    assert!(out.contains("  bascule:plugin/log@0.4.2"), "{out}");
    assert!(out.contains("loads:     yes"), "{out}");
    // The host states which contract versions it loads.
    assert!(
        out.contains("host:      speaks bascule:plugin@0.4.2, loads bascule:plugin@0.4.x"),
        "{out}"
    );
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(out.contains(&format!("size:      {size} bytes")), "{out}");

    let (ok, out, _) = inspect(&test_plugin("test-filter"), &["--json"]);
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["world"], "header-filter");
    assert_eq!(json["contract"], "0.4.2");
    assert_eq!(json["loads"], true);
    assert_eq!(json["host-loads"], "bascule:plugin@0.4.x");
    assert!(json["compile-ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_core_module_is_refused_with_how_to_make_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("core.wasm");
    std::fs::write(
        &file,
        wat::parse_str("(module (func (export \"select\")))").unwrap(),
    )
    .unwrap();
    let (ok, out, err) = inspect(&file, &[]);
    assert!(!ok);
    assert!(out.contains("format:    core module"), "{out}");
    assert!(
        err.contains("a core WebAssembly module, not a component"),
        "{err}"
    );
    assert!(err.contains("wasm-tools component new"), "{err}");
}

#[test]
fn a_component_of_no_bascule_world_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("other.wasm");
    std::fs::write(
        &file,
        wat::parse_str(
            "(component (core module $m (func (export \"f\"))) (core instance (instantiate $m)))",
        )
        .unwrap(),
    )
    .unwrap();
    let (ok, out, err) = inspect(&file, &[]);
    assert!(!ok);
    assert!(out.contains("world:     none"), "{out}");
    assert!(err.contains("exports no Bascule world"), "{err}");
}

#[test]
fn an_import_the_host_lacks_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // `log` renamed `lag`: an interface this host does not provide.
    let file = rewritten(dir.path(), b"bascule:plugin/log@", b"bascule:plugin/lag@");
    let (ok, _, err) = inspect(&file, &[]);
    assert!(!ok);
    assert!(
        err.contains("an import this host does not provide"),
        "{err}"
    );
    assert!(err.contains("bascule:plugin/lag@0.4.2"), "{err}");
}

#[test]
fn another_contract_line_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let file = rewritten(dir.path(), b"@0.4.2", b"@0.9.2");
    let (ok, out, err) = inspect(&file, &[]);
    assert!(!ok);
    assert!(out.contains("world:     balancer (0.9.2)"), "{out}");
    assert!(
        err.contains("built against bascule:plugin@0.9.2")
            && err.contains("speaks bascule:plugin@0.4.2 and loads bascule:plugin@0.4.x"),
        "{err}"
    );
    // A patch version of ours loads.
    let file = rewritten(dir.path(), b"@0.4.2", b"@0.4.1");
    let (ok, _, err) = inspect(&file, &[]);
    assert!(ok, "{err}");
}

/// `bascule plugin run` with `args`: success and stdout (stderr on
/// failure).
fn run(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bascule"))
        .args(["plugin", "run"])
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let text = if output.status.success() {
        &output.stdout
    } else {
        &output.stderr
    };
    (
        output.status.success(),
        String::from_utf8_lossy(text).into_owned(),
    )
}

/// `bascule plugin run PLUGIN --backends BACKENDS --requests REQUESTS`
/// and `extra`: a balancer run.
fn run_balancer(plugin: &Path, backends: &Path, requests: &Path, extra: &[&str]) -> (bool, String) {
    let args = [
        plugin.to_str().unwrap(),
        "--backends",
        backends.to_str().unwrap(),
        "--requests",
        requests.to_str().unwrap(),
    ];
    run(&[&args[..], extra].concat())
}

/// A backends file holding `backends` and a requests file of `count`
/// requests (`/r0`, `/r1`...), in `dir`.
fn run_inputs(dir: &Path, backends: &str, count: usize) -> (PathBuf, PathBuf) {
    let backends_file = dir.join("backends.toml");
    std::fs::write(&backends_file, backends).unwrap();
    let requests = dir.join("requests.jsonl");
    let lines: Vec<String> = (0..count)
        .map(|n| format!("{{\"path\": \"/r{n}\"}}"))
        .collect();
    std::fs::write(&requests, lines.join("\n")).unwrap();
    (backends_file, requests)
}

/// The backend each printed decision was served by, in order.
fn served(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|line| line.split("  -> ").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap().to_owned())
        .collect()
}

#[test]
fn a_balancer_run_prints_the_decisions_a_model_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let (backends, requests) = run_inputs(
        dir.path(),
        "[[backends]]\nname = \"a\"\nweight = 3\n\n[[backends]]\nname = \"b\"\nweight = 1\n\n[[backends]]\nname = \"c\"\nweight = 2\n",
        60,
    );

    // Round robin: each in turn, whatever the weights.
    let (ok, out) = run_balancer(&test_plugin("round-robin"), &backends, &requests, &[]);
    assert!(ok, "{out}");
    let expected: Vec<String> = (0..60).map(|n| ["a", "b", "c"][n % 3].to_owned()).collect();
    assert_eq!(served(&out), expected, "{out}");
    assert!(
        out.contains("   1  GET /r0  -> a  (candidates a, b, c)"),
        "{out}"
    );

    // Weighted: the printed distribution is what the decisions add up
    // to, and each backend's share is its weight's, to one request.
    let plugin = test_plugin("weighted-round-robin");
    let (ok, out) = run_balancer(&plugin, &backends, &requests, &[]);
    assert!(ok, "{out}");
    let decisions = served(&out);
    assert!(out.contains("distribution over 60 served:"), "{out}");
    for (name, weight) in [("a", 3), ("b", 1), ("c", 2)] {
        let counted = decisions.iter().filter(|d| *d == name).count();
        assert!(
            counted.abs_diff(60 * weight / 6) <= 1,
            "{name}: {counted} of 60\n{out}"
        );
        assert!(
            out.contains(&format!("  {name}  {counted}  (")),
            "{name}: {out}"
        );
    }
}

/// With `--rate`, requests overlap for their backends' latency: each
/// least-connections decision is checked against the in-flight counts a
/// model of the same arrivals computes from the printed decisions.
#[test]
fn with_a_rate_least_connections_sees_requests_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let (backends, requests) = run_inputs(
        dir.path(),
        "[[backends]]\nname = \"fast\"\nlatency = \"1ms\"\n\n[[backends]]\nname = \"slow\"\nlatency = \"20ms\"\n",
        400,
    );
    let plugin = test_plugin("least-connections");
    let run = |extra: &[&str]| run_balancer(&plugin, &backends, &requests, extra);

    // One after another nothing is ever in flight: ties, taken in turn.
    let (ok, out) = run(&[]);
    assert!(ok, "{out}");
    let decisions = served(&out);
    let slow = decisions.iter().filter(|d| *d == "slow").count();
    assert_eq!(slow, 200, "{out}");
    assert!(!out.contains("most in flight"), "{out}");

    // 2,000 a second: one arrival every 500 µs.
    let (ok, out) = run(&["--rate", "2000"]);
    assert!(ok, "{out}");
    let decisions = served(&out);
    assert_eq!(decisions.len(), 400, "{out}");
    let latency_us = |backend: &str| if backend == "fast" { 1_000 } else { 20_000 };
    let mut peaks = [0usize; 2];
    for (n, chosen) in decisions.iter().enumerate() {
        let now = n * 500;
        // In flight: earlier requests whose end is still to come.
        let active = |backend: &str| {
            decisions[..n]
                .iter()
                .enumerate()
                .filter(|(m, d)| *d == backend && m * 500 + latency_us(backend) > now)
                .count()
        };
        let (fast, slow) = (active("fast"), active("slow"));
        let (mine, other) = if chosen == "fast" {
            (fast, slow)
        } else {
            (slow, fast)
        };
        assert!(
            mine <= other,
            "request {n} went to {chosen} with {mine} in flight against {other}\n{out}"
        );
        let peak = &mut peaks[usize::from(chosen == "slow")];
        *peak = (*peak).max(mine + 1);
    }
    let slow = decisions.iter().filter(|d| *d == "slow").count();
    assert!(
        (20..200).contains(&slow),
        "the slow backend holds its requests 40 arrivals long: {slow} of 400\n{out}"
    );
    assert!(
        out.contains(&format!(
            "most in flight at once: fast {}, slow {}",
            peaks[0], peaks[1]
        )),
        "{peaks:?}\n{out}"
    );

    let (ok, err) = run(&["--rate", "0"]);
    assert!(!ok && err.contains("not a rate above 0"), "{err}");
}

/// `plugin run | head`: the reader going away ends the output quietly,
/// with no panic.
#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // Far more than a pipe holds (64 KiB), so the write meets the closed end.
    let (backends, requests) = run_inputs(dir.path(), "[[backends]]\nname = \"a\"\n", 5000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_bascule"))
        .args(["plugin", "run"])
        .arg(test_plugin("round-robin"))
        .arg("--backends")
        .arg(&backends)
        .arg("--requests")
        .arg(&requests)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn simulated_failures_move_requests_to_the_next_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let backends = dir.path().join("backends.toml");
    std::fs::write(
        &backends,
        "[[backends]]\nname = \"up\"\nlatency = \"2ms\"\n\n[[backends]]\nname = \"down\"\nfailure-rate = 1.0\n",
    )
    .unwrap();
    let requests = dir.path().join("requests.jsonl");
    std::fs::write(&requests, "{}\n{}\n{}\n{}\n").unwrap();
    let plugin = test_plugin("round-robin");
    let (ok, out) = run_balancer(&plugin, &backends, &requests, &["--bench"]);
    assert!(ok, "{out}");
    assert_eq!(served(&out), ["up", "up", "up", "up"], "{out}");
    assert_eq!(
        out.matches("down failed").count(),
        2,
        "round robin puts `down` first every other time: {out}"
    );
    assert!(
        out.contains("  up  4  (100.0%)") && out.contains("  down  0  (0.0%)"),
        "{out}"
    );
    let ns: f64 = out
        .lines()
        .find_map(|line| line.strip_prefix("select: "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(ns > 0.0, "{out}");
    let memory_kib: u64 = out
        .lines()
        .find_map(|line| line.split_once("instance memory ").map(|(_, kib)| kib))
        .and_then(|kib| kib.strip_suffix(" KiB"))
        .unwrap()
        .parse()
        .unwrap();
    // At least the one 64 KiB page every guest has.
    assert!(memory_kib >= 64, "{out}");
}

#[test]
fn a_filter_run_prints_its_edits_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let requests = dir.path().join("requests.jsonl");
    std::fs::write(
        &requests,
        "{\"path\": \"/x?q=1\", \"headers\": {\"x-trace\": \"t\"}}\n",
    )
    .unwrap();
    let plugin = test_plugin("test-filter").display().to_string();
    let requests = requests.to_str().unwrap();
    let (ok, out) = run(&[
        &plugin,
        "--requests",
        requests,
        "--options",
        r#"{"mode": "rewrite"}"#,
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("   1  GET /x?q=1  -> forward"), "{out}");
    assert!(out.contains("path /x?q=1 -> /rewritten/x"), "{out}");
    let (ok, out) = run(&[
        &plugin,
        "--requests",
        requests,
        "--options",
        r#"{"mode": "deny"}"#,
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("-> respond 403"), "{out}");
    assert!(out.contains("x-denied-by: test-filter"), "{out}");
}

#[test]
fn a_health_interpreter_run_prints_a_verdict_per_probe() {
    let dir = tempfile::tempdir().unwrap();
    let probes = dir.path().join("probes.jsonl");
    std::fs::write(
        &probes,
        "{\"status\": 200, \"latency-ms\": 3}\n{\"status\": 503}\n{\"error\": \"connection refused\"}\n",
    )
    .unwrap();
    let plugin = test_plugin("http-status").display().to_string();
    let (ok, out) = run(&[&plugin, "--probes", probes.to_str().unwrap()]);
    assert!(ok, "{out}");
    let verdicts: Vec<&str> = out
        .lines()
        .map(|line| {
            line.split("-> ")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(verdicts, ["healthy", "unhealthy", "unhealthy"], "{out}");
    assert!(out.contains("status 200, 3 ms"), "{out}");
}

#[test]
fn bad_inputs_name_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let backends = dir.path().join("backends.toml");
    std::fs::write(&backends, "[[backends]]\nname = \"a\"\n").unwrap();
    let requests = dir.path().join("requests.jsonl");
    std::fs::write(&requests, "{}\n{\"pth\": \"/\"}\n").unwrap();
    let plugin = test_plugin("round-robin");
    let (ok, err) = run_balancer(&plugin, &backends, &requests, &[]);
    assert!(!ok);
    assert!(
        err.contains("requests.jsonl:2:") && err.contains("pth"),
        "{err}"
    );
    let (ok, err) = run(&[
        plugin.to_str().unwrap(),
        "--requests",
        requests.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("--backends"), "{err}");

    // A request that parses as JSON but is no HTTP request is named by
    // its line in the file, comments and blank lines counted.
    std::fs::write(
        &requests,
        "# a comment\n\n{\"path\": \"/\"}\n{\"method\": \"GE T\"}\n",
    )
    .unwrap();
    let (ok, err) = run_balancer(&plugin, &backends, &requests, &[]);
    assert!(!ok);
    assert!(err.contains(&format!("{}:4:", requests.display())), "{err}");

    // An unknown protocol is refused by name, not run as HTTP.
    let (ok, err) = run_balancer(&plugin, &backends, &requests, &["--protocol", "quic"]);
    assert!(!ok && err.contains("quic") && err.contains("udp"), "{err}");
}

/// `bascule plugin new` for each language and kind: the project builds
/// with its own script, `plugin inspect` says it loads, and `plugin run`
/// takes it with the inputs it came with (for the languages other than
/// Rust, through the project's own `test.sh`). The toolchains are the
/// ones `make examples` installs.
#[test]
fn new_projects_build_and_run_for_every_language_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tools = std::env::var("HOME").map(|home| format!("{home}/.cache/bascule/tools/bin"));
    let path = format!(
        "{}:{}",
        tools.unwrap_or_default(),
        std::env::var("PATH").unwrap_or_default()
    );
    let threads: Vec<_> = ["rust", "c", "python", "js"]
        .into_iter()
        .map(|lang| {
            let (dir, checkout, path) = (dir.path().to_owned(), checkout.clone(), path.clone());
            std::thread::spawn(move || {
                for kind in ["balancer", "filter", "health"] {
                    new_project_builds_and_runs(&dir, &checkout, &path, lang, kind);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let refused = Command::new(env!("CARGO_BIN_EXE_bascule"))
        .args(["plugin", "new", "Bad Name", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let unknown = Command::new(env!("CARGO_BIN_EXE_bascule"))
        .args(["plugin", "new", "fine", "--lang", "cobol", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        !unknown.status.success() && err.contains("rust, c, python or js"),
        "{err}"
    );
}

/// One `plugin new` project, made in `dir`, built and run.
fn new_project_builds_and_runs(dir: &Path, checkout: &Path, path: &str, lang: &str, kind: &str) {
    let name = format!("my-{kind}-{lang}");
    let output = Command::new(env!("CARGO_BIN_EXE_bascule"))
        .args([
            "plugin", "new", &name, "--lang", lang, "--kind", kind, "--dir",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let project = dir.join(&name);
    let script = if lang == "rust" {
        "build.sh"
    } else {
        "test.sh"
    };
    let built = Command::new(project.join(script))
        .env("PATH", path)
        .env("BASCULE", env!("CARGO_BIN_EXE_bascule"))
        .env("RUST_LOG", "error")
        // Shared with `make examples`: Rust dependencies compiled once,
        // componentize-js installed once.
        .env("CARGO_TARGET_DIR", checkout.join("target/examples"))
        .env(
            "COMPONENTIZE_JS",
            checkout.join("examples/node_modules/.bin/componentize-js"),
        )
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&built.stdout);
    assert!(
        built.status.success(),
        "{name}: {out}{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let file = project.join(format!("{}.wasm", name.replace('-', "_")));
    let (ok, inspected, err) = inspect(&file, &[]);
    assert!(
        ok && inspected.contains("loads:     yes"),
        "{name}: {inspected}{err}"
    );
    let (run_args, expected): (&[&str], &str) = match kind {
        "balancer" => (
            &[
                "--backends",
                "backends.toml",
                "--requests",
                "requests.jsonl",
            ],
            "  a  1  (50.0%)",
        ),
        "filter" => (&["--requests", "requests.jsonl"], "-> respond 403"),
        _ => (&["--probes", "probes.jsonl"], "-> unhealthy (status 503)"),
    };
    let ran = Command::new(env!("CARGO_BIN_EXE_bascule"))
        .args(["plugin", "run"])
        .arg(&file)
        .args(run_args)
        .current_dir(&project)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success() && out.contains(expected),
        "{name}: {out}{}",
        String::from_utf8_lossy(&ran.stderr)
    );
}

/// A plugin built from source against the previous minor contract
/// (`plugins/test-contract-0-4-1`, with that release's WIT) is described
/// as such, and the proxy balances with it.
#[tokio::test]
async fn a_plugin_built_against_the_previous_minor_version_loads_and_serves() {
    let file = test_plugin("test-contract-0-4-1");
    let (ok, out, err) = inspect(&file, &[]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("world:     balancer (0.4.1)"), "{out}");
    // Its own names are all 0.4.1; only the host's line says 0.4.2.
    let names: Vec<&str> = out
        .lines()
        .filter(|line| line.starts_with("  bascule:plugin/"))
        .collect();
    assert!(
        !names.is_empty() && names.iter().all(|name| name.ends_with("@0.4.1")),
        "{out}"
    );
    let (b1, b2) = (
        RecordingBackend::start("b1").await,
        RecordingBackend::start("b2").await,
    );
    let config = single_pool_config(&file.display().to_string(), "", [b1.toml(), b2.toml()]);
    let bascule = Bascule::start_with(&config, &["--workers", "1"]);
    let mut bodies = Vec::new();
    for _ in 0..4 {
        bodies.push(bascule.get_root().await.body);
    }
    assert_eq!(bodies, ["b1", "b2", "b1", "b2"]);
}
