//! Routing beyond host and path prefix, through the real binary: each
//! match kind (exact path, path regex, methods, headers, query), each
//! action (strip-prefix, rewrite-path, redirect, respond), weighted splits
//! measured over many requests, sticky splits, and a blue/green flip by
//! reload under a client loop that must see no failure.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::support::*;

fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "shop.test");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::default()).unwrap()
}

fn pools(backends: &[&RecordingBackend]) -> String {
    backends
        .iter()
        .map(|backend| {
            format!(
                "[pools.{0}]\nbalancer = \"builtin:round-robin\"\nbackends = [{1}]\n",
                backend.name,
                backend.toml()
            )
        })
        .collect()
}

fn listener(routes: &str) -> String {
    format!("[[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\n{routes}\n")
}

#[tokio::test]
async fn every_match_kind_and_action() {
    let [api, mobile, canary, v2, users, fallback] = [
        RecordingBackend::start("api").await,
        RecordingBackend::start("mobile").await,
        RecordingBackend::start("canary").await,
        RecordingBackend::start("v2").await,
        RecordingBackend::start("users").await,
        RecordingBackend::start("fallback").await,
    ];
    let routes = r#"
  [[listeners.routes]]
  path = "/healthz"
  respond = { status = 200, body = "proxy ok\n" }

  [[listeners.routes]]
  path-prefix = "/maintenance"
  respond = { status = 503, body = "<h1>back soon</h1>", content-type = "text/html" }

  [[listeners.routes]]
  path-prefix = "/old/"
  redirect = { status = 308, location = "https://{host}/new{uri}" }

  [[listeners.routes]]
  path-prefix = "/api/"
  methods = ["GET", "HEAD"]
  strip-prefix = true
  pool = "api"

  [[listeners.routes]]
  headers = [{ name = "User-Agent", regex = ".*(Android|iPhone).*" }]
  pool = "mobile"

  [[listeners.routes]]
  headers = [{ name = "x-canary", value = "1" }, { name = "x-debug", present = false }]
  pool = "canary"

  [[listeners.routes]]
  query = [{ name = "version", value = "2" }]
  pool = "v2"

  [[listeners.routes]]
  path-regex = "/users/([0-9]+)/(?P<part>[a-z]+)"
  rewrite-path = "/v1/${part}/user-$1"
  pool = "users"

  [[listeners.routes]]
  pool = "fallback"
"#;
    let config = listener(routes) + &pools(&[&api, &mobile, &canary, &v2, &users, &fallback]);
    let bascule = Bascule::start(&config);
    let web = bascule.addr("web");
    let served = |reply: &Reply| reply.body.clone();

    let reply = send(web, request("GET", "/healthz", &[])).await;
    assert_eq!(
        (reply.status.as_u16(), reply.body.as_str()),
        (200, "proxy ok\n")
    );
    let reply = send(web, request("GET", "/healthz/deep", &[])).await;
    assert_eq!(served(&reply), "fallback", "`path` is exact");
    let reply = send(web, request("GET", "/maintenance/x", &[])).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.headers["content-type"], "text/html");
    assert_eq!(reply.body, "<h1>back soon</h1>");

    let reply = send(web, request("GET", "/old/page?x=1", &[])).await;
    assert_eq!(reply.status, 308);
    assert_eq!(
        reply.headers["location"],
        "https://shop.test/new/old/page?x=1"
    );

    let reply = send(web, request("GET", "/api/orders?page=2", &[])).await;
    assert_eq!(served(&reply), "api");
    assert_eq!(
        api.seen()[0].uri,
        "/orders?page=2",
        "prefix stripped, query kept"
    );
    let reply = send(web, request("POST", "/api/orders", &[])).await;
    assert_eq!(served(&reply), "fallback", "POST is not among the methods");

    let phone = [("user-agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)")];
    assert_eq!(
        served(&send(web, request("GET", "/", &phone)).await),
        "mobile"
    );
    let desktop = [("user-agent", "Mozilla/5.0 (X11; Linux x86_64)")];
    assert_eq!(
        served(&send(web, request("GET", "/", &desktop)).await),
        "fallback"
    );

    assert_eq!(
        served(&send(web, request("GET", "/", &[("x-canary", "1")])).await),
        "canary"
    );
    let debugging = [("x-canary", "1"), ("x-debug", "yes")];
    assert_eq!(
        served(&send(web, request("GET", "/", &debugging)).await),
        "fallback"
    );
    assert_eq!(
        served(&send(web, request("GET", "/", &[("x-canary", "2")])).await),
        "fallback"
    );

    assert_eq!(
        served(&send(web, request("GET", "/p?a=1&version=2", &[])).await),
        "v2"
    );
    assert_eq!(
        served(&send(web, request("GET", "/p?version=20", &[])).await),
        "fallback"
    );

    let reply = send(web, request("GET", "/users/42/posts?sort=new", &[])).await;
    assert_eq!(served(&reply), "users");
    assert_eq!(users.seen()[0].uri, "/v1/posts/user-42?sort=new");
    let reply = send(web, request("GET", "/users/42/posts/7", &[])).await;
    assert_eq!(served(&reply), "fallback", "the regex is anchored");
}

