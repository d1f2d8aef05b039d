//! `bascule plugin inspect`: a valid plugin, a core module, a component
//! of no Bascule world, one with an import the host lacks and one built
//! against another contract line, each with its verdict and reason.

use std::path::Path;
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
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(out.contains(&format!("size:      {size} bytes")), "{out}");

    let (ok, out, _) = inspect(&test_plugin("test-filter"), &["--json"]);
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["world"], "header-filter");
    assert_eq!(json["contract"], "0.4.2");
    assert_eq!(json["loads"], true);
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
        err.contains("built against bascule:plugin@0.9.2") && err.contains("bascule:plugin@0.4.2"),
        "{err}"
    );
    // A patch version of ours loads.
    let file = rewritten(dir.path(), b"@0.4.2", b"@0.4.1");
    let (ok, _, err) = inspect(&file, &[]);
    assert!(ok, "{err}");
}
