//! Compiles the plugins in `../plugins` to `wasm32-wasip2` components and
//! writes `builtin_plugins.rs` into `OUT_DIR`, which embeds every plugin not
//! named `test-*` as a built-in (`builtin:<crate-name>`).
//!
//! Test plugins are built too but not embedded: their directory is exported
//! to the crate's tests as `BASCULE_TEST_PLUGIN_DIR`, so tests load them from
//! a path exactly as an operator loads their own plugin.
//!
//! The nested cargo shares one target directory per outer target dir, so
//! debug, release, test and bench builds of the host compile the plugins once.
//!
//! Fuzz builds (`cargo fuzz`, which sets `--cfg fuzzing`) embed no plugins:
//! they exercise the network parsers, and run on nightly toolchains that
//! may lack the wasm target.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const WASM_TARGET: &str = "wasm32-wasip2";
const TEST_PLUGIN_PREFIX: &str = "test-";

fn main() -> Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir
        .parent()
        .context("host crate has no parent directory")?;
    let plugins_dir = root.join("plugins");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let plugins = plugin_crates(&plugins_dir)?;
    watch_sources(root, &plugins_dir, &plugins);
    if std::env::var_os("CARGO_CFG_FUZZING").is_some() {
        return write_builtin_table(&out_dir, &out_dir, &[]);
    }

    let target_dir = shared_target_dir(&out_dir);
    build_plugins(&plugins_dir, &target_dir)?;

    let wasm_dir = target_dir.join(WASM_TARGET).join("release");
    write_builtin_table(&out_dir, &wasm_dir, &plugins)?;
    println!(
        "cargo:rustc-env=BASCULE_TEST_PLUGIN_DIR={}",
        wasm_dir.display()
    );
    Ok(())
}

/// The plugin crate names, from the directories of `plugins/` that hold a
/// `Cargo.toml`, sorted for a stable embedding order.
fn plugin_crates(plugins_dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(plugins_dir)
        .with_context(|| format!("reading {}", plugins_dir.display()))?
    {
        let path = entry?.path();
        if path.join("Cargo.toml").is_file()
            && let Some(name) = path.file_name().and_then(|n| n.to_str())
        {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn watch_sources(root: &Path, plugins_dir: &Path, plugins: &[String]) {
    let mut watched = vec![
        root.join("wit"),
        root.join("guest-sdk/src"),
        root.join("guest-sdk/Cargo.toml"),
        plugins_dir.join("Cargo.toml"),
        plugins_dir.join("Cargo.lock"),
    ];
    for name in plugins {
        watched.push(plugins_dir.join(name).join("src"));
        watched.push(plugins_dir.join(name).join("Cargo.toml"));
    }
    for path in watched {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// `<target>/wasm-plugins`, where `<target>` is the outer build's target
/// directory (`OUT_DIR` is `<target>/<profile>/build/<pkg>-<hash>/out`).
fn shared_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(4)
        .map(|target| target.join("wasm-plugins"))
        .unwrap_or_else(|| out_dir.join("wasm-plugins"))
}

fn build_plugins(plugins_dir: &Path, target_dir: &Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .current_dir(plugins_dir)
        .args(["build", "--release", "--workspace", "--target", WASM_TARGET])
        .arg("--target-dir")
        .arg(target_dir)
        // Flags meant for the host build must not leak into the guest build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_LLVM_COV")
        .status()
        .context("running cargo to build the plugins")?;
    if !status.success() {
        bail!(
            "building the plugins in {} failed; is the {WASM_TARGET} target installed? \
             run `rustup target add {WASM_TARGET}` (the Makefile's targets do it for you)",
            plugins_dir.display()
        );
    }
    Ok(())
}

fn write_builtin_table(out_dir: &Path, wasm_dir: &Path, plugins: &[String]) -> Result<()> {
    let mut table = String::from(
        "/// Built-in plugins embedded at build time: (name, component bytes).\n\
         pub const BUILTIN_PLUGINS: &[(&str, &[u8])] = &[\n",
    );
    for name in plugins
        .iter()
        .filter(|n| !n.starts_with(TEST_PLUGIN_PREFIX))
    {
        let wasm = wasm_dir.join(format!("{}.wasm", name.replace('-', "_")));
        if !wasm.is_file() {
            bail!("plugin {name} did not produce {}", wasm.display());
        }
        writeln!(
            table,
            "    ({name:?}, include_bytes!({:?})),",
            wasm.display()
        )?;
    }
    table.push_str("];\n");
    std::fs::write(out_dir.join("builtin_plugins.rs"), table)?;
    Ok(())
}
