//! Connection lifetime limits on HTTP listeners: silent, idle, slow-body
//! and non-reading clients are cut off; the connection cap refuses cleanly
//! and recovers; running out of file descriptors does not spin.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// One listener with `listener_extra` keys, in front of `backend`.
fn config(listener_extra: &str, backend: impl std::fmt::Display) -> String {
    with_listener_keys(
        single_pool_config("builtin:round-robin", ADMIN, [backend_toml("b", backend)]),
        listener_extra,
    )
}

/// Whether the peer closes `stream` within [`WAIT`] (reads until EOF or an
/// error); what was read meanwhile.
async fn closed_by_peer(stream: &mut TcpStream) -> (bool, usize) {
    let mut total = 0;
    let mut buffer = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    })
    .await
    .is_ok();
    (closed, total)
}

#[tokio::test]
async fn a_connection_that_never_speaks_is_closed_after_the_first_byte_timeout() {
    let backend = RecordingBackend::start("b").await;
    let bascule = Bascule::start(&config("first-byte-timeout = \"200ms\"", backend.address));
    let mut silent = TcpStream::connect(bascule.addr("web")).await.unwrap();
    let (closed, read) = closed_by_peer(&mut silent).await;
    assert!(closed && read == 0, "closed {closed}, {read} bytes");
    let counted = bascule
        .metric(
            "bascule_http_connections_closed_total",
            &["reason=\"first-byte-timeout\""],
        )
        .await;
    assert_eq!(counted, 1.0);
    // A client that speaks is served as before.
    assert_eq!(send(bascule.addr("web"), get("a", "/")).await.status, 200);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_and_http2_gets_goaway() {
    let backend = RecordingBackend::start("b").await;
    let bascule = Bascule::start(&config("keep-alive-timeout = \"300ms\"", backend.address));
    let mut h1 = TcpStream::connect(bascule.addr("web")).await.unwrap();
    h1.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut response = [0u8; 12];
    h1.read_exact(&mut response).await.unwrap();
    assert_eq!(&response, b"HTTP/1.1 200");
    let (closed, _) = closed_by_peer(&mut h1).await;
    assert!(closed, "an idle HTTP/1.1 connection stayed open");

    let stream = TcpStream::connect(bascule.addr("web")).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::get("http://a/")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let reply = sender.send_request(request).await.unwrap();
    assert_eq!(reply.status(), 200);
    drop(reply);
    // The connection future ends once the server's GOAWAY closed it.
    tokio::time::timeout(WAIT, connection)
        .await
        .expect("an idle HTTP/2 connection stayed open")
        .unwrap()
        .unwrap();
    let counted = bascule
        .metric(
            "bascule_http_connections_closed_total",
            &["reason=\"keep-alive-timeout\""],
        )
        .await;
    assert_eq!(counted, 2.0);
}

#[tokio::test]
async fn a_half_closed_client_gets_its_response() {
    let backend = RecordingBackend::start("b").await;
    let bascule = Bascule::start(&config("", backend.address));
    // Half-closed after the request: still answered.
    let mut half = TcpStream::connect(bascule.addr("web")).await.unwrap();
    half.write_all(b"GET /half HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    half.shutdown().await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, half.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(backend.seen().iter().any(|s| s.uri == "/half"));
}

/// A backend that reads a request head and then waits; counts the
/// connections the proxy has closed on it.
async fn waiting_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    scripted_backend(|mut stream| async move {
        if read_request_head(&mut stream).await {
            let _ = stream.read_to_end(&mut Vec::new()).await;
        }
    })
    .await
}

#[tokio::test]
async fn a_stalled_request_body_releases_its_backend_connection() {
    let (backend, closed) = waiting_backend().await;
    let bascule = Bascule::start(&config("request-body-timeout = \"300ms\"", backend));
    let mut slow = TcpStream::connect(bascule.addr("web")).await.unwrap();
    slow.write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(WAIT, slow.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    let released = eventually(|| async { closed.load(Ordering::SeqCst) == 1 }).await;
    assert!(released, "the backend connection stayed open after the 408");
}

/// A backend answering every request with `size` bytes. Its accept queue
/// is deep enough for a thousand connections opened at once.
async fn large_backend(size: usize) -> SocketAddr {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let socket: TcpListener = socket.listen(4096).unwrap();
    let address = socket.local_addr().unwrap();
    let body = vec![b'x'; size];
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = socket.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                if !read_request_head(&mut stream).await {
                    return;
                }
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    address
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_after_the_send_timeout() {
    let size = 32 * 1024 * 1024;
    let backend = large_backend(size).await;
    let bascule = Bascule::start(&config("send-timeout = \"500ms\"", backend));
    let mut stalled = TcpStream::connect(bascule.addr("web")).await.unwrap();
    stalled
        .write_all(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    // Read nothing until the proxy has given up, then see what is left.
    let cut = eventually(|| async {
        bascule
            .metric("bascule_http_requests_total", &["class=\"2xx\""])
            .await
            >= 1.0
    })
    .await;
    assert!(cut, "the response never started");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (closed, read) = closed_by_peer(&mut stalled).await;
    assert!(closed, "the stalled client was never cut off");
    assert!(read < size, "the whole body arrived: {read} bytes");
}

/// The memory 1,000 clients that stop reading a large response pin, per
/// client: within 2× HAProxy's (about 51 KiB each measured on this machine
/// class, see BENCHMARKS.md).
#[tokio::test]
async fn a_thousand_stalled_readers_pin_bounded_memory() {
    let clients: u32 = 1000;
    let backend = large_backend(4 * 1024 * 1024).await;
    // The backend's accept loop shares this test's thread: give it time.
    let config = config("send-timeout = \"10m\"", backend)
        .replace("[pools.main]", "[pools.main]\nconnect-timeout = \"10s\"");
    let bascule = Bascule::start_with(&config, &["--workers", "1"]);
    // Warm up allocator and pools, then measure from here.
    assert_eq!(send(bascule.addr("web"), get("a", "/")).await.status, 200);
    let before = bascule.rss_kib();
    let mut stalled = Vec::new();
    for _ in 0..clients {
        let mut stream = TcpStream::connect(bascule.addr("web")).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        stalled.push(stream);
    }
    let started = eventually_within(3 * WAIT, Duration::from_millis(200), || async {
        bascule
            .metric("bascule_http_requests_total", &["class=\"2xx\""])
            .await
            >= f64::from(clients + 1)
    })
    .await;
    if !started {
        let reply = send(bascule.addr("admin"), get("admin", "/metrics")).await;
        let counts: Vec<&str> = reply
            .body
            .lines()
            .filter(|l| l.starts_with("bascule_http") || l.starts_with("bascule_upstream"))
            .collect();
        panic!("not every response started: {counts:#?}");
    }
    // Let buffers fill as far as they will.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let per_client = (bascule.rss_kib().saturating_sub(before)) / u64::from(clients);
    eprintln!("{per_client} KiB per stalled reader");
    assert!(per_client <= 100, "{per_client} KiB per stalled reader");
    drop(stalled);
}

#[tokio::test]
async fn past_max_connections_clients_get_503_until_one_closes() {
    let backend = RecordingBackend::start("b").await;
    let bascule = Bascule::start(&config("max-connections = 2", backend.address));
    // Two connections held open mid-request.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(bascule.addr("web")).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
            .await
            .unwrap();
        held.push(stream);
    }
    let refused = eventually(|| async {
        let mut third = TcpStream::connect(bascule.addr("web")).await.unwrap();
        let _ = third
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await;
        let mut response = Vec::new();
        let _ = tokio::time::timeout(WAIT, third.read_to_end(&mut response)).await;
        let response = String::from_utf8_lossy(&response);
        response.starts_with("HTTP/1.1 503") && response.contains("too many connections")
    })
    .await;
    assert!(refused, "a third connection was not refused with 503");
    let counted = bascule
        .metric("bascule_http_connections_refused_total", &[])
        .await;
    assert!(counted >= 1.0);
    drop(held);
    let recovered =
        eventually(|| async { send(bascule.addr("web"), get("a", "/")).await.status == 200 }).await;
    assert!(
        recovered,
        "no connection was served after the held ones closed"
    );
}

#[tokio::test]
async fn out_of_file_descriptors_accept_backs_off_and_recovers() {
    let backend = RecordingBackend::start("b").await;
    let bascule = Bascule::start_with_open_files(&config("", backend.address), 64);
    // Hold enough connections to exhaust the descriptors.
    let mut held = Vec::new();
    for _ in 0..80 {
        if let Ok(stream) = TcpStream::connect(bascule.addr("web")).await {
            held.push(stream);
        }
    }
    // Neither listener can accept now (the admin one included), so the
    // failures are counted at the end; give the accept loop time to hit
    // the limit first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu_before = bascule.cpu_time();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let spent = bascule.cpu_time().saturating_sub(cpu_before);
    assert!(
        spent < Duration::from_millis(300),
        "{spent:?} of CPU in a second while out of descriptors"
    );
    drop(held);
    let recovered =
        eventually(|| async { send(bascule.addr("web"), get("a", "/")).await.status == 200 }).await;
    assert!(
        recovered,
        "accepting did not resume after descriptors freed up"
    );
    assert!(bascule.metric("bascule_accept_failures_total", &[]).await >= 1.0);
}

/// `bascule run` on `config` with `RUST_LOG` set to `rust_log` (removed
/// when `None`), its stderr read line by line on a thread.
fn run_with_stderr(
    dir: &std::path::Path,
    config: &str,
    rust_log: Option<&str>,
) -> (KilledOnDrop, std::sync::mpsc::Receiver<String>) {
    let path = dir.join("bascule.toml");
    std::fs::write(&path, config).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_bascule"));
    command.args(["run", "-c"]).arg(&path);
    match rust_log {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command.env_remove("RUST_LOG"),
    };
    spawn_reading_stderr(&mut command)
}

/// The first line of `lines` that contains `text`, waiting at most
/// [`WAIT`] for each.
fn first_line_with(lines: &std::sync::mpsc::Receiver<String>, text: &str) -> Option<String> {
    std::iter::from_fn(|| lines.recv_timeout(WAIT).ok()).find(|line| line.contains(text))
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let config = single_pool_config(
        "builtin:round-robin",
        "",
        ["{ address = \"127.0.0.1:9\" }".to_owned()],
    );
    let (_bascule, lines) = run_with_stderr(dir.path(), &config, Some("info"));
    let line = first_line_with(&lines, "listening")
        .expect("an info line saying the listener is listening");
    assert!(!line.contains('\u{1b}'), "colour codes in a pipe: {line:?}");
    assert!(line.contains("INFO"), "{line}");
}

/// `[log] format = "json"`: every line one JSON object with a timestamp,
/// a reload's errors among them.
#[test]
fn json_logs_carry_timestamps_and_reload_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = single_pool_config(
        "builtin:round-robin",
        "\n[log]\nlevel = \"info\"\nformat = \"json\"\n",
        ["{ address = \"127.0.0.1:9\" }".to_owned()],
    );
    let (bascule, lines) = run_with_stderr(dir.path(), &config, None);
    let listening = first_line_with(&lines, "listening").expect("a line saying it listens");
    let parsed: serde_json::Value = serde_json::from_str(&listening).unwrap();
    assert_eq!(parsed["level"], "INFO", "{parsed}");
    assert!(
        parsed["timestamp"].as_str().unwrap().starts_with("20"),
        "{parsed}"
    );

    std::fs::write(dir.path().join("bascule.toml"), "[[listeners]]\nname = 1\n").unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &bascule.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rejected = first_line_with(&lines, "reload rejected").expect("the reload's verdict logged");
    let parsed: serde_json::Value = serde_json::from_str(&rejected).unwrap();
    assert_eq!(parsed["level"], "WARN", "{parsed}");
    assert!(parsed["timestamp"].is_string(), "{parsed}");
    // Every error in one line, whatever their number.
    let errors = parsed["errors"].as_str().unwrap();
    assert!(
        errors.contains("bascule.toml:2:") && errors.contains("listeners[0].name"),
        "{errors}"
    );
}
