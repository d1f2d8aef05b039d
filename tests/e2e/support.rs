//! Test support: recording backends, the real `bascule` binary started
//! with a config, and a small HTTP client. Everything binds 127.0.0.1 on
//! port 0; every wait is bounded; processes are killed by PID on drop.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// What a recording backend saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A backend on 127.0.0.1 that answers with its name and records every
/// request it receives.
pub struct RecordingBackend {
    pub name: String,
    pub address: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl RecordingBackend {
    pub async fn start(name: &str) -> RecordingBackend {
        RecordingBackend::start_slow(name, Duration::ZERO).await
    }

    /// A backend that waits `delay` after receiving each request before it
    /// answers.
    pub async fn start_slow(name: &str, delay: Duration) -> RecordingBackend {
        let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
        RecordingBackend::serve_on(name, socket, delay)
    }

    /// [`RecordingBackend::start_slow`] on `address` (another loopback
    /// address, a port chosen by the test); `None` when it is taken.
    pub async fn start_at(
        name: &str,
        address: SocketAddr,
        delay: Duration,
    ) -> Option<RecordingBackend> {
        let socket = TcpListener::bind(address).await.ok()?;
        Some(RecordingBackend::serve_on(name, socket, delay))
    }

    fn serve_on(name: &str, socket: TcpListener, delay: Duration) -> RecordingBackend {
        let address = socket.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(serve(
            socket,
            name.to_owned(),
            delay,
            Arc::clone(&seen),
            Arc::clone(&connections),
        ));
        RecordingBackend {
            name: name.to_owned(),
            address,
            seen,
            connections,
            task,
        }
    }

    /// How many TCP connections the backend has accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// A TOML inline table for this backend.
    pub fn toml(&self) -> String {
        backend_toml(&self.name, self.address)
    }
}

/// A TOML inline table for a backend named `name` at `address`.
pub fn backend_toml(name: &str, address: impl std::fmt::Display) -> String {
    format!("{{ name = \"{name}\", address = \"{address}\" }}")
}

impl Drop for RecordingBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    socket: TcpListener,
    name: String,
    delay: Duration,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
) {
    loop {
        let Ok((stream, _)) = socket.accept().await else {
            continue;
        };
        connections.fetch_add(1, Ordering::SeqCst);
        let name = name.clone();
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let name = name.clone();
                let seen = Arc::clone(&seen);
                async move {
                    let (parts, body) = request.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    seen.lock().unwrap().push(Seen {
                        method: parts.method.to_string(),
                        uri: parts.uri.to_string(),
                        headers: parts.headers,
                        body,
                    });
                    tokio::time::sleep(delay).await;
                    // Names itself in a header too, for filters to act on.
                    let mut response = Response::new(Full::new(Bytes::from(name.clone())));
                    if let Ok(value) = http::HeaderValue::from_str(&name) {
                        response.headers_mut().insert("x-backend", value);
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A backend that accepts connections and reads requests but never
/// answers; dropped with the test.
pub struct SilentBackend {
    pub address: SocketAddr,
    task: JoinHandle<()>,
}

impl SilentBackend {
    pub async fn start() -> SilentBackend {
        let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = socket.accept().await {
                held.push(stream);
            }
        });
        SilentBackend { address, task }
    }
}

impl Drop for SilentBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The one bounded wait on real sockets and processes: polls `check`
/// every 5 ms until it holds or [`WAIT`] has passed; whether it held.
pub async fn eventually<F, Fut>(check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_every(Duration::from_millis(5), check).await
}

/// [`eventually`], polling every `interval`: for checks that start work
/// each time (one more request in flight per poll).
pub async fn eventually_every<F, Fut>(interval: Duration, check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(WAIT, interval, check).await
}

/// [`eventually_every`] with a bound of its own, for waits on a thousand
/// connections.
pub async fn eventually_within<F, Fut>(bound: Duration, interval: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(interval).await;
    }
}

/// Waits (bounded) until connecting to `address` is refused; whether it was.
pub async fn eventually_refused(address: SocketAddr) -> bool {
    eventually(|| async { TcpStream::connect(address).await.is_err() }).await
}

/// A loopback address that refuses connections for as long as this lives:
/// a socket bound there without listening holds the port, so no other test
/// running meanwhile is given it (a port bound and released could be).
pub struct ClosedPort {
    pub address: SocketAddr,
    _held: tokio::net::TcpSocket,
}

pub async fn closed_port() -> ClosedPort {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    ClosedPort {
        address: socket.local_addr().unwrap(),
        _held: socket,
    }
}

/// A loopback port free a moment ago, for a listener the test lets
/// bascule bind at a known port.
pub async fn released_port() -> u16 {
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    socket.local_addr().unwrap().port()
}

/// The real `bascule` binary serving a config, killed on drop.
pub struct Bascule {
    child: Child,
    listeners: HashMap<String, SocketAddr>,
    lines: std::sync::mpsc::Receiver<String>,
    config_path: PathBuf,
    _dir: tempfile::TempDir,
}

/// A child process, killed by PID however the test ends (a failed
/// assertion included).
pub struct KilledOnDrop(pub Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real Redis server (Debian's `redis-server`) on a loopback port,
/// without persistence, killed on drop.
pub struct Redis {
    pub address: SocketAddr,
    _process: KilledOnDrop,
}

impl Redis {
    /// A Redis server, a replica of `master` when given. Panics, naming
    /// the package, when redis-server is not installed.
    pub async fn start(master: Option<SocketAddr>) -> Redis {
        // redis-server cannot take port 0: probe a free one, and try again
        // if another process took it meanwhile.
        for _ in 0..5 {
            let port = released_port().await;
            let mut command = Command::new("redis-server");
            command.args(["--bind", "127.0.0.1", "--port", &port.to_string()]);
            command.args(["--save", "", "--appendonly", "no", "--daemonize", "no"]);
            command.args(["--dir", &std::env::temp_dir().display().to_string()]);
            if let Some(master) = master {
                command.args([
                    "--replicaof",
                    &master.ip().to_string(),
                    &master.port().to_string(),
                ]);
            }
            let child = match command.stdout(Stdio::null()).stderr(Stdio::null()).spawn() {
                Ok(child) => child,
                Err(e) => panic!("cannot run redis-server ({e}): install Debian's redis-server"),
            };
            let mut process = KilledOnDrop(child);
            let address = SocketAddr::from(([127, 0, 0, 1], port));
            let answers = eventually(|| async {
                redis_command(address, "PING").await.as_deref() == Some("+PONG")
            });
            if answers.await {
                return Redis {
                    address,
                    _process: process,
                };
            }
            let _ = process.0.kill();
        }
        panic!("redis-server did not start on a free loopback port");
    }

    /// Sends the inline `command`; the first line of the answer.
    pub async fn command(&self, command: &str) -> Option<String> {
        redis_command(self.address, command).await
    }
}

/// Sends the inline Redis `command` to `address` on a new connection; the
/// first line of the answer, `None` when nothing answered.
pub async fn redis_command(address: SocketAddr, command: &str) -> Option<String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = TcpStream::connect(address).await.ok()?;
        stream
            .write_all(format!("{command}\r\n").as_bytes())
            .await
            .ok()?;
        let mut line = String::new();
        tokio::io::BufReader::new(stream)
            .read_line(&mut line)
            .await
            .ok()?;
        (!line.is_empty()).then(|| line.trim_end().to_owned())
    };
    tokio::time::timeout(WAIT, exchange).await.ok().flatten()
}

/// The admin listener of a config (`[admin]` on a loopback port 0).
pub const ADMIN: &str = "\n[admin]\naddress = \"127.0.0.1:0\"\n";

/// Backend `backend` of pool `main` as `/status` shows it; `null` when
/// absent.
pub async fn backend_status(bascule: &Bascule, backend: &str) -> serde_json::Value {
    let reply = send(bascule.addr("admin"), get("admin", "/status")).await;
    let status: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    status["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|pool| pool["name"] == "main")
        .and_then(|pool| pool["backends"].as_array())
        .and_then(|backends| backends.iter().find(|b| b["id"] == backend))
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// A real DNS server (Debian's `dnsmasq`) on a loopback UDP and TCP port,
/// answering only the A records it was given, killed on drop.
pub struct Dnsmasq {
    pub address: SocketAddr,
    _process: KilledOnDrop,
}

impl Dnsmasq {
    /// Serves `records` (`name`, IPv4 address; a name may repeat for
    /// several records). Panics, naming the package, when dnsmasq is not
    /// installed.
    pub fn start(records: &[(&str, std::net::Ipv4Addr)]) -> Dnsmasq {
        // dnsmasq cannot take port 0: probe a free one, and try again if
        // another process took it meanwhile.
        for _ in 0..5 {
            let port = std::net::UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            // /usr/sbin is not on every user's PATH.
            let program = ["/usr/sbin/dnsmasq", "dnsmasq"]
                .into_iter()
                .find(|p| Path::new(p).is_file())
                .unwrap_or("dnsmasq");
            let mut command = Command::new(program);
            command.args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--pid-file=",
                "--log-facility=-",
                &format!("--port={port}"),
            ]);
            for (name, ip) in records {
                command.arg(format!("--host-record={name},{ip}"));
            }
            let mut child = match command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn() {
                Ok(child) => child,
                Err(e) => panic!("cannot run dnsmasq ({e}): install Debian's dnsmasq-base"),
            };
            let stderr = child.stderr.take().unwrap();
            let (sender, lines) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
            let process = KilledOnDrop(child);
            // "started" comes once its sockets are bound; a bind failure
            // ends the process (and the channel) instead.
            while let Ok(line) = lines.recv_timeout(WAIT) {
                if line.contains("started, version") {
                    return Dnsmasq {
                        address: SocketAddr::from(([127, 0, 0, 1], port)),
                        _process: process,
                    };
                }
            }
        }
        panic!("dnsmasq did not start on a free loopback port");
    }
}

/// Starts `command` with its stdout and its log (errors, and the reload
/// verdicts the control task logs) read line by line on threads; the
/// lines of both arrive on the returned channel, and the log's are copied
/// to the test's stderr.
pub fn spawn_with_lines(
    command: &mut Command,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = command
        .env(
            "RUST_LOG",
            std::env::var("BASCULE_TEST_LOG")
                .unwrap_or_else(|_| "error,bascule::control=warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    forward_lines(child.stdout.take().unwrap(), sender.clone(), false);
    forward_lines(child.stderr.take().unwrap(), sender, true);
    (child, lines)
}

/// Starts `command` with stdout discarded and its stderr read line by line
/// on a thread; killed when the returned guard drops.
pub fn spawn_reading_stderr(
    command: &mut Command,
) -> (KilledOnDrop, std::sync::mpsc::Receiver<String>) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    forward_lines(child.stderr.take().unwrap(), sender, false);
    (KilledOnDrop(child), lines)
}

/// Sends each line `reader` yields to `lines` from a thread of its own
/// (copying it to the test's stderr when `echo`), until the reader ends.
pub fn forward_lines(
    reader: impl std::io::Read + Send + 'static,
    lines: std::sync::mpsc::Sender<String>,
    echo: bool,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if echo {
                eprintln!("{line}");
            }
            // A receiver gone (the test moved on) still lets the child
            // write: keep draining.
            let _ = lines.send(line);
        }
    });
}

