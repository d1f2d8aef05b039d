//! Plugins that loop, hoard memory, trap or lie are stopped by the sandbox,
//! and the request is served by the pool's failure policy.

use crate::support::*;

async fn three_backends() -> Vec<RecordingBackend> {
    vec![
        RecordingBackend::start("b1").await,
        RecordingBackend::start("b2").await,
        RecordingBackend::start("b3").await,
    ]
}

/// A pool balanced by the misbehaving test plugin in `mode`.
/// Calls get `call_timeout`; memory is capped at 8 MiB. An admin listener
/// serves the metrics.
fn misbehaving(
    mode: &str,
    pool_extra: &str,
    call_timeout: &str,
    backends: &[RecordingBackend],
) -> String {
    let plugin = test_plugin("test-misbehaving");
    let extra = format!(
        "{pool_extra}\n[pools.main.balancer-options]\nmode = \"{mode}\"\n\n\
         [sandbox]\ncall-timeout = \"{call_timeout}\"\nmemory-limit-mib = 8\n\n\
         [admin]\naddress = \"127.0.0.1:0\"\n"
    );
    single_pool_config(
        &plugin.display().to_string(),
        &extra,
        backends.iter().map(RecordingBackend::toml),
    )
}

/// Sends `n` requests and returns the bodies.
async fn bodies(bascule: &Bascule, n: usize) -> Vec<String> {
    let mut bodies = Vec::new();
    for _ in 0..n {
        let reply = bascule.get_root().await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        bodies.push(reply.body);
    }
    bodies
}

#[tokio::test]
async fn looping_plugin_is_interrupted_and_round_robin_takes_over() {
    let backends = three_backends().await;
    let bascule = Bascule::start(&misbehaving("spin", "", "5ms", &backends));
    assert_eq!(
        bodies(&bascule, 6).await,
        ["b1", "b2", "b3", "b1", "b2", "b3"]
    );
    // Every call failed: at least five by timeout, after which the plugin
    // is suspended for a while and further requests skip it.
    let timeouts = bascule
        .metric("bascule_plugin_failures_total", &["kind=\"timeout\""])
        .await;
    let suspended = bascule
        .metric("bascule_plugin_failures_total", &["kind=\"suspended\""])
        .await;
    assert!(timeouts >= 5.0, "{timeouts} timeouts");
    assert_eq!(timeouts + suspended, 6.0);
}

#[tokio::test]
async fn memory_bomb_is_stopped_by_the_cap() {
    let backends = three_backends().await;
    let bascule = Bascule::start(&misbehaving("grow-memory", "", "1s", &backends));
    assert_eq!(bodies(&bascule, 3).await, ["b1", "b2", "b3"]);
    assert_eq!(
        bascule
            .metric("bascule_plugin_failures_total", &["kind=\"memory\""])
            .await,
        3.0
    );
}

#[tokio::test]
async fn out_of_range_index_is_rejected_by_the_host() {
    let backends = three_backends().await;
    let bascule = Bascule::start(&misbehaving("out-of-range", "", "5ms", &backends));
    assert_eq!(bodies(&bascule, 3).await, ["b1", "b2", "b3"]);
    assert_eq!(
        bascule
            .metric(
                "bascule_plugin_failures_total",
                &["kind=\"invalid-output\""]
            )
            .await,
        3.0
    );
}

#[tokio::test]
async fn trapped_instance_is_replaced() {
    let backends = three_backends().await;
    let bascule = Bascule::start(&misbehaving("trap", "", "5ms", &backends));
    // The trap is served by the fallback round robin (b1, next b2) ...
    assert_eq!(bodies(&bascule, 1).await, ["b1"]);
    // ... and a behaving request reaches a fresh instance, which picks
    // backend 0. A reused, trapped instance would fail again and the
    // fallback would answer b2.
    let request = http::Request::get("/")
        .header("host", "example.test")
        .header("x-behave", "yes")
        .body(Default::default())
        .unwrap();
    let reply = send(bascule.addr("web"), request).await;
    assert_eq!(reply.body, "b1");
    assert_eq!(
        bascule
            .metric("bascule_plugin_failures_total", &["kind=\"trap\""])
            .await,
        1.0
    );
    // One instance at load, one to replace the trapped one.
    assert_eq!(
        bascule
            .metric("bascule_plugin_instances_created_total", &[])
            .await,
        2.0
    );
}

#[tokio::test]
async fn fail_closed_pool_answers_503_when_its_plugin_fails() {
    let backends = three_backends().await;
    let bascule = Bascule::start(&misbehaving(
        "error",
        "on-plugin-failure = \"fail-closed\"",
        "5ms",
        &backends,
    ));
    let reply = bascule.get_root().await;
    assert_eq!(reply.status, 503);
    assert!(backends.iter().all(|b| b.seen().is_empty()));
    assert_eq!(
        bascule
            .metric("bascule_http_requests_total", &["class=\"5xx\""])
            .await,
        1.0
    );
}
