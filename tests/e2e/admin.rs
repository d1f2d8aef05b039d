//! The admin listener: `/status` shows the running plan with live stats,
//! `/healthz` answers, unknown paths are 404; `/metrics` carries the
//! build, the config generation and reloads, and passes `promtool`.

use serde_json::Value;

use crate::support::*;

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

#[tokio::test]
async fn metrics_show_the_build_the_process_the_config_generation_and_reloads() {
    let backend = RecordingBackend::start("b1").await;
    let config = single_pool_config("builtin:round-robin", ADMIN, [backend.toml()]);
    let mut bascule = Bascule::start(&config);
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert_eq!(bascule.metric("bascule_build_info", &[&version]).await, 1.0);
    assert_eq!(bascule.metric("bascule_config_generation", &[]).await, 1.0);
    // The process, as Prometheus clients report it.
    let rss = bascule.metric("process_resident_memory_bytes", &[]).await;
    assert!(rss > 1_000_000.0 && rss < 4e9, "RSS {rss}");
    assert!(bascule.metric("process_open_fds", &[]).await >= 3.0);
    assert!(
        bascule
            .exported("process_cpu_seconds_total", &[])
            .await
            .is_some()
    );
    let started = bascule.metric("process_start_time_seconds", &[]).await;
    let loaded = bascule
        .metric("bascule_config_last_reload_timestamp_seconds", &[])
        .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        loaded > now - 60.0 && loaded <= now,
        "loaded at {loaded}, now {now}"
    );
    assert!(
        started > now - 120.0 && started <= loaded + 1.0,
        "started at {started}"
    );
    for result in ["ok", "invalid", "failed"] {
        let label = format!("result=\"{result}\"");
        assert_eq!(
            bascule
                .exported("bascule_config_reloads_total", &[&label])
                .await,
            Some(0.0),
            "{result} is exported from the start"
        );
    }

    assert!(bascule.reload(&config).contains("bascule: reloaded"));
    let broken = bascule.reload("[[listeners]]\nname = 1\n");
    assert!(broken.contains("reload rejected"), "{broken}");
    assert_eq!(bascule.metric("bascule_config_generation", &[]).await, 2.0);
    assert_eq!(
        bascule
            .metric("bascule_config_reloads_total", &["result=\"ok\""])
            .await,
        1.0
    );
    assert_eq!(
        bascule
            .metric("bascule_config_reloads_total", &["result=\"invalid\""])
            .await,
        1.0
    );
}

/// `promtool check metrics` (the Prometheus project's own linter, Debian
/// `prometheus`) accepts a real scrape taken after traffic of every kind
/// the test suite's configs make cheap: HTTP requests, a 404, a reload.
#[tokio::test]
async fn a_real_scrape_passes_promtool() {
    let backend = RecordingBackend::start("b1").await;
    let config = single_pool_config("builtin:round-robin", ADMIN, [backend.toml()]);
    let mut bascule = Bascule::start(&config);
    for path in ["/", "/a", "/b"] {
        assert_eq!(
            send(bascule.addr("web"), get("example.test", path))
                .await
                .status,
            200
        );
    }
    assert!(bascule.reload(&config).contains("bascule: reloaded"));
    promtool_passes(&bascule).await;
}

/// Runs `promtool check metrics` on a scrape of `bascule`.
async fn promtool_passes(bascule: &Bascule) {
    let scrape = send(bascule.addr("admin"), get("admin", "/metrics")).await;
    assert_eq!(scrape.status, 200);
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian `prometheus`, installed by `make test`)");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.body.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool: {}{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        scrape.body
    );
}