impl Bascule {
    /// Writes `config` to a file, runs `bascule run -c FILE`, and waits
    /// until every listener reports its address.
    pub fn start(config: &str) -> Bascule {
        Bascule::start_with(config, &[])
    }

    /// [`Bascule::start`] with extra global options (`--workers 1`).
    pub fn start_with(config: &str, options: &[&str]) -> Bascule {
        Bascule::start_command(config, Command::new(env!("CARGO_BIN_EXE_bascule")), options)
    }

    /// [`Bascule::start`] allowed only `files` open file descriptors
    /// (util-linux `prlimit`, which then runs bascule in its place).
    pub fn start_with_open_files(config: &str, files: u32) -> Bascule {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={files}:{files}"))
            .arg(env!("CARGO_BIN_EXE_bascule"));
        Bascule::start_command(config, command, &[])
    }

    fn start_command(config: &str, mut command: Command, options: &[&str]) -> Bascule {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bascule.toml");
        std::fs::write(&path, config).unwrap();
        command.args(options).args(["run", "-c"]).arg(&path);
        let (child, lines) = spawn_with_lines(&mut command);
        let mut bascule = Bascule {
            child,
            listeners: HashMap::new(),
            lines,
            config_path: path,
            _dir: dir,
        };
        let expected = config.matches("[[listeners]]").count() + config.matches("[admin]").count();
        while bascule.listeners.len() < expected {
            let Ok(line) = bascule.lines.recv_timeout(WAIT) else {
                let status = bascule.child.try_wait().unwrap();
                panic!("bascule did not report its listeners (exit status {status:?})");
            };
            bascule.note_listener(&line);
        }
        bascule
    }

