//! Header filters on routes: the built-in `headers` filter rewriting both
//! directions, chains in order, local answers, and filters that fail or
//! misbehave stopped by the sandbox with a 500.

use crate::support::*;

/// One listener `web` whose route lists `filters`, declared in `declared`
/// (TOML), in front of `backend`, with an admin listener.
fn filtered(filters: &[&str], declared: &str, backend: &RecordingBackend) -> String {
    let list: Vec<String> = filters.iter().map(|f| format!("\"{f}\"")).collect();
    format!(
        r#"
[[listeners]]
name = "web"
address = "127.0.0.1:0"

  [[listeners.routes]]
  pool = "main"
  filters = [{}]

[pools.main]
balancer = "builtin:round-robin"
backends = [{}]

[sandbox]
call-timeout = "20ms"

[admin]
address = "127.0.0.1:0"

{declared}
"#,
        list.join(", "),
        backend.toml()
    )
}

fn test_filter(name: &str, mode: &str) -> String {
    let plugin = test_plugin("test-filter").display().to_string();
    format!("[filters.{name}]\nplugin = \"{plugin}\"\noptions = {{ mode = \"{mode}\" }}\n")
}

#[tokio::test]
async fn builtin_headers_rewrites_requests_and_responses() {
    let backend = RecordingBackend::start("b1").await;
    let declared = r#"
[filters.edge]
plugin = "builtin:headers"
options.request = { set = { "x-real-ip" = "{client-ip}", "x-route" = "{method} {path}" }, remove = ["x-debug"] }
options.response = { set = { "x-frame-options" = "DENY" }, append = { "x-served" = "{status}" }, remove = ["x-backend"] }
"#;
    let bascule = Bascule::start(&filtered(&["edge"], declared, &backend));
    let mut request = get("example.test", "/cart?x=1");
    request
        .headers_mut()
        .insert("x-debug", "1".parse().unwrap());
    let reply = send(bascule.addr("web"), request).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, "b1");
    // The recording backend names itself in `x-backend`: removed.
    assert!(
        reply.headers.get("x-backend").is_none(),
        "{:?}",
        reply.headers
    );
    assert_eq!(reply.headers["x-frame-options"], "DENY");
    assert_eq!(reply.headers["x-served"], "200");
    let seen = backend.seen();
    let headers = &seen[0].headers;
    assert_eq!(headers["x-real-ip"], "127.0.0.1");
    assert_eq!(headers["x-route"], "GET /cart");
    assert!(headers.get("x-debug").is_none());
    // The proxy's own headers were there for the filter and are kept.
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");

    let status = send(bascule.addr("admin"), get("admin", "/status")).await;
    let status: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    let filter = &status["listeners"][0]["routes"][0]["filters"][0];
    assert_eq!(
        (filter["name"].as_str(), filter["plugin"].as_str()),
        (Some("edge"), Some("builtin:headers"))
    );
    assert_eq!(filter["failures"], 0);
    // The SHA-256 of the component that runs, as `sha256sum` prints it.
    let sha256 = filter["sha256"].as_str().unwrap();
    assert!(
        sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()),
        "{sha256}"
    );
    assert_eq!(
        status["listeners"][0]["routes"][0]["filters"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn chains_see_requests_in_order_and_responses_in_reverse() {
    let backend = RecordingBackend::start("b1").await;
    let declared = r#"
[filters.first]
plugin = "builtin:headers"
options.request = { append = { "x-order" = "first" } }
options.response = { append = { "x-order" = "first" } }

[filters.second]
plugin = "builtin:headers"
options.request = { append = { "x-order" = "second" } }
options.response = { append = { "x-order" = "second" } }
"#;
    let bascule = Bascule::start(&filtered(&["first", "second"], declared, &backend));
    let reply = bascule.get_root().await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let order = |headers: &http::HeaderMap| -> Vec<String> {
        headers
            .get_all("x-order")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(order(&backend.seen()[0].headers), ["first", "second"]);
    assert_eq!(order(&reply.headers), ["second", "first"]);
}

#[tokio::test]
async fn a_filter_can_answer_and_the_backend_never_sees_the_request() {
    let backend = RecordingBackend::start("b1").await;
    let declared = test_filter("gate", "deny")
        + "\n"
        + r#"
[filters.tag]
plugin = "builtin:headers"
options.response = { set = { "x-tagged" = "yes" } }
"#;
    let bascule = Bascule::start(&filtered(&["gate", "tag"], &declared, &backend));
    let reply = bascule.get_root().await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.body, "denied by test-filter");
    assert_eq!(reply.headers["x-denied-by"], "test-filter");
    assert_eq!(reply.headers["content-type"], "text/plain; charset=utf-8");
    // Response filters run on backend responses only.
    assert!(reply.headers.get("x-tagged").is_none());
    assert_eq!(backend.connections(), 0);
}

#[tokio::test]
async fn response_filters_read_the_request_as_sent() {
    let backend = RecordingBackend::start("b1").await;
    let bascule = Bascule::start(&filtered(&["echo"], &test_filter("echo", "echo"), &backend));
    let mut request = get("example.test", "/items?page=2");
    request
        .headers_mut()
        .insert("x-trace", "t-42".parse().unwrap());
    let reply = send(bascule.addr("web"), request).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.headers["x-seen"], "GET /items t-42 127.0.0.1");
    let response_view = reply.headers["x-seen-response"].to_str().unwrap();
    assert!(
        response_view.starts_with("200 ") && response_view.contains("x-backend"),
        "{response_view}"
    );
}

#[tokio::test]
async fn failing_and_misbehaving_filters_answer_500_and_are_counted() {
    let backend = RecordingBackend::start("b1").await;
    let declared = [
        test_filter("owned", "edit-owned"),
        test_filter("trap", "trap"),
        test_filter("spin", "spin"),
        test_filter("nonsense", "bad-status"),
    ]
    .join("\n");
    let mut config = filtered(&["owned"], &declared, &backend);
    for (path, filter) in [
        ("/trap", "trap"),
        ("/spin", "spin"),
        ("/nonsense", "nonsense"),
    ] {
        config = config.replacen(
            "  [[listeners.routes]]\n  pool = \"main\"\n  filters = [\"owned\"]",
            &format!(
                "  [[listeners.routes]]\n  path-prefix = \"{path}\"\n  pool = \"main\"\n  filters = [\"{filter}\"]\n\n  [[listeners.routes]]\n  pool = \"main\"\n  filters = [\"owned\"]"
            ),
            1,
        );
    }
    let bascule = Bascule::start(&config);
    let web = bascule.addr("web");
    for path in ["/", "/trap", "/spin", "/nonsense"] {
        let reply = send(web, get("example.test", path)).await;
        assert_eq!(reply.status, 500, "{path}: {}", reply.body);
    }
    // The request-side failures never reached the backend; the spinning
    // response filter's request did, and its answer was replaced.
    assert_eq!(backend.seen().len(), 1);
    let plugin = test_plugin("test-filter").display().to_string();
    let failures = |kind: &'static str| {
        let plugin = plugin.clone();
        let bascule = &bascule;
        async move {
            bascule
                .metric(
                    "bascule_plugin_failures_total",
                    &[&format!("plugin=\"{plugin}\""), &format!("kind=\"{kind}\"")],
                )
                .await
        }
    };
    assert_eq!(failures("guest-error").await, 1.0);
    assert_eq!(failures("trap").await, 1.0);
    assert_eq!(failures("timeout").await, 1.0);
    assert_eq!(failures("invalid-output").await, 1.0);
    // The trapped instance was replaced: the filter still runs (and traps).
    let reply = send(web, get("example.test", "/trap")).await;
    assert_eq!(reply.status, 500);
    assert_eq!(failures("trap").await, 2.0);
}

