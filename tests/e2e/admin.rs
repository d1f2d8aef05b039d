//! The admin listener: `/status` shows the running plan with live stats,
//! `/healthz` answers, unknown paths are 404.

use serde_json::Value;

use crate::support::*;

const ADMIN: &str = "\n[admin]\naddress = \"127.0.0.1:0\"\n";

async fn status(bascule: &Bascule) -> Value {
    let reply = send(bascule.addr("admin"), get("admin", "/status")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/json");
    serde_json::from_str(&reply.body).unwrap()
}

#[tokio::test]
async fn status_shows_the_plan_with_live_stats() {
    let b1 = RecordingBackend::start("b1").await;
    let b2 = RecordingBackend::start("b2").await;
    let config = single_pool_config("builtin:round-robin", ADMIN, [b1.toml(), b2.toml()]);
    let mut bascule = Bascule::start(&config);
    let web = bascule.addr("web");
    for _ in 0..3 {
        assert_eq!(send(web, get("example.test", "/")).await.status, 200);
    }

    let status = status(&bascule).await;
    assert_eq!(status["generation"], 1);
    assert_eq!(status["listeners"][0]["name"], "web");
    assert_eq!(status["listeners"][0]["routes"][0]["pool"], "main");
    assert_eq!(status["listeners"][0]["routes"][0]["path-prefix"], "/");
    let pool = &status["pools"][0];
    assert_eq!(pool["name"], "main");
    assert_eq!(pool["balancer"], "builtin:round-robin");
    assert_eq!(pool["on-plugin-failure"], "round-robin");
    let backends = pool["backends"].as_array().unwrap();
    let ids: Vec<&str> = backends.iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["b1", "b2"]);
    for backend in backends {
        assert_eq!(backend["health"], "healthy");
        assert_eq!(backend["active"], 0);
        assert!(
            backend["ewma-latency-us"].as_u64().unwrap() > 0,
            "{backend}"
        );
    }

    // A reload bumps the generation; the persisting backend keeps its stats.
    let printed = bascule.reload(&single_pool_config(
        "builtin:round-robin",
        ADMIN,
        [b1.toml()],
    ));
    assert!(printed.contains("bascule: reloaded"), "{printed}");
    let status = self::status(&bascule).await;
    assert_eq!(status["generation"], 2);
    let backend = &status["pools"][0]["backends"][0];
    assert_eq!(backend["id"], "b1");
    assert!(
        backend["ewma-latency-us"].as_u64().unwrap() > 0,
        "stats lost on reload: {backend}"
    );

    assert_eq!(
        send(bascule.addr("admin"), get("admin", "/healthz"))
            .await
            .body,
        "ok\n"
    );
    assert_eq!(
        send(bascule.addr("admin"), get("admin", "/nope"))
            .await
            .status,
        404
    );
}
