//! `bascule plugin new`: a buildable plugin project, with a build script,
//! a README on how to build and load it, a test (native for Rust; for the
//! other languages `test.sh`, which builds and runs the plugin offline),
//! and the input files `bascule plugin run` takes, so that the first
//! thing an author does with it works.
//!
//! A Rust project depends on this checkout's guest SDK by path (the SDK
//! is not published), the path this binary was built from; the others
//! carry a copy of the WIT contract this binary loads.

use std::path::{Path, PathBuf};

mod templates;

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

/// The language a plugin is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Rust, with the guest SDK.
    Rust,
    /// C, with `wit-bindgen c`, clang and wasi-libc, made a component by
    /// `wasm-tools`.
    C,
    /// Python, with componentize-py.
    Python,
    /// JavaScript, with componentize-js.
    Js,
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

/// Sample inputs for `plugin run`.
const BACKENDS: &str = "[[backends]]\nname = \"a\"\nlatency = \"3ms\"\n\n[[backends]]\nname = \"b\"\nlatency = \"6ms\"\n";
const REQUESTS: &str =
    "{\"path\": \"/\"}\n{\"path\": \"/cart\", \"headers\": {\"x-block\": \"1\"}}\n";
const PROBES: &str = "{\"status\": 200, \"latency-ms\": 3}\n{\"status\": 503}\n{\"error\": \"connection refused\"}\n";

// === impl Kind ===

impl Kind {
    /// The WIT world a plugin of this kind implements.
    fn world(self) -> &'static str {
        match self {
            Kind::Balancer => "balancer",
            Kind::Filter => "header-filter",
            Kind::Health => "health-interpreter",
        }
    }

    /// The sample inputs, the `plugin run` arguments that take them, and a
    /// line of its output the starting code produces.
    fn inputs(
        self,
    ) -> (
        Vec<(&'static str, &'static str)>,
        &'static str,
        &'static str,
    ) {
        match self {
            Kind::Balancer => (
                vec![("backends.toml", BACKENDS), ("requests.jsonl", REQUESTS)],
                "--backends backends.toml --requests requests.jsonl",
                "  a  1  (50.0%)",
            ),
            Kind::Filter => (
                vec![("requests.jsonl", REQUESTS)],
                "--requests requests.jsonl",
                "-> respond 403",
            ),
            Kind::Health => (
                vec![("probes.jsonl", PROBES)],
                "--probes probes.jsonl",
                "-> unhealthy (status 503)",
            ),
        }
    }
}

// === impl Lang ===

impl Lang {
    /// `rust`, `c`, `python` or `js`.
    pub fn parse(name: &str) -> Option<Lang> {
        match name {
            "rust" => Some(Lang::Rust),
            "c" => Some(Lang::C),
            "python" | "py" => Some(Lang::Python),
            "js" | "javascript" => Some(Lang::Js),
            _ => None,
        }
    }

    /// How to build and test, for the README.
    fn how(self) -> &'static str {
        match self {
            Lang::Rust => {
                "Build: `./build.sh` (needs the `wasm32-wasip2` target). Test natively: `cargo test`."
            }
            Lang::C => {
                "Needs Debian's `clang-14`, `lld-14`, `wasi-libc` and `libclang-rt-14-dev-wasm32`, \
                 and `cargo install wit-bindgen-cli --version 0.63.0` and \
                 `cargo install wasm-tools --version 1.262.0`. Build: `./build.sh`. \
                 Test offline: `./test.sh`."
            }
            Lang::Python => {
                "Needs `pip install componentize-py==0.25.1`. Build: `./build.sh`. \
                 Test offline: `./test.sh`."
            }
            Lang::Js => {
                "Needs Node.js and npm (`./build.sh` installs componentize-js, pinned in \
                 `package.json`). Build: `./build.sh`. Test offline: `./test.sh`."
            }
        }
    }
}

/// Writes a new plugin project named `name`, in `lang`, of `kind` into
/// `parent/name`; returns its directory.
pub fn new_project(
    parent: &Path,
    name: &str,
    lang: Lang,
    kind: Kind,
) -> Result<PathBuf, ScaffoldError> {
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
    let (inputs, run_args, expect) = kind.inputs();
    let fill = |template: &str| {
        template
            .replace("{name}", name)
            .replace("{file}", &file)
            .replace("{sdk}", &sdk.display().to_string())
            .replace("{world}", kind.world())
            .replace("{world_c}", &kind.world().replace('-', "_"))
            .replace("{componentize_py}", templates::COMPONENTIZE_PY)
            .replace("{componentize_js}", templates::COMPONENTIZE_JS)
            .replace("{run_args}", run_args)
            .replace("{expect}", expect)
    };
    let try_it = format!("bascule plugin run {file}.wasm {run_args}");
    let readme = format!(
        "# {name}\n\n{}\n\nTry it without a proxy: `{try_it}`.\nLoad it: name `path/to/{file}.wasm` in the config \
         (a pool's `balancer`, a `[filters.NAME]` `plugin`, or a health check's `interpreter`); \
         a running proxy picks it up on reload.\n",
        lang.how()
    );
    let mut files: Vec<(String, String)> = templates::files(lang, kind)
        .into_iter()
        .map(|(path, template)| (fill(path), fill(template)))
        .collect();
    files.push(("README.md".to_owned(), readme));
    let ignored = match lang {
        Lang::Rust => format!("target/\n{file}.wasm\n"),
        Lang::C => format!("gen/\n{file}.wasm\n"),
        Lang::Python => format!("__pycache__/\n{file}.wasm\n"),
        Lang::Js => format!("node_modules/\npackage-lock.json\n{file}.wasm\n"),
    };
    files.push((".gitignore".to_owned(), ignored));
    if lang != Lang::Rust {
        files.push(("test.sh".to_owned(), fill(templates::OFFLINE_TEST)));
        files.extend(
            templates::WIT
                .iter()
                .map(|(path, text)| ((*path).to_owned(), (*text).to_owned())),
        );
    }
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
    make_executable(&dir.join("test.sh"));
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