#[tokio::test]
async fn filter_config_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let backend = "{ address = \"127.0.0.1:9\" }";
    let base = |route_filters: &str, declared: &str| {
        format!(
            "[[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\n\n  [[listeners.routes]]\n  pool = \"main\"\n  filters = [{route_filters}]\n\n[pools.main]\nbalancer = \"builtin:round-robin\"\nbackends = [{backend}]\n\n{declared}"
        )
    };
    let (ok, out) = check(dir.path(), "unknown.toml", &base("\"nope\"", ""));
    assert!(!ok);
    assert!(
        out.contains("unknown.toml:7:14") && out.contains("listeners[0].routes[0].filters[0]"),
        "{out}"
    );
    assert!(out.contains("no filter named `nope`"), "{out}");

    let declared =
        "[filters.edge]\nplugin = \"builtin:headers\"\noptions.request = { sett = {} }\n";
    let (ok, out) = check(dir.path(), "options.toml", &base("\"edge\"", declared));
    assert!(!ok);
    assert!(
        out.contains("filters.edge.options") && out.contains("sett"),
        "{out}"
    );

    // A balancer is not a header filter.
    let declared = "[filters.edge]\nplugin = \"builtin:round-robin\"\n";
    let (ok, out) = check(dir.path(), "kind.toml", &base("\"edge\"", declared));
    assert!(!ok);
    assert!(
        out.contains("filters.edge.plugin") && out.contains("filter"),
        "{out}"
    );

    // TCP listeners forward bytes untouched.
    let tcp = "[[listeners]]\nname = \"raw\"\naddress = \"127.0.0.1:0\"\nmode = \"tcp\"\n\n  [[listeners.routes]]\n  pool = \"main\"\n  filters = [\"edge\"]\n\n[pools.main]\nbalancer = \"builtin:round-robin\"\nbackends = [{ address = \"127.0.0.1:9\" }]\n\n[filters.edge]\nplugin = \"builtin:headers\"\n";
    let (ok, out) = check(dir.path(), "tcp.toml", tcp);
    assert!(!ok);
    assert!(
        out.contains("listeners[0].routes[0].filters") && out.contains("HTTP routes"),
        "{out}"
    );
}