#[tokio::test]
async fn a_ninety_ten_split_and_sticky_keys() {
    let (v1, v2) = (
        RecordingBackend::start("v1").await,
        RecordingBackend::start("v2").await,
    );
    let routes = r#"
  [[listeners.routes]]
  path-prefix = "/sticky"
  pools = [{ pool = "v1", weight = 50 }, { pool = "v2", weight = 50 }]
  sticky = "header:x-user"

  [[listeners.routes]]
  pools = [{ pool = "v1", weight = 90 }, { pool = "v2", weight = 10 }]
"#;
    let bascule = Bascule::start(&(listener(routes) + &pools(&[&v1, &v2])));
    let web = bascule.addr("web");
    let mut sides: HashMap<String, usize> = HashMap::new();
    for _ in 0..2000 {
        let reply = send(web, request("GET", "/", &[])).await;
        *sides.entry(reply.body).or_default() += 1;
    }
    let to_v2 = sides.get("v2").copied().unwrap_or_default();
    // ±3% of 2,000 is 60 requests either way.
    assert!((140..=260).contains(&to_v2), "{sides:?}");

    let mut users_on = HashMap::new();
    for user in 0..100 {
        let id = format!("user-{user}");
        let first = send(web, request("GET", "/sticky", &[("x-user", &id)]))
            .await
            .body;
        for _ in 0..3 {
            let again = send(web, request("GET", "/sticky/x", &[("x-user", &id)]))
                .await
                .body;
            assert_eq!(again, first, "{id} stays on its side");
        }
        *users_on.entry(first).or_insert(0) += 1;
    }
    assert_eq!(
        users_on.len(),
        2,
        "the keys spread over both sides: {users_on:?}"
    );
}

