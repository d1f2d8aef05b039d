//! Which backend gets each request, through the real plugins.

use crate::support::*;

async fn three_backends() -> Vec<RecordingBackend> {
    vec![
        RecordingBackend::start("b1").await,
        RecordingBackend::start("b2").await,
        RecordingBackend::start("b3").await,
    ]
}

#[tokio::test]
async fn round_robin_visits_backends_in_exact_order() {
    let backends = three_backends().await;
    let config = single_pool_config(
        "builtin:round-robin",
        "",
        backends.iter().map(RecordingBackend::toml),
    );
    // The rotation is exact per worker thread: one worker.
    let bascule = Bascule::start_with(&config, &["--workers", "1"]);
    let mut order = Vec::new();
    for _ in 0..9 {
        let reply = bascule.get_root().await;
        assert_eq!(reply.status, 200);
        order.push(reply.body);
    }
    assert_eq!(
        order,
        ["b1", "b2", "b3", "b1", "b2", "b3", "b1", "b2", "b3"]
    );
    for backend in &backends {
        assert_eq!(
            backend.seen().len(),
            3,
            "{} saw the wrong number of requests",
            backend.name
        );
    }
}

#[tokio::test]
async fn user_plugin_from_a_path_changes_the_distribution() {
    let backends = three_backends().await;
    let plugin = test_plugin("test-pick-last");
    let config = single_pool_config(
        &plugin.display().to_string(),
        "",
        backends.iter().map(RecordingBackend::toml),
    );
    let bascule = Bascule::start(&config);
    for _ in 0..6 {
        let reply = bascule.get_root().await;
        assert_eq!(reply.body, "b3");
    }
    assert_eq!(backends[0].seen().len(), 0);
    assert_eq!(backends[1].seen().len(), 0);
    assert_eq!(backends[2].seen().len(), 6);
}

#[tokio::test]
async fn connect_failure_falls_through_to_the_next_candidate() {
    let live = RecordingBackend::start("live").await;
    let dead = closed_port().await;
    let backends = [backend_toml("dead", dead.address), live.toml()];
    let bascule = Bascule::start(&single_pool_config("builtin:round-robin", "", backends));
    for _ in 0..4 {
        let reply = bascule.get_root().await;
        assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "live"));
    }
    assert_eq!(live.seen().len(), 4);
}

#[tokio::test]
async fn native_reference_balancer_is_selectable_for_benchmarks() {
    let backends = three_backends().await;
    let config = single_pool_config(
        "native:round-robin",
        "",
        backends.iter().map(RecordingBackend::toml),
    );
    let bascule = Bascule::start(&config);
    let mut order = Vec::new();
    for _ in 0..6 {
        order.push(
            send(bascule.addr("web"), get("example.test", "/"))
                .await
                .body,
        );
    }
    assert_eq!(order, ["b1", "b2", "b3", "b1", "b2", "b3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_on_several_workers_are_spread_evenly() {
    let backends = three_backends().await;
    let config = single_pool_config(
        "builtin:round-robin",
        "",
        backends.iter().map(RecordingBackend::toml),
    );
    let bascule = Bascule::start_with(&config, &["--workers", "2"]);
    let address = bascule.addr("web");
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(tokio::spawn(async move {
            let mut served = Vec::new();
            for _ in 0..15 {
                let reply = send(address, get("app.test", "/")).await;
                assert_eq!(reply.status, 200, "{}", reply.body);
                served.push(reply.body);
            }
            served
        }));
    }
    let mut total = 0;
    for client in clients {
        total += client.await.unwrap().len();
    }
    assert_eq!(total, 120);
    for backend in &backends {
        let share = backend.seen().len();
        // Exact per instance; with several instances in use at once the
        // rotations interleave, but no backend is starved or flooded.
        assert!(
            (25..=55).contains(&share),
            "{} got {share} of 120",
            backend.name
        );
    }
}
