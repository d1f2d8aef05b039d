//! `bascule plugin new`: a buildable plugin project, with a build script,
//! a README line on how to build and load it, a native unit test, and the
//! input files `bascule plugin run` takes, so that the first thing an
//! author does with it works.
//!
//! Rust only, for now: the project depends on this checkout's guest SDK
//! by path (the SDK is not published), the path this binary was built
//! from.

use std::path::{Path, PathBuf};

/// What kind of plugin to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A balancer (`balancer` world).
    Balancer,
    /// A header filter.
    Filter,
    /// A health interpreter.
    Health,
}

/// Why a project could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name is not usable as a crate and file name.
    #[error("`{0}` is not a plugin name: use a-z, 0-9 and -, starting with a letter")]
    Name(String),
    /// The directory exists already.
    #[error("{} exists already", .0.display())]
    Exists(PathBuf),
    /// Writing failed.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

const CARGO_TOML: &str = include_str!("scaffold/rust-cargo.toml");
const BUILD_SH: &str = include_str!("scaffold/rust-build.sh");
const BALANCER: &str = include_str!("scaffold/rust-balancer.rs");
const FILTER: &str = include_str!("scaffold/rust-filter.rs");
const HEALTH: &str = include_str!("scaffold/rust-health.rs");

/// Sample inputs for `plugin run`.
const BACKENDS: &str = "[[backends]]\nname = \"a\"\nlatency = \"3ms\"\n\n[[backends]]\nname = \"b\"\nlatency = \"6ms\"\n";
const REQUESTS: &str =
    "{\"path\": \"/\"}\n{\"path\": \"/cart\", \"headers\": {\"x-block\": \"1\"}}\n";
const PROBES: &str = "{\"status\": 200, \"latency-ms\": 3}\n{\"status\": 503}\n{\"error\": \"connection refused\"}\n";

/// Writes a new Rust plugin project named `name` of `kind` into
/// `parent/name`; returns its directory.
pub fn new_rust(parent: &Path, name: &str, kind: Kind) -> Result<PathBuf, ScaffoldError> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.len() <= 64;
    if !valid {
        return Err(ScaffoldError::Name(name.to_owned()));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    let file = name.replace('-', "_");
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
    let sdk = sdk.canonicalize().unwrap_or(sdk);
    let fill = |template: &str| {
        template
            .replace("{name}", name)
            .replace("{file}", &file)
            .replace("{sdk}", &sdk.display().to_string())
    };
    let (source, inputs, try_it): (&str, Vec<(&str, &str)>, String) = match kind {
        Kind::Balancer => (
            BALANCER,
            vec![("backends.toml", BACKENDS), ("requests.jsonl", REQUESTS)],
            format!(
                "bascule plugin run {file}.wasm --backends backends.toml --requests requests.jsonl"
            ),
        ),
        Kind::Filter => (
            FILTER,
            vec![("requests.jsonl", REQUESTS)],
            format!("bascule plugin run {file}.wasm --requests requests.jsonl"),
        ),
        Kind::Health => (
            HEALTH,
            vec![("probes.jsonl", PROBES)],
            format!("bascule plugin run {file}.wasm --probes probes.jsonl"),
        ),
    };
    let readme = format!(
        "# {name}\n\nBuild: `./build.sh` (leaves `{file}.wasm` here). Test natively: `cargo test`.\n\
         Try it without a proxy: `{try_it}`.\nLoad it: name `path/to/{file}.wasm` in the config \
         (a pool's `balancer`, a `[filters.NAME]` `plugin`, or a health check's `interpreter`); \
         a running proxy picks it up on reload.\n"
    );
    let mut files: Vec<(String, String)> = vec![
        ("Cargo.toml".to_owned(), fill(CARGO_TOML)),
        ("build.sh".to_owned(), fill(BUILD_SH)),
        ("src/lib.rs".to_owned(), fill(source)),
        ("README.md".to_owned(), readme),
        (".gitignore".to_owned(), format!("target/\n{file}.wasm\n")),
    ];
    files.extend(
        inputs
            .into_iter()
            .map(|(path, text)| (path.to_owned(), text.to_owned())),
    );
    for (relative, text) in files {
        let path = dir.join(relative);
        let write = |path: &Path| -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, &text)
        };
        write(&path).map_err(|source| ScaffoldError::Write {
            path: path.clone(),
            source,
        })?;
    }
    make_executable(&dir.join("build.sh"));
    Ok(dir)
}

/// `chmod +x`; a failure leaves `sh build.sh` working.
fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(metadata) = std::fs::metadata(path) {
        let mut permissions = metadata.permissions();
        permissions.set_mode(permissions.mode() | 0o111);
        let _ = std::fs::set_permissions(path, permissions);
    }
}