/// A filter's own counter, gauge and histogram appear with their labels;
/// past `max-metric-series` new series are dropped and counted; the
/// scrape still passes promtool; a built-in reports its own.
#[tokio::test]
async fn plugin_defined_metrics_appear_within_their_series_limit() {
    let backend = RecordingBackend::start("b1").await;
    let plugin = test_plugin("test-filter").display().to_string();
    let config = single_pool_config(
        "builtin:sticky-cookie",
        &format!(
            "{ADMIN}\n[sandbox]\nmax-metric-series = 5\n\n[filters.count]\nplugin = \"{plugin}\"\noptions = {{ mode = \"count\" }}\n"
        ),
        [backend.toml()],
    )
    .replacen("  pool = \"main\"", "  pool = \"main\"\n  filters = [\"count\"]", 1);
    let bascule = Bascule::start_with(&config, &["--workers", "1"]);
    // The gauge and the histogram hold two series: three paths fit.
    for path in ["/a", "/a", "/b", "/c", "/d", "/e", "/e"] {
        assert_eq!(
            send(bascule.addr("web"), get("example.test", path))
                .await
                .status,
            200
        );
    }
    let labels = |path: &'static str| [format!("path=\"{path}\""), "filter=\"count\"".to_owned()];
    for (path, count) in [("/a", 2.0), ("/b", 1.0), ("/c", 1.0)] {
        let [path_label, filter] = labels(path);
        let value = bascule
            .exported(
                "bascule_plugin_test_filter_paths_total",
                &[&path_label, &filter, &format!("plugin=\"{plugin}\"")],
            )
            .await;
        assert_eq!(value, Some(count), "{path}");
    }
    for path in ["/d", "/e"] {
        let [path_label, _] = labels(path);
        assert_eq!(
            bascule
                .exported("bascule_plugin_test_filter_paths_total", &[&path_label])
                .await,
            None,
            "{path} is past the limit"
        );
    }
    // /d and /e were refused a series once each (the plugin keeps the
    // handle it was given, whose updates go nowhere).
    assert_eq!(
        bascule
            .metric(
                "bascule_plugin_metric_series_dropped_total",
                &[&format!("plugin=\"{plugin}\"")]
            )
            .await,
        2.0
    );
    assert_eq!(
        bascule
            .metric(
                "bascule_plugin_test_filter_requests_seen",
                &["filter=\"count\""]
            )
            .await,
        7.0
    );
    assert_eq!(
        bascule
            .metric("bascule_plugin_test_filter_path_length_count", &[])
            .await,
        7.0
    );
    assert_eq!(
        bascule
            .metric(
                "bascule_plugin_test_filter_path_length_bucket",
                &["le=\"1\""]
            )
            .await,
        0.0
    );
    assert_eq!(
        bascule
            .metric(
                "bascule_plugin_test_filter_path_length_bucket",
                &["le=\"4\""]
            )
            .await,
        7.0
    );
    // The sticky cookie's own: seven requests without a cookie.
    assert_eq!(
        bascule
            .metric(
                "bascule_plugin_sticky_cookie_lookups_total",
                &["pool=\"main\"", "result=\"miss\""]
            )
            .await,
        7.0
    );
    promtool_passes(&bascule).await;

    // `/status` names the build that runs: the file's SHA-256.
    let status = status(&bascule).await;
    let filter = &status["listeners"][0]["routes"][0]["filters"][0];
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(std::fs::read(&plugin).unwrap());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    assert_eq!(filter["sha256"], hex.as_str());
    assert_eq!(filter["failures"], 0);
}