#[tokio::test]
async fn a_reload_flips_blue_to_green_without_a_failed_request() {
    let (blue, green) = (
        RecordingBackend::start("blue").await,
        RecordingBackend::start("green").await,
    );
    let split = |blue_weight: u32, green_weight: u32| {
        listener(&format!(
            "\n  [[listeners.routes]]\n  pools = [{{ pool = \"blue\", weight = {blue_weight} }}, {{ pool = \"green\", weight = {green_weight} }}]\n"
        )) + &pools(&[&blue, &green])
    };
    let mut bascule = Bascule::start(&split(100, 0));
    let web = bascule.addr("web");
    let stop = Arc::new(AtomicBool::new(false));
    let (failures, served) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (stop, failures, served) = (
            Arc::clone(&stop),
            Arc::clone(&failures),
            Arc::clone(&served),
        );
        clients.spawn(async move {
            // Keep-alive connections, as real clients hold: they must see
            // the flip too. Bounded: at most 20,000 requests each.
            let stream = TcpStream::connect(web).await.unwrap();
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            let mut seen = Vec::new();
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match sender.send_request(request("GET", "/", &[])).await {
                    Ok(response) if response.status() == 200 => {
                        seen.push(reply(response).await.body);
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            seen
        });
    }
    assert!(eventually(|| async { served.load(Ordering::Relaxed) > 200 }).await);
    assert!(bascule.reload(&split(0, 100)).contains("reload"));
    let before = served.load(Ordering::Relaxed);
    assert!(eventually(|| async { served.load(Ordering::Relaxed) > before + 200 }).await);
    stop.store(true, Ordering::Relaxed);
    let mut order = Vec::new();
    while let Some(seen) = clients.join_next().await {
        order.push(seen.unwrap());
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    for seen in order {
        // Every client went from blue to green once, and never back.
        let flip = seen.iter().position(|side| side == "green").unwrap();
        assert!(seen[..flip].iter().all(|side| side == "blue"));
        assert!(
            seen[flip..].iter().all(|side| side == "green"),
            "no blue after the flip"
        );
    }
}

#[test]
fn route_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let pool = "[pools.p]\nbalancer = \"builtin:round-robin\"\nbackends = [{ address = \"127.0.0.1:9\" }]\n";
    let cases = [
        (
            "  path-regex = \"/users/(\"\n  pool = \"p\"",
            "listeners[0].routes[0].path-regex: invalid regular expression",
        ),
        (
            "  path-prefix = \"/x\"",
            "listeners[0].routes[0].pool: a route needs one of `pool`, `pools`, `redirect` or `respond`",
        ),
        (
            "  pool = \"p\"\n  respond = { status = 200 }",
            "give only one of `pool`, `pools`, `redirect` and `respond`",
        ),
        (
            "  redirect = { status = 200, location = \"/\" }",
            "a redirect status is 301, 302, 303, 307 or 308",
        ),
        (
            "  pools = [{ pool = \"p\", weight = 0 }]",
            "a split needs at least one pool with a weight above 0",
        ),
        (
            "  pool = \"p\"\n  sticky = \"client-ip\"",
            "`sticky` keeps a client on one side of a split",
        ),
        (
            "  methods = [\"G T\"]\n  pool = \"p\"",
            "listeners[0].routes[0].methods[0]: `G T` is not an HTTP method",
        ),
        (
            "  headers = [{ name = \"x\", value = \"1\", regex = \"1\" }]\n  pool = \"p\"",
            "give one of `value`, `regex` or `present`",
        ),
        (
            "  strip-prefix = true\n  rewrite-path = \"/a\"\n  pool = \"p\"",
            "give `strip-prefix` or `rewrite-path`, not both",
        ),
        (
            "  name = \"a b\"\n  pool = \"p\"",
            "listeners[0].routes[0].name",
        ),
        (
            "  pool = \"p\"\n\n  [[listeners.routes]]\n  name = \"route-0\"\n  pool = \"p\"",
            "listeners[0].routes[1].name: another route of this listener is named `route-0`",
        ),
    ];
    for (route, expected) in cases {
        let config = listener(&format!("\n  [[listeners.routes]]\n{route}\n")) + pool;
        let (ok, stderr) = check(dir.path(), "routes.toml", &config);
        assert!(!ok, "{route}");
        assert!(stderr.contains(expected), "{route}:\n{stderr}");
        assert!(
            stderr.contains("routes.toml:"),
            "names the file and line: {stderr}"
        );
    }
}

#[tokio::test]
async fn a_body_over_the_route_limit_gets_413_declared_or_streamed() {
    let uploads = RecordingBackend::start("uploads").await;
    let routes = "\n  [[listeners.routes]]\n  max-body-size = 1024\n  pool = \"uploads\"\n";
    let bascule = Bascule::start(&(listener(routes) + &pools(&[&uploads])));
    let web = bascule.addr("web");
    let upload = |body: Vec<u8>| {
        Request::post("/upload")
            .header("host", "shop.test")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let reply = send(web, upload(vec![b'a'; 1024])).await;
    assert_eq!(reply.status, 200, "at the limit");
    // Declared too large: refused before any backend is chosen.
    let reply = send(web, upload(vec![b'a'; 1025])).await;
    assert_eq!(reply.status, 413);
    assert_eq!(uploads.seen().len(), 1);
    // Chunked, no length: counted as it streams, refused when it passes.
    let chunks = futures_util::stream::iter((0..8).map(|_| {
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![b'c'; 512])))
    }));
    let streamed = Request::post("/upload")
        .header("host", "shop.test")
        .body(http_body_util::StreamBody::new(chunks))
        .unwrap();
    let stream = TcpStream::connect(web).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = tokio::time::timeout(WAIT, sender.send_request(streamed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn a_route_timeout_bounds_the_whole_request() {
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;
    let slow = RecordingBackend::start_slow("slow", std::time::Duration::from_secs(3)).await;
    // A backend that answers at once, then trickles its body.
    let (trickling, _) = scripted_backend(|mut stream: TcpStream| async move {
        if read_request_head(&mut stream).await {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nfirst bytes")
                .await;
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        }
    })
    .await;
    let routes = r#"
  [[listeners.routes]]
  path-prefix = "/slow"
  timeout = "300ms"
  pool = "slow"

  [[listeners.routes]]
  timeout = "300ms"
  pool = "trickling"
"#;
    let config = listener(routes)
        + &pools(&[&slow])
        + &format!(
            "[pools.trickling]\nbalancer = \"builtin:round-robin\"\nbackends = [{}]\n",
            backend_toml("trickling", trickling)
        );
    let bascule = Bascule::start(&config);
    let web = bascule.addr("web");
    let started = tokio::time::Instant::now();
    let reply = send(web, request("GET", "/slow", &[])).await;
    assert_eq!(reply.status, 504);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));

    // The head came in time; the body did not: the client sees it cut
    // short, never a complete response.
    let stream = TcpStream::connect(web).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request("GET", "/", &[])).await.unwrap();
    assert_eq!(response.status(), 200);
    let started = tokio::time::Instant::now();
    let body = tokio::time::timeout(WAIT, response.into_body().collect())
        .await
        .unwrap();
    assert!(body.is_err(), "cut short, not complete");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[tokio::test]
