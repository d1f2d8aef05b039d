//! Health checking through the real binary: active probes judged by the
//! built-in and a user's interpreter, thresholds counted at the backends,
//! outlier ejection of a killed backend with no failed request, degraded
//! weights, draining on reload and panic mode.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::support::*;

/// What a [`HealthBackend`] answers on its health path.
#[derive(Clone)]
struct HealthAnswer {
    status: u16,
    body: &'static str,
    header: Option<&'static str>,
}

/// A backend whose `/health` answer the test switches, that counts probes
/// and traffic apart, answers `/slow` after a second, and whose drop closes
/// every connection it has (a killed process, as far as the proxy sees).
struct HealthBackend {
    name: &'static str,
    address: SocketAddr,
    answer: Arc<Mutex<HealthAnswer>>,
    probes: Arc<AtomicUsize>,
    traffic: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    _tasks: JoinSet<()>,
}

impl HealthBackend {
    async fn start(name: &'static str) -> HealthBackend {
        let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(HealthAnswer {
            status: 200,
            body: "ok",
            header: Some("ok"),
        }));
        let (probes, traffic, open) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let mut tasks = JoinSet::new();
        let (answers, probed, served, opened) = (
            Arc::clone(&answer),
            Arc::clone(&probes),
            Arc::clone(&traffic),
            Arc::clone(&open),
        );
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = socket.accept().await {
                let (answers, probed, served, opened) = (
                    Arc::clone(&answers),
                    Arc::clone(&probed),
                    Arc::clone(&served),
                    Arc::clone(&opened),
                );
                opened.fetch_add(1, Ordering::SeqCst);
                connections.spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (answers, probed, served) = (
                            Arc::clone(&answers),
                            Arc::clone(&probed),
                            Arc::clone(&served),
                        );
                        async move {
                            if request.uri().path() == "/health" {
                                // Counted under the answer's lock: a switch
                                // falls between two probes, never inside one.
                                let answer = {
                                    let answer = answers.lock().unwrap();
                                    probed.fetch_add(1, Ordering::SeqCst);
                                    answer.clone()
                                };
                                let mut response =
                                    Response::new(Full::new(Bytes::from(answer.body)));
                                *response.status_mut() =
                                    http::StatusCode::from_u16(answer.status).unwrap();
                                if let Some(value) = answer.header {
                                    response
                                        .headers_mut()
                                        .insert("x-health", value.parse().unwrap());
                                }
                                return Ok::<_, Infallible>(response);
                            }
                            served.fetch_add(1, Ordering::SeqCst);
                            if request.uri().path() == "/slow" {
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                            Ok(Response::new(Full::new(Bytes::from(name))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    opened.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        HealthBackend {
            name,
            address,
            answer,
            probes,
            traffic,
            open,
            _tasks: tasks,
        }
    }

    /// Switches the health answer; the number of probes answered before.
    fn answer(&self, status: u16, body: &'static str, header: Option<&'static str>) -> usize {
        let mut answer = self.answer.lock().unwrap();
        *answer = HealthAnswer {
            status,
            body,
            header,
        };
        self.probes()
    }

    fn toml(&self) -> String {
        backend_toml(self.name, self.address)
    }

    fn probes(&self) -> usize {
        self.probes.load(Ordering::SeqCst)
    }

    fn traffic(&self) -> usize {
        self.traffic.load(Ordering::SeqCst)
    }

    fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

/// Polls `/status` every 10 ms until `backend`'s health is `health`; the
/// backend's probe count at that moment (a probe interval of 400 ms leaves
/// no room for another probe between the change and the poll).
async fn probes_when(bascule: &Bascule, backend: &HealthBackend, health: &str) -> usize {
    let changed = eventually_every(Duration::from_millis(10), || async {
        backend_status(bascule, backend.name).await["health"] == health
    })
    .await;
    assert!(changed, "{} never became {health}", backend.name);
    backend.probes()
}

async fn served_by(bascule: &Bascule, n: usize) -> Vec<String> {
    let mut served = Vec::new();
    for _ in 0..n {
        let reply = bascule.get_root().await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        served.push(reply.body);
    }
    served
}

#[tokio::test]
async fn thresholds_are_counted_exactly_and_traffic_follows() {
    let a = HealthBackend::start("a").await;
    let b = HealthBackend::start("b").await;
    let health = "\n[pools.main.health]\ninterval = \"400ms\"\ntimeout = \"300ms\"\nunhealthy-threshold = 3\nhealthy-threshold = 2\n";
    let config = single_pool_config("builtin:round-robin", health, [a.toml(), b.toml()]) + ADMIN;
    let bascule = Bascule::start(&config);
    assert!(
        eventually(|| async { backend_status(&bascule, "b").await["check"]["state"] == "healthy" })
            .await,
        "unknown ends at the first probe"
    );

    let before = b.answer(503, "down", None);
    let at_change = probes_when(&bascule, &b, "unhealthy").await;
    assert_eq!(
        at_change - before,
        3,
        "unhealthy after exactly unhealthy-threshold bad probes"
    );
    let status = backend_status(&bascule, "b").await;
    assert_eq!(status["check"]["last-probe"]["result"], "unhealthy");
    assert_eq!(
        status["check"]["last-probe"]["reason"],
        "status 503 is not expected"
    );
    let traffic = b.traffic();
    assert!(served_by(&bascule, 20).await.iter().all(|name| name == "a"));
    assert_eq!(b.traffic(), traffic, "an unhealthy backend gets no traffic");
    assert!(
        bascule
            .metric(
                "bascule_backend_health",
                &["backend=\"b\"", "state=\"unhealthy\""]
            )
            .await
            == 1.0
    );

    let before = b.answer(200, "ok", None);
    let at_change = probes_when(&bascule, &b, "healthy").await;
    assert_eq!(
        at_change - before,
        2,
        "healthy after exactly healthy-threshold good probes"
    );
    let served = served_by(&bascule, 20).await;
    assert!(served.iter().any(|name| name == "b"), "{served:?}");
    assert!(
        bascule
            .metric(
                "bascule_health_probes_total",
                &["backend=\"b\"", "result=\"unhealthy\""]
            )
            .await
            >= 3.0
    );
}

#[tokio::test]
async fn a_killed_backend_is_ejected_and_no_request_fails() {
    let a = HealthBackend::start("a").await;
    let b = HealthBackend::start("b").await;
    let outlier = "\n[pools.main.outlier-detection]\nconsecutive-connect-failures = 2\nbase-ejection-time = \"30s\"\n";
    let config = single_pool_config("builtin:round-robin", outlier, [a.toml(), b.toml()]) + ADMIN;
    let bascule = Bascule::start_with(&config, &["--workers", "2"]);
    let served = served_by(&bascule, 20).await;
    assert!(served.iter().any(|name| name == "b"), "{served:?}");

    let mut b = Some(b);
    let mut failed = 0;
    for i in 0..400 {
        if i == 50 {
            // Killed: its listener and every connection close.
            drop(b.take());
        }
        if bascule.get_root().await.status != 200 {
            failed += 1;
        }
    }
    assert_eq!(
        failed, 0,
        "idempotent requests fall through to the healthy backend"
    );
    assert!(
        bascule
            .metric(
                "bascule_outlier_ejections_total",
                &["backend=\"b\"", "reason=\"consecutive-connect-failures\""]
            )
            .await
            >= 1.0
    );
    let status = backend_status(&bascule, "b").await;
    assert_eq!(status["check"]["ejected"], true, "{status}");
    assert_eq!(status["health"], "unhealthy");
    assert!(status["check"]["ejections"].as_u64().unwrap() >= 1);
    // Ejected: requests no longer try it at all.
    let failures = bascule
        .metric(
            "bascule_upstream_connect_failures_total",
            &["backend=\"b\""],
        )
        .await;
    served_by(&bascule, 50).await;
    assert_eq!(
        bascule
            .metric(
                "bascule_upstream_connect_failures_total",
                &["backend=\"b\""]
            )
            .await,
        failures
    );
}

#[tokio::test]
async fn json_health_load_lowers_a_degraded_backends_share() {
    let a = HealthBackend::start("a").await;
    let b = HealthBackend::start("b").await;
    a.answer(200, r#"{"status":"ok"}"#, None);
    b.answer(200, r#"{"status":"degraded","load":0.8}"#, None);
    let health = "\n[pools.main.health]\ninterval = \"200ms\"\ninterpreter = \"builtin:json-health\"\ninterpreter-options = { load-field = \"load\" }\n";
    let config =
        single_pool_config("builtin:weighted-round-robin", health, [a.toml(), b.toml()]) + ADMIN;
    let bascule = Bascule::start(&config);
    assert!(
        eventually(|| async {
            let status = backend_status(&bascule, "b").await;
            status["health"] == "degraded" && status["health-permille"] == 200
        })
        .await,
        "{}",
        backend_status(&bascule, "b").await
    );
    let served = served_by(&bascule, 2000).await;
    let share = served.iter().filter(|name| *name == "b").count() as f64 / 2000.0;
    // Weights 1 and 1 × 0.2: b gets 0.2 / 1.2 of the requests.
    let expected = 0.2 / 1.2;
    assert!(
        (share - expected).abs() <= 0.03,
        "b served {share:.3} of requests, expected {expected:.3} ± 0.03"
    );
}

#[tokio::test]
async fn a_user_interpreter_decides_from_a_header_and_a_trapping_one_fails_probes() {
    let a = HealthBackend::start("a").await;
    let b = HealthBackend::start("b").await;
    b.answer(200, "fine", Some("overloaded"));
    let plugin = test_plugin("test-health-header").display().to_string();
    let health = format!(
        "\n[pools.main.health]\ninterval = \"100ms\"\nunhealthy-threshold = 1\ninterpreter = \"{plugin}\"\n"
    );
    let config = single_pool_config("builtin:round-robin", &health, [a.toml(), b.toml()]) + ADMIN;
    let bascule = Bascule::start(&config);
    assert!(
        eventually(|| async { backend_status(&bascule, "b").await["health"] == "unhealthy" }).await
    );
    assert_eq!(
        backend_status(&bascule, "b").await["check"]["last-probe"]["reason"],
        "x-health: overloaded",
        "a 200 is unhealthy when the interpreter says so"
    );
    assert_eq!(backend_status(&bascule, "a").await["health"], "healthy");

    a.answer(200, "fine", Some("trap"));
    assert!(
        eventually(|| async { backend_status(&bascule, "a").await["health"] == "unhealthy" }).await
    );
    let status = backend_status(&bascule, "a").await;
    assert_eq!(
        status["check"]["last-probe"]["result"], "failed",
        "{status}"
    );
    assert!(
        bascule
            .metric(
                "bascule_health_probes_total",
                &["backend=\"a\"", "result=\"failed\""]
            )
            .await
            >= 1.0
    );
    assert!(
        bascule
            .metric(
                "bascule_plugin_failures_total",
                &["test_health_header", "kind=\"trap\""]
            )
            .await
            >= 1.0
    );
}

#[tokio::test]
async fn a_backend_removed_by_reload_drains() {
    let old = HealthBackend::start("old").await;
    let new = HealthBackend::start("new").await;
    let first = single_pool_config("builtin:round-robin", "", [old.toml()]) + ADMIN;
    let mut bascule = Bascule::start(&first);
    // A slow request in flight on one connection to `old`, and a quick
    // one that leaves a second connection idle in the pool.
    let web = bascule.addr("web");
    let slow = tokio::spawn(async move { send(web, get("example.test", "/slow")).await });
    assert!(eventually(|| async { old.traffic() == 1 }).await);
    assert_eq!(served_by(&bascule, 1).await, ["old"]);
    assert_eq!(old.open_connections(), 2);

    let printed =
        bascule.reload(&(single_pool_config("builtin:round-robin", "", [new.toml()]) + ADMIN));
    assert!(printed.contains("bascule: reloaded"), "{printed}");
    assert!(
        eventually(|| async { old.open_connections() == 1 }).await,
        "the idle connection closes at once"
    );
    assert!(
        !slow.is_finished(),
        "closed while the slow request is still in flight"
    );
    assert!(
        served_by(&bascule, 5)
            .await
            .iter()
            .all(|name| name == "new")
    );
    let reply = slow.await.unwrap();
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "old"));
    assert!(
        eventually(|| async { old.open_connections() == 0 }).await,
        "the busy connection closes after its request"
    );
}

#[tokio::test]
async fn drain_by_hand_stops_new_work_and_undrain_restores_it() {
    let a = HealthBackend::start("a").await;
    let b = HealthBackend::start("b").await;
    let config = single_pool_config("builtin:round-robin", "", [a.toml(), b.toml()]) + ADMIN;
    let bascule = Bascule::start(&config);
    let post = |path: &str| {
        Request::post(path)
            .header("host", "admin")
            .body(Full::default())
            .unwrap()
    };
    let reply = send(bascule.addr("admin"), post("/pools/main/backends/b/drain")).await;
    assert_eq!(
        (reply.status.as_u16(), reply.body.as_str()),
        (200, "draining\n")
    );
    assert!(served_by(&bascule, 10).await.iter().all(|name| name == "a"));
    let missing = send(bascule.addr("admin"), post("/pools/main/backends/zz/drain")).await;
    assert_eq!(missing.status.as_u16(), 404);
    let reply = send(
        bascule.addr("admin"),
        post("/pools/main/backends/b/undrain"),
    )
    .await;
    assert_eq!(reply.body, "healthy\n");
    assert!(served_by(&bascule, 10).await.iter().any(|name| name == "b"));
}

#[tokio::test]
async fn panic_threshold_serves_every_backend_or_answers_503() {
    let a = HealthBackend::start("a").await;
    let b = HealthBackend::start("b").await;
    a.answer(500, "broken", None);
    b.answer(500, "broken", None);
    let health = "\n[pools.main.health]\ninterval = \"100ms\"\n";
    for (panic, expected) in [("panic-threshold = 50\n", 200), ("", 503)] {
        let config = single_pool_config(
            "builtin:round-robin",
            &format!("{panic}{health}"),
            [a.toml(), b.toml()],
        ) + ADMIN;
        let bascule = Bascule::start(&config);
        assert!(
            eventually(|| async {
                backend_status(&bascule, "a").await["health"] == "unhealthy"
                    && backend_status(&bascule, "b").await["health"] == "unhealthy"
            })
            .await
        );
        for _ in 0..6 {
            assert_eq!(
                bascule.get_root().await.status.as_u16(),
                expected,
                "{panic:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_frozen_backend_is_ejected_on_timeouts() {
    let a = HealthBackend::start("a").await;
    let frozen = SilentBackend::start().await;
    let pool = "response-timeout = \"200ms\"\n\n[pools.main.outlier-detection]\nconsecutive-timeouts = 2\n";
    let config = single_pool_config(
        "builtin:round-robin",
        pool,
        [a.toml(), backend_toml("frozen", frozen.address)],
    ) + ADMIN;
    let bascule = Bascule::start_with(&config, &["--workers", "1"]);
    let mut timeouts = 0;
    for _ in 0..8 {
        match bascule.get_root().await.status.as_u16() {
            200 => {}
            504 => timeouts += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        timeouts, 2,
        "ejected after exactly consecutive-timeouts 504s"
    );
    assert!(served_by(&bascule, 20).await.iter().all(|name| name == "a"));
    assert_eq!(
        bascule
            .metric(
                "bascule_outlier_ejections_total",
                &["backend=\"frozen\"", "reason=\"consecutive-timeouts\""]
            )
            .await,
        1.0
    );
}

#[tokio::test]
async fn tcp_pools_are_probed_with_tcp_expect() {
    // A Redis-like backend: `+PONG` to `PING`, or `-LOADING` while the
    // test says it is loading.
    let loading = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answers = Arc::clone(&loading);
    let (redis, _) = scripted_backend(move |mut stream| {
        let loading = Arc::clone(&answers);
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buffer = [0u8; 64];
            let Ok(read) = stream.read(&mut buffer).await else {
                return;
            };
            if &buffer[..read] == b"PING\r\n" {
                let answer: &[u8] = if loading.load(Ordering::SeqCst) {
                    b"-LOADING dataset in memory\r\n"
                } else {
                    b"+PONG\r\n"
                };
                let _ = stream.write_all(answer).await;
            }
        }
    })
    .await;
    let config = format!(
        r#"
[[listeners]]
name = "redis"
address = "127.0.0.1:0"
mode = "tcp"

  [[listeners.routes]]
  pool = "main"

[pools.main]
balancer = "builtin:round-robin"
backends = [{}]

[pools.main.health]
interval = "100ms"
unhealthy-threshold = 2
interpreter = "builtin:tcp-expect"
interpreter-options = {{ send = "PING\r\n", expect = "+PONG" }}
{ADMIN}"#,
        backend_toml("r1", redis)
    );
    let bascule = Bascule::start(&config);
    assert!(
        eventually(|| async {
            backend_status(&bascule, "r1").await["check"]["state"] == "healthy"
        })
        .await
    );
    assert_eq!(
        backend_status(&bascule, "r1").await["check"]["last-probe"]["reason"],
        "answered `+PONG`"
    );
    loading.store(true, Ordering::SeqCst);
    assert!(
        eventually(|| async { backend_status(&bascule, "r1").await["health"] == "unhealthy" })
            .await
    );
    assert_eq!(
        backend_status(&bascule, "r1").await["check"]["last-probe"]["reason"],
        "unexpected answer `-LOADING dataset in memory`"
    );
}

#[tokio::test]
async fn drain_timeout_ends_a_body_still_streaming_from_a_leaving_backend() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A backend that sends the head and one chunk, then streams nothing
    // more for a minute.
    let (streaming, _) = scripted_backend(|mut stream| async move {
        if read_request_head(&mut stream).await {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
                .await;
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    })
    .await;
    let config = single_pool_config(
        "builtin:round-robin",
        "drain-timeout = \"300ms\"",
        [backend_toml("streaming", streaming)],
    ) + ADMIN;
    let bascule = Bascule::start(&config);
    let mut client = tokio::net::TcpStream::connect(bascule.addr("web"))
        .await
        .unwrap();
    client
        .write_all(b"GET /stream HTTP/1.1\r\nhost: example.test\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    while !received.windows(5).any(|w| w == b"first") {
        let read = tokio::time::timeout(WAIT, client.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert!(read > 0, "closed before the first chunk");
        received.extend_from_slice(&buffer[..read]);
    }
    // Still streaming well past the drain timeout while the backend stays.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        client.try_read(&mut buffer).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "nothing ends the body while its backend stays"
    );
    let drained_at = tokio::time::Instant::now();
    assert_eq!(drain_by_hand(&bascule, "main", "streaming").await, 200);
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match client.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the body is cut after the drain timeout");
    assert!(
        drained_at.elapsed() >= Duration::from_millis(300),
        "cut {:?} after the drain, before its timeout",
        drained_at.elapsed()
    );
    assert!(
        !received.windows(5).any(|w| w == b"0\r\n\r\n"),
        "a cut body must not look complete"
    );
}
