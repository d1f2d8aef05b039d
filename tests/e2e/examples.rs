//! The example plugins of `examples/` (built by `make examples`, which
//! `make test` runs first) through the real proxy: each canary router
//! sends canary requests to the canary backend and no other request there.

use std::path::{Path, PathBuf};

use crate::support::*;

/// An example's built component; `make examples` builds them.
fn example(path: &str) -> PathBuf {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(path);
    assert!(
        file.exists(),
        "{} is missing: run `make examples` (make test does)",
        file.display()
    );
    file
}

/// The canary router in `plugin` behind a proxy over two stable backends
/// and a canary: canary requests (header or cookie) reach only the
/// canary, the others only the stable ones, in turn.
async fn routes_canaries(plugin: &Path) {
    let (s1, canary, s2) = (
        RecordingBackend::start("s1").await,
        RecordingBackend::start("canary").await,
        RecordingBackend::start("s2").await,
    );
    let canary_toml = format!(
        "{{ name = \"canary\", address = \"{}\", metadata = {{ track = \"canary\" }} }}",
        canary.address
    );
    let config = single_pool_config(
        &plugin.display().to_string(),
        "",
        [s1.toml(), canary_toml, s2.toml()],
    );
    let bascule = Bascule::start_with(&config, &["--workers", "1"]);
    let web = bascule.addr("web");
    let ask = |header: Option<(&'static str, &'static str)>| {
        let mut request = get("example.test", "/");
        if let Some((name, value)) = header {
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        send(web, request)
    };
    for _ in 0..10 {
        assert_eq!(ask(Some(("x-canary", "1"))).await.body, "canary");
        assert_eq!(ask(Some(("cookie", "canary=1"))).await.body, "canary");
    }
    let mut stable = Vec::new();
    for _ in 0..10 {
        stable.push(ask(None).await.body);
        stable.push(ask(Some(("x-canary", "0"))).await.body);
    }
    assert!(stable.iter().all(|b| b == "s1" || b == "s2"), "{stable:?}");
    assert_eq!(
        stable.iter().filter(|b| *b == "s1").count(),
        10,
        "round robin: {stable:?}"
    );
    assert_eq!(canary.seen().len(), 20);
}

#[tokio::test]
async fn the_rust_canary_router_routes_canaries() {
    routes_canaries(&example("canary-router/rust/canary_router.wasm")).await;
}

#[tokio::test]
async fn the_python_canary_router_routes_canaries() {
    routes_canaries(&example("canary-router/python/canary_router.wasm")).await;
}

#[tokio::test]
async fn the_c_canary_router_routes_canaries() {
    routes_canaries(&example("canary-router/c/canary_router.wasm")).await;
}

#[tokio::test]
async fn the_javascript_canary_router_routes_canaries() {
    routes_canaries(&example("canary-router/js/canary_router.wasm")).await;
}
