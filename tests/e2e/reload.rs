//! SIGHUP reloads the config file: new routes, pools, plugins and listeners
//! take effect; a bad config is reported and the running one keeps serving.

use crate::support::*;

async fn bodies(bascule: &Bascule, listener: &str, n: usize) -> Vec<String> {
    let mut bodies = Vec::new();
    for _ in 0..n {
        let reply = send(bascule.addr(listener), get("example.test", "/")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        bodies.push(reply.body);
    }
    bodies
}

/// The default runtime (a worker per core). Round robin is exact per
/// worker, and each worker's instance starts its own rotation, so here the
/// pair is only checked to come from the pool; the one-worker run below
/// checks the exact rotation.
#[tokio::test]
async fn reload_applies_new_backends_plugins_and_listeners() {
    reload_applies_everything(&[]).await;
}

/// One worker runs a current-thread runtime: the new plan (a plugin to
/// compile) is built off that thread and the reload completes the same way.
#[tokio::test]
async fn reload_applies_everything_on_a_single_worker() {
    reload_applies_everything(&["--workers", "1"]).await;
}

async fn reload_applies_everything(options: &[&str]) {
    let b1 = RecordingBackend::start("b1").await;
    let b2 = RecordingBackend::start("b2").await;
    let b3 = RecordingBackend::start("b3").await;
    let first = single_pool_config("builtin:round-robin", "", [b1.toml(), b2.toml()]);
    let mut bascule = Bascule::start_with(&first, options);
    let web = bascule.addr("web");
    let exact = options == ["--workers", "1"];
    let check_rotation = |served: Vec<String>| {
        if exact {
            assert_eq!(served, ["b1", "b2"]);
        } else {
            assert!(served.iter().all(|b| b == "b1" || b == "b2"), "{served:?}");
        }
    };
    check_rotation(bodies(&bascule, "web", 2).await);

    let plugin = test_plugin("test-pick-last").display().to_string();
    let second = single_pool_config(&plugin, "", [b1.toml(), b2.toml(), b3.toml()])
        + "\n[[listeners]]\nname = \"extra\"\naddress = \"127.0.0.1:0\"\n\n  [[listeners.routes]]\n  pool = \"main\"\n";
    let printed = bascule.reload(&second);
    assert!(printed.contains("bascule: reloaded"), "{printed}");
    assert_eq!(
        bascule.addr("web"),
        web,
        "an unchanged listener keeps its socket"
    );
    assert_eq!(bodies(&bascule, "web", 2).await, ["b3", "b3"]);
    assert_eq!(bodies(&bascule, "extra", 1).await, ["b3"]);

    // Removing the extra listener stops it accepting.
    let extra = bascule.addr("extra");
    let printed = bascule.reload(&first);
    assert!(printed.contains("bascule: reloaded"), "{printed}");
    assert!(
        eventually_refused(extra).await,
        "removed listener still accepts"
    );
    check_rotation(bodies(&bascule, "web", 2).await);
}

#[tokio::test]
async fn bad_reload_is_reported_and_the_running_config_keeps_serving() {
    let b1 = RecordingBackend::start("b1").await;
    let b2 = RecordingBackend::start("b2").await;
    let good = single_pool_config("builtin:round-robin", "", [b1.toml(), b2.toml()]);
    // One worker: the rotation checked below is exact per worker.
    let mut bascule = Bascule::start_with(&good, &["--workers", "1"]);
    assert_eq!(bodies(&bascule, "web", 1).await, ["b1"]);

    let typo = good.replace("balancer =", "balancr =");
    let printed = bascule.reload(&typo);
    assert!(
        printed.contains("bascule.toml:10:1: pools.main.balancr: unknown field `balancr`"),
        "{printed}"
    );
    assert!(
        printed.contains("bascule: reload rejected, still serving the previous config"),
        "{printed}"
    );
    assert_eq!(bodies(&bascule, "web", 2).await, ["b2", "b1"]);

    let rejected = format!("{good}\n[pools.main.balancer-options]\nseed = 1\n");
    let printed = bascule.reload(&rejected);
    assert!(
        printed.contains(
            "pools.main.balancer-options: plugin builtin:round-robin rejected its options"
        ),
        "{printed}"
    );
    assert_eq!(bodies(&bascule, "web", 2).await, ["b2", "b1"]);
}

/// `[reload] watch`: a plugin replaced on disk is reloaded without a
/// signal; a half-written one is refused and the running config stays.
#[tokio::test]
async fn a_watched_plugin_that_changes_on_disk_is_reloaded() {
    let (b1, b2) = (
        RecordingBackend::start("b1").await,
        RecordingBackend::start("b2").await,
    );
    let dir = tempfile::tempdir().unwrap();
    let picker = dir.path().join("picker.wasm");
    std::fs::copy(test_plugin("test-pick-last"), &picker).unwrap();
    let config = single_pool_config(
        &picker.display().to_string(),
        "\n[reload]\nwatch = true\ndebounce = \"100ms\"\n\n[admin]\naddress = \"127.0.0.1:0\"\n",
        [b1.toml(), b2.toml()],
    );
    let bascule = Bascule::start_with(&config, &["--workers", "1"]);
    assert_eq!(bodies(&bascule, "web", 4).await, ["b2"; 4]);

    // Half a component, as a copy caught mid-write: refused, still serving.
    let round_robin = std::fs::read(test_plugin("round-robin")).unwrap();
    std::fs::write(&picker, &round_robin[..round_robin.len() / 2]).unwrap();
    let refused = eventually(|| async {
        bascule
            .metric("bascule_config_reloads_total", &["result=\"invalid\""])
            .await
            + bascule
                .metric("bascule_config_reloads_total", &["result=\"failed\""])
                .await
            >= 1.0
    })
    .await;
    assert!(refused, "the half-written plugin was not tried");
    assert_eq!(bascule.metric("bascule_config_generation", &[]).await, 1.0);
    assert_eq!(bodies(&bascule, "web", 2).await, ["b2"; 2]);

    // The whole file, renamed into place as deploy tools do: reloaded.
    let staged = dir.path().join("picker.wasm.new");
    std::fs::write(&staged, &round_robin).unwrap();
    std::fs::rename(&staged, &picker).unwrap();
    let reloaded =
        eventually(|| async { bascule.metric("bascule_config_generation", &[]).await == 2.0 })
            .await;
    assert!(reloaded, "the replaced plugin was not reloaded");
    let mut seen = bodies(&bascule, "web", 4).await;
    seen.sort();
    assert_eq!(seen, ["b1", "b1", "b2", "b2"]);
    assert_eq!(
        bascule
            .metric("bascule_config_reloads_total", &["result=\"ok\""])
            .await,
        1.0
    );
}
