//! Runs every VTest script in `tests/vtc/` (scripted clients and backends,
//! see its README) against a fresh bascule each, and reports every script
//! that failed with its log.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

fn config(public: u16, secret: u16, admin: u16) -> String {
    let backend = |port: u16| format!("{{ address = \"127.0.0.1:{port}\" }}");
    three_route_config(backend(public), backend(secret), backend(admin), "", "")
}

fn scripts() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vtc");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "vtc"))
        .collect();
    scripts.sort();
    scripts
}

#[tokio::test]
async fn every_protocol_script_passes() {
    let scripts = scripts();
    assert!(scripts.len() >= 10, "scripts missing: {scripts:?}");
    let mut failed = Vec::new();
    for script in &scripts {
        let (public, secret, admin) = (
            released_port().await,
            released_port().await,
            released_port().await,
        );
        let bascule = Bascule::start_with(&config(public, secret, admin), &["--workers", "1"]);
        // Without `-q`, varnishtest prints a failing script's whole log.
        let output = Command::new("varnishtest")
            .args(["-t", "20"])
            .arg(format!("-Dproxy={}", bascule.addr("web")))
            .arg(format!("-Dpublic=127.0.0.1:{public}"))
            .arg(format!("-Dsecret=127.0.0.1:{secret}"))
            .arg(format!("-Dadmin=127.0.0.1:{admin}"))
            .arg(script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run varnishtest ({e}): install Debian's varnish"));
        if !output.status.success() {
            failed.push(format!(
                "{}:\n{}{}",
                script.display(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} scripts failed:\n{}",
        failed.len(),
        scripts.len(),
        failed.join("\n")
    );
}