async fn a_rate_limit_answers_429_past_its_rate() {
    let api = RecordingBackend::start("api").await;
    let routes = "\n  [[listeners.routes]]\n  path-prefix = \"/per-user\"\n  limit = \"per-user\"\n  pool = \"api\"\n\n  [[listeners.routes]]\n  limit = \"per-client\"\n  pool = \"api\"\n";
    let limits = "\n[limits.per-client]\nrate = 20\nburst = 20\n\n[limits.per-user]\nrate = 1\nburst = 2\nkey = \"header:x-user\"\n";
    let bascule = Bascule::start(
        &(listener(routes) + &pools(&[&api]) + limits + "\n[admin]\naddress = \"127.0.0.1:0\"\n"),
    );
    let web = bascule.addr("web");
    let stream = TcpStream::connect(web).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    // As fast as one keep-alive client goes, for 5 s (and 50,000 requests
    // at most): the burst, then 20 a second.
    let started = tokio::time::Instant::now();
    let (mut allowed, mut limited, mut retry_after) = (0u32, 0u32, None);
    for _ in 0..50_000 {
        if started.elapsed() >= std::time::Duration::from_secs(5) {
            break;
        }
        let response = sender.send_request(request("GET", "/", &[])).await.unwrap();
        match response.status().as_u16() {
            200 => allowed += 1,
            429 => {
                limited += 1;
                retry_after = response.headers().get("retry-after").cloned();
            }
            other => panic!("unexpected {other}"),
        }
        let _ = reply(response).await;
    }
    let expected = 20.0 + 20.0 * started.elapsed().as_secs_f64();
    assert!(
        (f64::from(allowed) - expected).abs() <= expected * 0.1,
        "{allowed} allowed, {expected:.0} expected ({limited} limited)"
    );
    assert!(limited > 0);
    assert_eq!(retry_after.unwrap(), "1");
    let counted = bascule
        .metric("bascule_http_rate_limited_total", &["limit=\"per-client\""])
        .await;
    assert_eq!(counted, f64::from(limited));

    // Keyed by a header: each user has a bucket of its own.
    let as_user = |user: &'static str| request("GET", "/per-user", &[("x-user", user)]);
    let statuses: Vec<u16> = [
        send(web, as_user("ann")).await.status.as_u16(),
        send(web, as_user("ann")).await.status.as_u16(),
        send(web, as_user("ann")).await.status.as_u16(),
        send(web, as_user("bob")).await.status.as_u16(),
    ]
    .into();
    assert_eq!(statuses, [200, 200, 429, 200]);
}
