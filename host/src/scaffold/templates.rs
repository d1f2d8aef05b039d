//! The files `bascule plugin new` writes, per language and kind, as
//! templates with `{name}`, `{file}`, `{world}` and tool-version holes.

use super::{Kind, Lang};

/// The pinned versions the scaffolds name, as `make examples` installs
/// them.
pub const COMPONENTIZE_PY: &str = "0.25.1";
pub const COMPONENTIZE_JS: &str = "0.23.0";

/// The contract, copied into every non-Rust project (their bindings are
/// generated from it; Rust's come with the guest SDK).
pub const WIT: [(&str, &str); 4] = [
    ("wit/types.wit", include_str!("../../../wit/types.wit")),
    (
        "wit/balancer.wit",
        include_str!("../../../wit/balancer.wit"),
    ),
    (
        "wit/header-filter.wit",
        include_str!("../../../wit/header-filter.wit"),
    ),
    (
        "wit/health-interpreter.wit",
        include_str!("../../../wit/health-interpreter.wit"),
    ),
];

/// Builds and runs the plugin offline on its sample inputs.
pub const OFFLINE_TEST: &str = include_str!("offline-test.sh");

/// The project files of `lang` for `kind`: (path in the project,
/// template).
pub fn files(lang: Lang, kind: Kind) -> Vec<(&'static str, &'static str)> {
    match lang {
        Lang::Rust => vec![
            ("Cargo.toml", include_str!("rust-cargo.toml")),
            ("build.sh", include_str!("rust-build.sh")),
            (
                "src/lib.rs",
                match kind {
                    Kind::Balancer => include_str!("rust-balancer.rs"),
                    Kind::Filter => include_str!("rust-filter.rs"),
                    Kind::Health => include_str!("rust-health.rs"),
                },
            ),
        ],
        Lang::C => vec![
            ("build.sh", include_str!("c-build.sh")),
            (
                "{file}.c",
                match kind {
                    Kind::Balancer => include_str!("c-balancer.c"),
                    Kind::Filter => include_str!("c-filter.c"),
                    Kind::Health => include_str!("c-health.c"),
                },
            ),
        ],
        Lang::Python => vec![
            ("build.sh", include_str!("python-build.sh")),
            (
                "app.py",
                match kind {
                    Kind::Balancer => include_str!("python-balancer.py"),
                    Kind::Filter => include_str!("python-filter.py"),
                    Kind::Health => include_str!("python-health.py"),
                },
            ),
        ],
        Lang::Js => vec![
            ("build.sh", include_str!("js-build.sh")),
            ("package.json", include_str!("js-package.json")),
            (
                "app.js",
                match kind {
                    Kind::Balancer => include_str!("js-balancer.js"),
                    Kind::Filter => include_str!("js-filter.js"),
                    Kind::Health => include_str!("js-health.js"),
                },
            ),
        ],
    }
}