/// A reload adds a filter (a `.wasm` file, compiled then) to a running
/// route, then a reload that names a missing filter is refused and the
/// filtered config keeps serving.
#[tokio::test]
async fn reload_hot_loads_a_filter_and_refuses_a_bad_one() {
    let backend = RecordingBackend::start("b1").await;
    let mut bascule = Bascule::start(&filtered(&[], "", &backend));
    let reply = bascule.get_root().await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers.get("x-seen").is_none());

    let with_filter = filtered(&["echo"], &test_filter("echo", "echo"), &backend);
    let printed = bascule.reload(&with_filter);
    assert!(printed.contains("bascule: reloaded"), "{printed}");
    let reply = bascule.get_root().await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.headers["x-seen"]
            .to_str()
            .unwrap()
            .starts_with("GET / ")
    );

    let printed = bascule.reload(&filtered(&["missing"], "", &backend));
    assert!(printed.contains("no filter named `missing`"), "{printed}");
    assert!(printed.contains("reload rejected"), "{printed}");
    let reply = bascule.get_root().await;
    assert!(reply.headers.get("x-seen").is_some());
}

/// `bascule_plugin_calls_total` for `plugin` and `hook`, which must be
/// exported (registered when the filter loads).
async fn calls(bascule: &Bascule, plugin: &str, hook: &str) -> f64 {
    bascule
        .exported(
            "bascule_plugin_calls_total",
            &[&format!("plugin=\"{plugin}\""), &format!("hook=\"{hook}\"")],
        )
        .await
        .unwrap_or_else(|| panic!("no calls counter for {plugin} {hook}"))
}

#[tokio::test]
async fn a_filter_that_declares_only_responses_is_never_called_on_requests() {
    let backend = RecordingBackend::start("b1").await;
    let config = filtered(&["late"], &test_filter("late", "response-only"), &backend);
    let bascule = Bascule::start_with(&config, &["--workers", "1"]);
    let mut last = None;
    for _ in 0..5 {
        let reply = bascule.get_root().await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        last = Some(reply);
    }
    // The instance's own counts: its request hook never ran, and it read
    // the response header it declared.
    let reply = last.unwrap();
    assert_eq!(
        reply.headers["x-filter-calls"],
        "requests=0 responses=5 backend=b1"
    );
    let plugin = test_plugin("test-filter").display().to_string();
    assert_eq!(calls(&bascule, &plugin, "on-request").await, 0.0);
    assert_eq!(calls(&bascule, &plugin, "on-response").await, 5.0);
}

#[tokio::test]
async fn builtin_headers_edits_are_applied_with_no_plugin_call() {
    let backend = RecordingBackend::start("b1").await;
    let declared = r#"
[filters.edge]
plugin = "builtin:headers"
options.request = { set = { "x-real-ip" = "{client-ip}" } }
options.response = { set = { "x-path" = "{path} {status}" } }
"#;
    let bascule = Bascule::start(&filtered(&["edge"], declared, &backend));
    for _ in 0..3 {
        let reply = send(bascule.addr("web"), get("example.test", "/a")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.headers["x-path"], "/a 200");
    }
    assert_eq!(backend.seen()[2].headers["x-real-ip"], "127.0.0.1");
    assert_eq!(calls(&bascule, "builtin:headers", "on-request").await, 0.0);
    assert_eq!(calls(&bascule, "builtin:headers", "on-response").await, 0.0);
}