    /// Records "bascule: listener NAME serving http://ADDR" (or tcp://) and
    /// "bascule: admin serving http://ADDR" lines.
    fn note_listener(&mut self, line: &str) {
        let announced = match line.strip_prefix("bascule: listener ") {
            Some(rest) => rest
                .split_once(" serving http://")
                .or_else(|| rest.split_once(" serving https://"))
                .or_else(|| rest.split_once(" serving tcp://"))
                .or_else(|| rest.split_once(" serving udp://")),
            None => line
                .strip_prefix("bascule: admin serving http://")
                .map(|a| ("admin", a)),
        };
        if let Some((name, address)) = announced {
            self.listeners
                .insert(name.to_owned(), address.parse().unwrap());
        }
    }

    /// The process's resident memory, from `/proc`.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Context switches (voluntary and not) of each thread, by thread name:
    /// how often each has woken up.
    pub fn wakeups(&self) -> Vec<(String, u64)> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id())).unwrap();
        tasks
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
            .map(|status| {
                let field = |name: &str| {
                    status
                        .lines()
                        .find_map(|line| line.strip_prefix(name))
                        .map(str::trim)
                        .unwrap_or_default()
                        .to_owned()
                };
                let switches = |name: &str| field(name).parse::<u64>().unwrap_or(0);
                (
                    field("Name:"),
                    switches("voluntary_ctxt_switches:") + switches("nonvoluntary_ctxt_switches:"),
                )
            })
            .collect()
    }

    /// CPU time the process has used (user + system), from `/proc`.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the command name, which ends with the last `)`.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // USER_HZ is 100 on Linux.
        Duration::from_millis(ticks * 10)
    }

    /// Sends a signal (`"TERM"`, `"HUP"`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "bascule did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Writes `config` over the config file, without reloading.
    pub fn rewrite_config(&self, config: &str) {
        std::fs::write(&self.config_path, config).unwrap();
    }

    /// Rewrites the config file, sends SIGHUP, and returns what bascule
    /// printed up to and including its verdict line.
    pub fn reload(&mut self, config: &str) -> String {
        self.rewrite_config(config);
        self.signal("HUP");
        let mut printed = Vec::new();
        // The verdict on stdout; a rejection's errors are in the log line
        // the control task writes, which may come before or after it.
        let (mut verdict, mut logged) = (None::<bool>, false);
        while verdict.is_none() || (verdict == Some(false) && !logged) {
            let line = self
                .lines
                .recv_timeout(WAIT)
                .expect("no reload verdict from bascule");
            self.note_listener(&line);
            if line.starts_with("bascule: reloaded") {
                verdict = Some(true);
            } else if line.starts_with("bascule: reload rejected") {
                verdict = Some(false);
            } else if line.contains("reload rejected") && line.contains("errors=") {
                logged = true;
            }
            printed.push(line);
        }
        printed.join("\n")
    }

    /// The value of the first sample of `metric` on the admin listener
    /// whose labels contain every one of `labels` (`kind="timeout"`); 0
    /// when there is none.
    pub async fn metric(&self, metric: &str, labels: &[&str]) -> f64 {
        self.exported(metric, labels).await.unwrap_or(0.0)
    }

    /// The value of a series of `metric` with all of `labels`, or `None`
    /// when no such series is exported: for asserting that a counter is
    /// registered and still 0.
    pub async fn exported(&self, metric: &str, labels: &[&str]) -> Option<f64> {
        let reply = send(self.addr("admin"), get("admin", "/metrics")).await;
        assert_eq!(reply.status, 200);
        reply
            .body
            .lines()
            .filter(|line| {
                line.starts_with(&format!("{metric}{{")) || line.starts_with(&format!("{metric} "))
            })
            .find(|line| labels.iter().all(|label| line.contains(label)))
            .and_then(|line| line.rsplit(' ').next())
            .map(|value| value.parse().unwrap())
    }

    /// `GET /` with `Host: example.test` to listener `web`, on a fresh
    /// connection.
    pub async fn get_root(&self) -> Reply {
        send(self.addr("web"), get("example.test", "/")).await
    }

    /// The address of listener `name`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.listeners[name]
    }
}

