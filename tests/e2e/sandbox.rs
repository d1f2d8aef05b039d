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
    let sandbox = format!("call-timeout = \"{call_timeout}\"\nmemory-limit-mib = 8");
    misbehaving_in(mode, pool_extra, &sandbox, backends)
}

/// [`misbehaving`] with the `[sandbox]` table's body given.
fn misbehaving_in(
    mode: &str,
    pool_extra: &str,
    sandbox: &str,
    backends: &[RecordingBackend],
) -> String {
    let plugin = test_plugin("test-misbehaving");
    let extra = format!(
        "{pool_extra}\n[pools.main.balancer-options]\nmode = \"{mode}\"\n\n\
         [sandbox]\n{sandbox}\n\n\
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
async fn memory_bomb_at_the_default_limits_is_reported_as_memory() {
    let backends = three_backends().await;
    let bascule = Bascule::start(&misbehaving_in("grow-memory", "", "", &backends));
    assert_eq!(bodies(&bascule, 3).await, ["b1", "b2", "b3"]);
    let memory = bascule
        .metric("bascule_plugin_failures_total", &["kind=\"memory\""])
        .await;
    let timeouts = bascule
        .exported("bascule_plugin_failures_total", &["kind=\"timeout\""])
        .await;
    assert_eq!((memory, timeouts), (3.0, None));
}

/// A guest that sleeps waits on a WASI pollable: the host traps the call
/// (plugins may not block a worker) instead of blocking, or panicking the
/// task serving the request, and the fallback serves it.
#[tokio::test]
async fn a_plugin_that_blocks_is_stopped_and_the_request_served() {
    let backends = three_backends().await;
    let bascule = Bascule::start(&misbehaving("sleep", "", "5ms", &backends));
    assert_eq!(bodies(&bascule, 2).await, ["b1", "b2"]);
    let traps = bascule
        .metric("bascule_plugin_failures_total", &["kind=\"trap\""])
        .await;
    assert_eq!(traps, 2.0);
}

/// stdout and stderr are open to a guest and discard what it writes: a
/// plugin that prints (a debugging `println!`) still balances.
#[tokio::test]
async fn a_plugin_that_prints_balances() {
    let backends = three_backends().await;
    // One worker, one instance: its round robin is exact.
    let config = misbehaving("print", "", "5ms", &backends);
    let bascule = Bascule::start_with(&config, &["--workers", "1"]);
    assert_eq!(bodies(&bascule, 4).await, ["b1", "b2", "b3", "b1"]);
    assert_eq!(
        bascule.exported("bascule_plugin_failures_total", &[]).await,
        None
    );
}

/// The call budget is CPU time: with both cores kept busy by spinning
/// threads, a well-behaved plugin whose thread waits for a core is never
/// charged for the wait, even at the smallest budget, and a fail-closed
/// pool answers every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_cpu_contention_no_well_behaved_plugin_is_charged() {
    let backends = three_backends().await;
    let config = single_pool_config(
        "builtin:round-robin",
        "on-plugin-failure = \"fail-closed\"\n\n\
         [sandbox]\ncall-timeout = \"1ms\"\n\n\
         [admin]\naddress = \"127.0.0.1:0\"\n",
        backends.iter().map(RecordingBackend::toml),
    );
    let bascule = Bascule::start_with(&config, &["--workers", "2"]);
    let spinning = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let spinners: Vec<_> = (0..4)
        .map(|_| {
            let spinning = std::sync::Arc::clone(&spinning);
            std::thread::spawn(move || {
                let mut n = 0u64;
                while spinning.load(std::sync::atomic::Ordering::Relaxed) {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            })
        })
        .collect();
    let addr = bascule.addr("web");
    let clients: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..250 {
                    let request = http::Request::get("/")
                        .header("host", "example.test")
                        .body(Default::default())
                        .unwrap();
                    statuses.push(send(addr, request).await.status);
                }
                statuses
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for client in clients {
        statuses.extend(client.await.unwrap());
    }
    spinning.store(false, std::sync::atomic::Ordering::Relaxed);
    for spinner in spinners {
        spinner.join().unwrap();
    }
    assert_eq!(statuses.len(), 2000);
    assert!(statuses.iter().all(|status| *status == 200));
    assert_eq!(
        bascule.exported("bascule_plugin_failures_total", &[]).await,
        None,
        "a well-behaved plugin was charged"
    );
    let calls = bascule
        .metric("bascule_plugin_calls_total", &["hook=\"select\""])
        .await;
    assert_eq!(calls, 2000.0);
}

/// The epoch ticker runs only while plugins are called: an idle proxy
/// with plugins loaded does not wake a thousand times a second.
#[tokio::test]
async fn an_idle_proxy_does_not_tick() {
    let backends = three_backends().await;
    let bascule = Bascule::start(&misbehaving("out-of-range", "", "5ms", &backends));
    assert_eq!(bodies(&bascule, 3).await, ["b1", "b2", "b3"]);
    // Calls ran, so the ticker ran; it parks a tenth of a second later.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let before = bascule.wakeups();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let after = bascule.wakeups();
    let total = |wakeups: &[(String, u64)]| wakeups.iter().map(|(_, n)| n).sum::<u64>();
    let epoch = |wakeups: &[(String, u64)]| {
        wakeups
            .iter()
            .find(|(name, _)| name == "bascule-epoch")
            .map(|(_, n)| *n)
            .expect("an epoch ticker thread")
    };
    assert!(
        epoch(&after) - epoch(&before) <= 2,
        "{before:?} -> {after:?}"
    );
    // Ticking would be 2,000 in two seconds; what is left is the
    // runtime's own timers.
    assert!(
        total(&after) - total(&before) < 100,
        "{before:?} -> {after:?}"
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