#[tokio::test]
async fn backend_responses_and_response_times_are_counted_per_backend() {
    let b1 = RecordingBackend::start("b1").await;
    let b2 = RecordingBackend::start("b2").await;
    let config = single_pool_config("builtin:round-robin", ADMIN, [b1.toml(), b2.toml()]);
    let bascule = Bascule::start(&config);
    for _ in 0..10 {
        assert_eq!(
            send(bascule.addr("web"), get("example.test", "/"))
                .await
                .status,
            200
        );
    }
    // Each backend's count is exactly what it received (the 10 requests,
    // and whatever the harness sent while starting).
    let mut received = Vec::new();
    for (name, server) in [("b1", &b1), ("b2", &b2)] {
        let backend = format!("backend=\"{name}\"");
        let labels = ["pool=\"main\"", &backend];
        let class = |class: &'static str| {
            let labels = [labels[0], labels[1], class];
            let bascule = &bascule;
            async move {
                bascule
                    .exported("bascule_upstream_responses_total", &labels)
                    .await
            }
        };
        let seen = server.seen().len() as f64;
        received.push(seen);
        assert_eq!(class("class=\"2xx\"").await, Some(seen), "{name}");
        assert_eq!(class("class=\"5xx\"").await, Some(0.0), "{name}");
        assert_eq!(
            bascule
                .metric("bascule_upstream_response_time_seconds_count", &labels)
                .await,
            seen,
            "one sample per response, {name}"
        );
        // Loopback answers well inside the largest bucket.
        assert_eq!(
            bascule
                .metric(
                    "bascule_upstream_response_time_seconds_bucket",
                    &[labels[0], labels[1], "le=\"30\""]
                )
                .await,
            seen
        );
    }
    // Round robin is exact per worker thread, so both got some.
    assert!(received.iter().sum::<f64>() >= 10.0);
    assert!(received.iter().all(|n| *n > 0.0), "{received:?}");
}