impl Drop for Bascule {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `bascule check -c FILE` on a config written to `dir`, returning
/// success and stderr.
pub fn check(dir: &Path, file_name: &str, config: &str) -> (bool, String) {
    let path = dir.join(file_name);
    std::fs::write(&path, config).unwrap();
    check_file(&path)
}

/// Runs `bascule check -c PATH`.
pub fn check_file(path: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bascule"))
        .args(["check", "-c"])
        .arg(path)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// Drains `backend` of `pool` by hand through the admin API; the status.
pub async fn drain_by_hand(bascule: &Bascule, pool: &str, backend: &str) -> u16 {
    let drain = Request::post(format!("/pools/{pool}/backends/{backend}/drain"))
        .header("host", "admin")
        .body(Full::default())
        .unwrap();
    send(bascule.addr("admin"), drain).await.status.as_u16()
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn send(address: SocketAddr, request: Request<Full<Bytes>>) -> Reply {
    tokio::time::timeout(WAIT, async {
        let stream = TcpStream::connect(address).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        reply(sender.send_request(request).await.unwrap()).await
    })
    .await
    .expect("request timed out")
}

/// One HTTP/2 (prior knowledge, cleartext) request on a fresh connection.
pub async fn send_h2(address: SocketAddr, request: Request<Full<Bytes>>) -> Reply {
    tokio::time::timeout(WAIT, async {
        let mut sender = h2c_client(address).await;
        reply(sender.send_request(request).await.unwrap()).await
    })
    .await
    .expect("request timed out")
}

/// A fresh HTTP/2 (prior knowledge, cleartext) connection to `address`,
/// driven by a task of its own.
pub async fn h2c_client<B>(address: SocketAddr) -> hyper::client::conn::http2::SendRequest<B>
where
    B: http_body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(address).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

/// A response read whole, as the tests look at it.
pub async fn reply(response: Response<Incoming>) -> Reply {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// `GET path` with a `Host` header.
pub fn get(host: &str, path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", host)
        .body(Full::default())
        .unwrap()
}

/// The directory holding the test plugins built by `host/build.rs`.
pub fn test_plugin(name: &str) -> PathBuf {
    Path::new(env!("BASCULE_TEST_PLUGIN_DIR")).join(format!("{}.wasm", name.replace('-', "_")))
}

/// A config with one listener `web` whose catch-all route goes to pool
/// `main`, balanced by `balancer` (with extra pool lines) over `backends`
/// (TOML inline tables, see [`RecordingBackend::toml`]).
pub fn single_pool_config(
    balancer: &str,
    extra: &str,
    backends: impl IntoIterator<Item = String>,
) -> String {
    single_pool_config_on("", balancer, extra, backends)
}

/// `config` with `keys` (`max-headers = 10`, one per line) on its first
/// listener, the one [`single_pool_config`] writes.
pub fn with_listener_keys(config: String, keys: &str) -> String {
    let address = "address = \"127.0.0.1:0\"\n";
    config.replacen(address, &format!("{address}{keys}\n"), 1)
}

/// [`single_pool_config`] with `listener_extra` (sub-tables of the
/// listener, such as `[listeners.tls]`) after its route.
pub fn single_pool_config_on(
    listener_extra: &str,
    balancer: &str,
    extra: &str,
    backends: impl IntoIterator<Item = String>,
) -> String {
    let list: Vec<String> = backends.into_iter().collect();
    format!(
        r#"
[[listeners]]
name = "web"
address = "127.0.0.1:0"

  [[listeners.routes]]
  pool = "main"
{listener_extra}
[pools.main]
balancer = "{balancer}"
backends = [{}]
{extra}
"#,
        list.join(", ")
    )
}

/// Reads `stream` until the end of a request head (bounded by the peer:
/// a closed or failed connection ends it); whether a whole head came.
pub async fn read_request_head(stream: &mut TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    true
}

/// One HTTP listener `web` with three routes: host `secret.example` to
/// pool `secret`, path prefix `/admin` to pool `admin`, the rest to pool
/// `public`; each pool has the one backend given. `listener_extra` and
/// `extra` are added to the listener and at the end.
pub fn three_route_config(
    public: impl std::fmt::Display,
    secret: impl std::fmt::Display,
    admin: impl std::fmt::Display,
    listener_extra: &str,
    extra: &str,
) -> String {
    format!(
        r#"
[[listeners]]
name = "web"
address = "127.0.0.1:0"
{listener_extra}

  [[listeners.routes]]
  host = "secret.example"
  pool = "secret"

  [[listeners.routes]]
  path-prefix = "/admin"
  pool = "admin"

  [[listeners.routes]]
  pool = "public"

[pools.public]
balancer = "builtin:round-robin"
backends = [{public}]

[pools.secret]
balancer = "builtin:round-robin"
backends = [{secret}]

[pools.admin]
balancer = "builtin:round-robin"
backends = [{admin}]
{extra}
"#
    )
}

/// A hand-written backend on 127.0.0.1: `serve` handles each connection.
/// Returns its address and how many connections have ended.
pub async fn scripted_backend<F, Fut>(serve: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    let ended = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&ended);
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        while let Ok((stream, _)) = socket.accept().await {
            let (serve, counted) = (Arc::clone(&serve), Arc::clone(&counted));
            tokio::spawn(async move {
                serve(stream).await;
                counted.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (address, ended)
}
