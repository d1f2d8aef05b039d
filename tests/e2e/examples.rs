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

/// A TCP listener over two real Redis servers, a master and its replica,
/// checked by the C `redis-role` interpreter (with `options`).
fn redis_config(first: &Redis, second: &Redis, options: &str) -> String {
    format!(
        r#"
[[listeners]]
name = "redis"
address = "127.0.0.1:0"
mode = "tcp"

  [[listeners.routes]]
  pool = "main"

[pools.main]
balancer = "builtin:round-robin"
backends = [{}, {}]

[pools.main.health]
interval = "100ms"
unhealthy-threshold = 1
healthy-threshold = 1
interpreter = "{}"
interpreter-options = {options}
{ADMIN}"#,
        backend_toml("r1", first.address),
        backend_toml("r2", second.address),
        example("redis-role/c/redis_role.wasm").display(),
    )
}

/// Whether `backend`'s last probe ended in `health` for `reason`.
async fn judged(bascule: &Bascule, backend: &str, health: &str, reason: &str) -> bool {
    let status = backend_status(bascule, backend).await;
    status["health"] == health && status["check"]["last-probe"]["reason"] == reason
}

#[tokio::test]
async fn the_c_redis_interpreter_sends_writes_to_the_master_through_a_failover() {
    let first = Redis::start(None).await;
    let second = Redis::start(Some(first.address)).await;
    let bascule = Bascule::start(&redis_config(&first, &second, "{}"));
    assert!(eventually(|| judged(&bascule, "r1", "healthy", "master")).await);
    assert!(
        eventually(|| judged(&bascule, "r2", "unhealthy", "replica, the master is wanted")).await
    );
    // Every write through the proxy lands on the master (a replica would
    // answer `-READONLY`).
    let proxy = bascule.addr("redis");
    for n in 0..6 {
        assert_eq!(
            redis_command(proxy, &format!("SET k{n} v{n}"))
                .await
                .as_deref(),
            Some("+OK")
        );
    }

    // Failover: the replica is promoted, the old master follows it.
    assert_eq!(
        second.command("REPLICAOF NO ONE").await.as_deref(),
        Some("+OK")
    );
    let follow = format!("REPLICAOF 127.0.0.1 {}", second.address.port());
    assert_eq!(first.command(&follow).await.as_deref(), Some("+OK"));
    assert!(eventually(|| judged(&bascule, "r2", "healthy", "master")).await);
    assert!(
        eventually(|| judged(&bascule, "r1", "unhealthy", "replica, the master is wanted")).await
    );
    for n in 0..6 {
        assert_eq!(
            redis_command(proxy, &format!("SET f{n} x"))
                .await
                .as_deref(),
            Some("+OK")
        );
    }
    assert_eq!(second.command("EXISTS f5").await.as_deref(), Some(":1"));
}

#[tokio::test]
async fn the_c_redis_interpreter_degrades_a_linked_replica_with_role_any() {
    let first = Redis::start(None).await;
    let second = Redis::start(Some(first.address)).await;
    let bascule = Bascule::start(&redis_config(&first, &second, "{ role = \"any\" }"));
    assert!(eventually(|| judged(&bascule, "r1", "healthy", "master")).await);
    // Degraded once the replication link is up: half its weight.
    assert!(eventually(|| judged(&bascule, "r2", "degraded", "replica, may lag its master")).await);
    assert_eq!(
        backend_status(&bascule, "r2").await["effective-weight"],
        0.5
    );
}

#[tokio::test]
async fn the_javascript_api_keys_filter_lets_known_keys_through_as_their_client() {
    let backend = RecordingBackend::start("app").await;
    let filter = example("api-keys/js/api_keys.wasm");
    let config = single_pool_config("builtin:round-robin", "", [backend.toml()]).replace(
        "  [[listeners.routes]]\n  pool = \"main\"",
        "  [[listeners.routes]]\n  pool = \"main\"\n  filters = [\"keys\"]",
    ) + &format!(
        "\n[filters.keys]\nplugin = \"{}\"\noptions = {{ keys = {{ \"k-alice-1\" = \"alice\", \"k-bob-2\" = \"bob\" }} }}\n",
        filter.display()
    );
    let bascule = Bascule::start(&config);
    let web = bascule.addr("web");
    let with_key = |key: Option<&'static str>| {
        let mut request = get("shop.test", "/orders");
        if let Some(key) = key {
            request
                .headers_mut()
                .insert("x-api-key", key.parse().unwrap());
        }
        send(web, request)
    };
    let none = with_key(None).await;
    assert_eq!(
        (none.status.as_u16(), none.body.as_str()),
        (401, "an API key is required\n")
    );
    assert_eq!(none.headers["www-authenticate"], "ApiKey");
    assert_eq!(with_key(Some("stolen")).await.status, 403);
    assert!(
        backend.seen().is_empty(),
        "refused requests never reach the backend"
    );

    for (key, client) in [("k-alice-1", "alice"), ("k-bob-2", "bob")] {
        assert_eq!(with_key(Some(key)).await.body, "app");
        let seen = backend.seen().pop().unwrap();
        assert_eq!(seen.headers["x-client"], client);
        assert!(
            seen.headers.get("x-api-key").is_none(),
            "the key is not passed on"
        );
    }
}