#[tokio::test]
async fn requests_and_their_durations_are_counted_per_route() {
    let backend = RecordingBackend::start("b1").await;
    let config = format!(
        r#"
[[listeners]]
name = "web"
address = "127.0.0.1:0"

  [[listeners.routes]]
  name = "api"
  path-prefix = "/api"
  pool = "main"

  [[listeners.routes]]
  path-prefix = "/old"
  redirect = {{ status = 301, location = "/new" }}

  [[listeners.routes]]
  pool = "main"

[pools.main]
balancer = "builtin:round-robin"
backends = [{}]
{ADMIN}"#,
        backend.toml()
    );
    let bascule = Bascule::start(&config);
    let web = bascule.addr("web");
    for (path, count) in [("/api/users", 3), ("/old/page", 2), ("/", 4)] {
        for _ in 0..count {
            send(web, get("example.test", path)).await;
        }
    }
    let requests = |route: &'static str, class: &'static str| {
        let bascule = &bascule;
        async move {
            let route = format!("route=\"{route}\"");
            let class = format!("class=\"{class}\"");
            bascule
                .exported(
                    "bascule_http_route_requests_total",
                    &["listener=\"web\"", &route, &class],
                )
                .await
        }
    };
    assert_eq!(requests("api", "2xx").await, Some(3.0));
    assert_eq!(requests("api", "5xx").await, Some(0.0));
    assert_eq!(
        requests("route-1", "3xx").await,
        Some(2.0),
        "redirects count on their route"
    );
    let seen_on_catch_all = requests("route-2", "2xx").await.unwrap();
    assert!(seen_on_catch_all >= 4.0, "{seen_on_catch_all}");
    let samples = bascule
        .metric(
            "bascule_http_request_duration_seconds_count",
            &["listener=\"web\"", "route=\"api\""],
        )
        .await;
    assert_eq!(samples, 3.0, "one duration per request");
    let status = send(bascule.addr("admin"), get("admin", "/status")).await;
    let status: Value = serde_json::from_str(&status.body).unwrap();
    let names: Vec<&str> = status["listeners"][0]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|route| route["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "route-1", "route-2"]);
}

fn post(path: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::post(path)
        .header("host", "admin")
        .body(http_body_util::Full::default())
        .unwrap()
}

#[tokio::test]
async fn post_reload_applies_the_file_or_answers_every_error() {
    let (b1, b2) = (
        RecordingBackend::start("b1").await,
        RecordingBackend::start("b2").await,
    );
    let bascule = Bascule::start(&single_pool_config(
        "builtin:round-robin",
        ADMIN,
        [b1.toml()],
    ));
    let admin = bascule.addr("admin");
    let web = bascule.addr("web");

    // A good file: applied, the new generation answered, b2 serving.
    bascule.rewrite_config(&single_pool_config(
        "builtin:round-robin",
        ADMIN,
        [b2.toml()],
    ));
    let reply = send(admin, post("/reload")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(answer["reloaded"], true);
    assert_eq!(answer["generation"], 2);
    assert_eq!(send(web, get("example.test", "/")).await.body, "b2");

    // A broken one: every error with file, line and field; still serving.
    bascule.rewrite_config(
        "[[listeners]]\nname = \"web\"\naddress = \"nope\"\n\n  [[listeners.routes]]\n  pool = \"missing\"\n",
    );
    let reply = send(admin, post("/reload")).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    let answer: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(answer["reloaded"], false);
    let errors: Vec<&str> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    let joined = errors.join("\n");
    assert!(
        joined.contains(":3:") && joined.contains("listeners[0].address"),
        "{joined}"
    );
    assert!(
        joined.contains(":6:") && joined.contains("listeners[0].routes[0].pool"),
        "{joined}"
    );
    assert_eq!(send(web, get("example.test", "/")).await.body, "b2");
    assert_eq!(
        bascule
            .metric("bascule_config_reloads_total", &["result=\"invalid\""])
            .await,
        1.0
    );
    assert_eq!(bascule.metric("bascule_config_generation", &[]).await, 2.0);

    // Only POST.
    assert_eq!(send(admin, get("admin", "/reload")).await.status, 405);
}

/// Body bytes per listener and per backend, HTTP and TCP, and the
/// requests in flight on a backend.
#[tokio::test]
async fn bytes_and_requests_in_flight_are_counted_per_listener_and_backend() {
    let slow = RecordingBackend::start_slow("b1", std::time::Duration::from_millis(600)).await;
    let echo = crate::tcp_backends::EchoBackend::start("echo").await;
    let config = single_pool_config("builtin:round-robin", ADMIN, [slow.toml()])
        + &crate::tcp_backends::echo_listener_toml(&echo);
    let bascule = Bascule::start(&config);
    let web = bascule.addr("web");
    let post = || {
        http::Request::post("/upload")
            .header("host", "example.test")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"0123456789",
            )))
            .unwrap()
    };
    // One request held by the slow backend: in flight while it waits.
    let held = tokio::spawn(send(web, post()));
    let in_flight = eventually(|| async {
        bascule
            .metric("bascule_upstream_active", &["backend=\"b1\""])
            .await
            == 1.0
    })
    .await;
    assert!(in_flight, "the request in flight is not shown");
    assert_eq!(held.await.unwrap().body, "b1");
    assert_eq!(send(web, post()).await.body, "b1");
    assert_eq!(
        bascule
            .metric("bascule_upstream_active", &["backend=\"b1\""])
            .await,
        0.0
    );

    // Two requests of 10 bytes, two answers of 2 (`b1`).
    let http = |direction: &str| format!("direction=\"{direction}\"");
    assert_eq!(
        bascule
            .metric(
                "bascule_http_bytes_total",
                &["listener=\"web\"", &http("received")]
            )
            .await,
        20.0
    );
    assert_eq!(
        bascule
            .metric(
                "bascule_http_bytes_total",
                &["listener=\"web\"", &http("sent")]
            )
            .await,
        4.0
    );
    assert_eq!(
        bascule
            .metric(
                "bascule_upstream_bytes_total",
                &["backend=\"b1\"", &http("sent")]
            )
            .await,
        20.0
    );
    assert_eq!(
        bascule
            .metric(
                "bascule_upstream_bytes_total",
                &["backend=\"b1\"", &http("received")]
            )
            .await,
        4.0
    );

    // TCP: 5 bytes out, the greeting (5) and the echo (5) back.
    let echoed = crate::tcp_backends::echo_once(bascule.addr("raw"), b"hello").await;
    assert_eq!(echoed, b"hello");
    let counted = eventually(|| async {
        bascule
            .metric(
                "bascule_upstream_bytes_total",
                &["backend=\"echo\"", &http("received")],
            )
            .await
            == 10.0
    })
    .await;
    assert!(counted);
    assert_eq!(
        bascule
            .metric(
                "bascule_upstream_bytes_total",
                &["backend=\"echo\"", &http("sent")]
            )
            .await,
        5.0
    );
}