#[tokio::test]
async fn a_refused_edit_fails_the_request_with_none_of_its_edits() {
    let backend = RecordingBackend::start("b1").await;
    let bascule = Bascule::start(&filtered(
        &["bad"],
        &test_filter("bad", "bad-edit"),
        &backend,
    ));
    let reply = bascule.get_root().await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_eq!(backend.connections(), 0);
    let plugin = test_plugin("test-filter").display().to_string();
    let invalid = bascule
        .metric(
            "bascule_plugin_failures_total",
            &[&format!("plugin=\"{plugin}\""), "kind=\"invalid-output\""],
        )
        .await;
    assert_eq!(invalid, 1.0);
}

#[tokio::test]
async fn a_filter_rewrites_the_path_and_keeps_the_query() {
    let backend = RecordingBackend::start("b1").await;
    let bascule = Bascule::start(&filtered(
        &["move"],
        &test_filter("move", "rewrite"),
        &backend,
    ));
    let reply = send(bascule.addr("web"), get("example.test", "/items?page=2")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(backend.seen()[0].uri, "/rewritten/items?page=2");
}

#[tokio::test]
async fn a_bad_template_fails_the_load_naming_the_filter() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\n\n  [[listeners.routes]]\n  pool = \"main\"\n  filters = [\"edge\"]\n\n[pools.main]\nbalancer = \"builtin:round-robin\"\nbackends = [{ address = \"127.0.0.1:9\" }]\n\n[filters.edge]\nplugin = \"builtin:headers\"\noptions.request = { set = { \"x-a\" = \"{nope}\" } }\n";
    let (ok, out) = check(dir.path(), "template.toml", config);
    assert!(!ok);
    assert!(
        out.contains("filters.edge") && out.contains("unknown field `{nope}`"),
        "{out}"
    );
}

#[tokio::test]
async fn a_filter_rate_limits_by_a_key_it_computes() {
    let backend = RecordingBackend::start("b1").await;
    let plugin = test_plugin("test-filter").display().to_string();
    let declared = format!(
        "[filters.tenant]\nplugin = \"{plugin}\"\noptions = {{ mode = \"rate-limit\", limit = \"per-tenant\" }}\n\n[limits.per-tenant]\nrate = 0.2\nburst = 3\n"
    );
    let bascule = Bascule::start(&filtered(&["tenant"], &declared, &backend));
    let web = bascule.addr("web");
    let as_token = |token: &str| {
        let mut request = get("example.test", "/");
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    };
    // Three secrets of one tenant share its bucket of 3; the fourth
    // request is refused by the plugin with the host's wait.
    let mut statuses = Vec::new();
    for token in ["acme.k1", "acme.k2", "acme.k3", "acme.k1"] {
        statuses.push(send(web, as_token(token)).await.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let refused = send(web, as_token("acme.k2")).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.headers["x-limited-tenant"], "acme");
    let wait: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&wait), "a token every 5 s: {wait}");
    // Another tenant has its own bucket.
    assert_eq!(send(web, as_token("globex.k1")).await.status, 200);
    assert_eq!(backend.seen().len(), 4, "refused requests never left");
    assert_eq!(
        bascule
            .metric("bascule_http_rate_limited_total", &["limit=\"per-tenant\""])
            .await,
        2.0
    );
}

#[tokio::test]
async fn a_filter_naming_an_unknown_limit_fails_its_requests() {
    let backend = RecordingBackend::start("b1").await;
    let plugin = test_plugin("test-filter").display().to_string();
    let declared = format!(
        "[filters.tenant]\nplugin = \"{plugin}\"\noptions = {{ mode = \"rate-limit\", limit = \"nope\" }}\n"
    );
    let bascule = Bascule::start(&filtered(&["tenant"], &declared, &backend));
    let reply = send(bascule.addr("web"), get("example.test", "/")).await;
    assert_eq!(reply.status, 500);
    assert!(backend.seen().is_empty());
    let failures = bascule
        .metric(
            "bascule_plugin_failures_total",
            &[&format!("plugin=\"{plugin}\""), "kind=\"guest-error\""],
        )
        .await;
    assert_eq!(failures, 1.0);
}
