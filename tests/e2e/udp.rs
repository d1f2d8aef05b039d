//! The UDP proxy through the real binary, on 127.0.0.1: flows stick to
//! their backend and answers come back from the listener's address;
//! `responses`, `idle-timeout`, `max-flows`, `per-datagram` and
//! `affinity` do what they say; plugins see `protocol = udp`; and a real DNS server
//! (Debian's dnsmasq) answers real queries through Bascule.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::support::*;

/// (source, payload) of every datagram a backend received.
type Received = Arc<Mutex<Vec<(SocketAddr, Vec<u8>)>>>;

/// A UDP backend on 127.0.0.1 that records who sent what and, unless
/// `silent`, answers each datagram with `NAME:PAYLOAD`.
struct UdpBackend {
    name: &'static str,
    address: SocketAddr,
    seen: Received,
    /// Set: the backend stops answering (it still records).
    mute: Arc<std::sync::atomic::AtomicBool>,
    served: tokio::task::JoinHandle<()>,
}

impl UdpBackend {
    async fn start(name: &'static str) -> UdpBackend {
        UdpBackend::start_with(name, false).await
    }

    async fn start_with(name: &'static str, silent: bool) -> UdpBackend {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&seen);
        let mute = Arc::new(std::sync::atomic::AtomicBool::new(silent));
        let muted = Arc::clone(&mute);
        let served = tokio::spawn(async move {
            let mut buffer = vec![0u8; 65_535];
            while let Ok((length, source)) = socket.recv_from(&mut buffer).await {
                let payload = buffer[..length].to_vec();
                if !muted.load(std::sync::atomic::Ordering::SeqCst) {
                    let mut answer = format!("{name}:").into_bytes();
                    answer.extend_from_slice(&payload);
                    let _ = socket.send_to(&answer, source).await;
                }
                recorded.lock().unwrap().push((source, payload));
            }
        });
        UdpBackend {
            name,
            address,
            seen,
            mute,
            served,
        }
    }

    fn toml(&self) -> String {
        backend_toml(self.name, self.address)
    }

    fn received(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The distinct sources (Bascule's flow sockets) it heard from.
    fn sources(&self) -> HashSet<SocketAddr> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(source, _)| *source)
            .collect()
    }
}

impl Drop for UdpBackend {
    fn drop(&mut self) {
        self.served.abort();
    }
}

/// A UDP listener `dns` (with `listener_extra` keys) sending to pool
/// `main` of `backends`, balanced by `balancer`.
fn udp_config(balancer: &str, listener_extra: &str, backends: &[String]) -> String {
    format!(
        r#"
[[listeners]]
name = "dns"
address = "127.0.0.1:0"
mode = "udp"
{listener_extra}

  [[listeners.routes]]
  pool = "main"

[pools.main]
balancer = "{balancer}"
backends = [{}]
{ADMIN}"#,
        backends.join(", ")
    )
}

/// `bascule_udp_flows_closed_total` of listener `dns` for `reason`.
async fn flows_closed(bascule: &Bascule, reason: &str) -> f64 {
    let reason = format!("reason=\"{reason}\"");
    bascule
        .metric(
            "bascule_udp_flows_closed_total",
            &["listener=\"dns\"", &reason],
        )
        .await
}

/// A client socket on 127.0.0.1.
async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// Sends `payload` to `to` and waits up to `wait` for one answer: its
/// text and where it came from.
async fn ask(
    socket: &UdpSocket,
    to: SocketAddr,
    payload: &str,
    wait: Duration,
) -> Option<(String, SocketAddr)> {
    socket.send_to(payload.as_bytes(), to).await.unwrap();
    let mut buffer = [0u8; 2048];
    let (length, from) = tokio::time::timeout(wait, socket.recv_from(&mut buffer))
        .await
        .ok()?
        .ok()?;
    Some((
        String::from_utf8_lossy(&buffer[..length]).into_owned(),
        from,
    ))
}

#[tokio::test]
async fn flows_stick_to_their_backend_and_answers_come_from_the_listener() {
    let backends = [
        UdpBackend::start("b1").await,
        UdpBackend::start("b2").await,
        UdpBackend::start("b3").await,
    ];
    let toml: Vec<String> = backends.iter().map(UdpBackend::toml).collect();
    let bascule = Bascule::start(&udp_config("builtin:round-robin", "", &toml));
    let listener = bascule.addr("dns");
    let mut clients = tokio::task::JoinSet::new();
    for n in 0..50 {
        clients.spawn(async move {
            let socket = client().await;
            let mut served_by = HashSet::new();
            for m in 0..1000 {
                let payload = format!("{n}-{m}");
                let (answer, from) = ask(&socket, listener, &payload, WAIT)
                    .await
                    .expect("an answer");
                assert_eq!(from, listener, "answers come from the listener's address");
                let (backend, echoed) = answer.split_once(':').unwrap();
                assert_eq!(echoed, payload);
                served_by.insert(backend.to_owned());
            }
            assert_eq!(served_by.len(), 1, "client {n}'s flow moved: {served_by:?}");
            served_by.into_iter().next().unwrap()
        });
    }
    let mut per_backend: HashMap<String, usize> = HashMap::new();
    while let Some(backend) = clients.join_next().await {
        *per_backend.entry(backend.unwrap()).or_default() += 1;
    }
    // Round robin over new flows (one per worker's instance).
    for backend in &backends {
        let flows = per_backend.get(backend.name).copied().unwrap_or(0);
        assert!((10..=24).contains(&flows), "{per_backend:?}");
        // One flow socket per client that went there.
        assert_eq!(backend.sources().len(), flows);
    }
    let opened = bascule
        .metric("bascule_udp_flows_opened_total", &["listener=\"dns\""])
        .await;
    assert_eq!(opened, 50.0);
    let relayed = bascule
        .metric(
            "bascule_udp_datagrams_total",
            &["listener=\"dns\"", "direction=\"backend-to-client\""],
        )
        .await;
    assert_eq!(relayed, 50_000.0);
}

#[tokio::test]
async fn responses_one_ends_a_flow_at_its_answer_and_the_next_datagram_is_balanced_again() {
    let backends = [UdpBackend::start("b1").await, UdpBackend::start("b2").await];
    let toml: Vec<String> = backends.iter().map(UdpBackend::toml).collect();
    let config = udp_config("builtin:round-robin", "responses = 1", &toml);
    let bascule = Bascule::start_with(&config, &["--workers", "1"]);
    let listener = bascule.addr("dns");
    let socket = client().await;
    let mut answered_by = Vec::new();
    for n in 0..4 {
        let (answer, _) = ask(&socket, listener, &format!("q{n}"), WAIT)
            .await
            .unwrap();
        answered_by.push(answer.split_once(':').unwrap().0.to_owned());
        // The flow ended at its answer: wait for that before the next.
        let ended = f64::from(n + 1);
        assert!(eventually(|| async { flows_closed(&bascule, "responses").await == ended }).await);
    }
    assert_eq!(
        answered_by,
        ["b1", "b2", "b1", "b2"],
        "each query a new flow"
    );
    assert_eq!(
        bascule
            .metric("bascule_udp_flows_active", &["listener=\"dns\""])
            .await,
        0.0
    );
}

#[tokio::test]
async fn an_idle_flow_ends_after_the_idle_timeout() {
    let backend = UdpBackend::start("b1").await;
    let config = udp_config(
        "builtin:round-robin",
        "idle-timeout = \"300ms\"",
        &[backend.toml()],
    );
    let bascule = Bascule::start(&config);
    let listener = bascule.addr("dns");
    let socket = client().await;
    assert!(ask(&socket, listener, "one", WAIT).await.is_some());
    assert_eq!(
        bascule
            .metric("bascule_udp_flows_active", &["listener=\"dns\""])
            .await,
        1.0
    );
    // Kept alive while datagrams move...
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(ask(&socket, listener, "again", WAIT).await.is_some());
    }
    assert_eq!(flows_closed(&bascule, "idle-timeout").await, 0.0);
    // ...and ended once they stop.
    assert!(eventually(|| async { flows_closed(&bascule, "idle-timeout").await == 1.0 }).await);
    assert_eq!(backend.sources().len(), 1);
    // The next datagram opens a new flow, from a new socket.
    assert!(ask(&socket, listener, "later", WAIT).await.is_some());
    assert_eq!(backend.sources().len(), 2);
}

#[tokio::test]
async fn new_clients_past_max_flows_are_dropped_and_counted() {
    let backend = UdpBackend::start("b1").await;
    let config = udp_config("builtin:round-robin", "max-flows = 2", &[backend.toml()]);
    let bascule = Bascule::start(&config);
    let listener = bascule.addr("dns");
    let (first, second, third) = (client().await, client().await, client().await);
    assert!(ask(&first, listener, "1", WAIT).await.is_some());
    assert!(ask(&second, listener, "2", WAIT).await.is_some());
    assert!(
        ask(&third, listener, "3", Duration::from_millis(500))
            .await
            .is_none()
    );
    assert_eq!(
        bascule
            .metric(
                "bascule_udp_datagrams_dropped_total",
                &["listener=\"dns\"", "reason=\"max-flows\""]
            )
            .await,
        1.0
    );
    // Open flows keep working.
    assert!(ask(&first, listener, "1 again", WAIT).await.is_some());
    assert_eq!(backend.received(), 3);
}

#[tokio::test]
async fn per_datagram_balances_every_datagram_on_its_own() {
    let backends = [
        UdpBackend::start_with("b1", true).await,
        UdpBackend::start_with("b2", true).await,
        UdpBackend::start_with("b3", true).await,
    ];
    let toml: Vec<String> = backends.iter().map(UdpBackend::toml).collect();
    let config = udp_config("builtin:round-robin", "per-datagram = true", &toml);
    let bascule = Bascule::start_with(&config, &["--workers", "1"]);
    let listener = bascule.addr("dns");
    let socket = client().await;
    for n in 0..30 {
        socket
            .send_to(format!("log line {n}").as_bytes(), listener)
            .await
            .unwrap();
    }
    assert!(
        eventually(|| async { backends.iter().map(UdpBackend::received).sum::<usize>() == 30 })
            .await
    );
    for backend in &backends {
        assert_eq!(
            backend.received(),
            10,
            "one client's datagrams spread evenly"
        );
    }
    assert_eq!(
        bascule
            .metric("bascule_udp_flows_opened_total", &["listener=\"dns\""])
            .await,
        0.0
    );
}

/// A client socket on `ip`, one of the 127/8 loopback addresses.
async fn client_on(ip: &str) -> UdpSocket {
    UdpSocket::bind((ip, 0)).await.unwrap()
}

/// The backend that answered `socket`'s `payload` through `listener`.
async fn answered_by(socket: &UdpSocket, listener: SocketAddr, payload: &str) -> String {
    let (answer, _) = ask(socket, listener, payload, WAIT).await.unwrap();
    answer.split_once(':').unwrap().0.to_owned()
}

#[tokio::test]
async fn client_ip_affinity_sends_every_socket_of_a_client_to_one_backend() {
    let backends = [
        UdpBackend::start("b1").await,
        UdpBackend::start("b2").await,
        UdpBackend::start("b3").await,
    ];
    let toml: Vec<String> = backends.iter().map(UdpBackend::toml).collect();
    // Two workers: the kernel spreads one client's sockets over both
    // shards, so the pin must hold across them.
    let pinned = udp_config("builtin:round-robin", "affinity = \"client-ip\"", &toml);
    let bascule = Bascule::start_with(&pinned, &["--workers", "2"]);
    let listener = bascule.addr("dns");
    let mut first_client = HashSet::new();
    let mut second_client = HashSet::new();
    for n in 0..12 {
        let payload = format!("socket {n}");
        first_client.insert(answered_by(&client_on("127.0.0.1").await, listener, &payload).await);
        second_client.insert(answered_by(&client_on("127.0.0.2").await, listener, &payload).await);
    }
    assert_eq!(first_client.len(), 1, "{first_client:?}");
    assert_eq!(second_client.len(), 1, "{second_client:?}");
    assert_eq!(udp_status(&bascule).await["pinned-clients"], 2);
    // The control: by client address, round robin spreads the same
    // sockets over every backend.
    let by_address = udp_config("builtin:round-robin", "", &toml);
    let unpinned = Bascule::start_with(&by_address, &["--workers", "2"]);
    let mut spread = HashSet::new();
    for n in 0..12 {
        let socket = client_on("127.0.0.1").await;
        spread.insert(answered_by(&socket, unpinned.addr("dns"), &format!("socket {n}")).await);
    }
    assert_eq!(spread.len(), 3, "{spread:?}");
    assert!(udp_status(&unpinned).await["pinned-clients"].is_null());
    // A pinned backend that is drained takes no new flow: the client
    // moves, and its new backend is its pin from then on.
    let old = first_client.into_iter().next().unwrap();
    assert_eq!(drain_by_hand(&bascule, "main", &old).await, 200);
    let mut moved = HashSet::new();
    for n in 0..6 {
        moved.insert(
            answered_by(
                &client_on("127.0.0.1").await,
                listener,
                &format!("after {n}"),
            )
            .await,
        );
    }
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(!moved.contains(&old), "{moved:?} still has {old}");
}

#[tokio::test]
async fn balancers_see_protocol_udp() {
    // test-pick-by sends each flow to the backend named after the field.
    let (udp, tcp) = (
        UdpBackend::start("udp").await,
        UdpBackend::start("tcp").await,
    );
    let plugin = test_plugin("test-pick-by").display().to_string();
    let config = udp_config(&plugin, "", &[tcp.toml(), udp.toml()]).replace(
        "backends = [",
        "balancer-options = { field = \"protocol\" }\nbackends = [",
    );
    let bascule = Bascule::start(&config);
    let listener = bascule.addr("dns");
    for _ in 0..5 {
        let (answer, _) = ask(&client().await, listener, "which", WAIT).await.unwrap();
        assert_eq!(answer, "udp:which");
    }
    assert_eq!(tcp.received(), 0);
}

#[tokio::test]
async fn an_http_only_balancer_refuses_a_udp_pool() {
    let backend = UdpBackend::start("b1").await;
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = check(
        dir.path(),
        "bascule.toml",
        &udp_config("builtin:sticky-cookie", "", &[backend.toml()]),
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("pools.main.balancer") && out.contains("UDP"),
        "{out}"
    );
}

/// A DNS query for the A record of `name`, with id `id`.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut query = id.to_be_bytes().to_vec();
    // Recursion desired; one question.
    query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    query
}

#[tokio::test]
async fn a_real_dns_server_answers_real_queries_through_bascule() {
    let dnsmasq = Dnsmasq::start(&[
        ("shop.example.test", "192.0.2.10".parse().unwrap()),
        ("api.example.test", "192.0.2.20".parse().unwrap()),
    ]);
    let config = udp_config(
        "builtin:round-robin",
        "responses = 1",
        &[backend_toml("dnsmasq", dnsmasq.address)],
    );
    let bascule = Bascule::start(&config);
    let listener = bascule.addr("dns");
    let socket = client().await;
    for (id, (name, address)) in [
        ("shop.example.test", [192, 0, 2, 10]),
        ("api.example.test", [192, 0, 2, 20]),
    ]
    .into_iter()
    .enumerate()
    {
        let id = 0x4200 + id as u16;
        socket
            .send_to(&dns_query(id, name), listener)
            .await
            .unwrap();
        let mut answer = [0u8; 512];
        let (length, from) = tokio::time::timeout(WAIT, socket.recv_from(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(from, listener);
        let answer = &answer[..length];
        assert_eq!(
            u16::from_be_bytes([answer[0], answer[1]]),
            id,
            "the query's id"
        );
        assert_eq!(answer[3] & 0x0f, 0, "RCODE NOERROR");
        assert_eq!(u16::from_be_bytes([answer[6], answer[7]]), 1, "one answer");
        assert_eq!(&answer[length - 4..], &address, "{name}'s A record");
    }
    // Each query was its own flow, ended by its answer.
    assert!(eventually(|| async { flows_closed(&bascule, "responses").await == 2.0 }).await);
}

#[tokio::test]
async fn udp_config_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let pool = "\n[pools.main]\nbalancer = \"builtin:round-robin\"\nbackends = [{ address = \"127.0.0.1:53\" }]\n";
    let listener = |keys: &str, route: &str| {
        format!(
            "[[listeners]]\nname = \"dns\"\naddress = \"127.0.0.1:0\"\nmode = \"udp\"\n{keys}\n\n  [[listeners.routes]]\n  pool = \"main\"\n{route}{pool}"
        )
    };
    for (config, field, why) in [
        (
            listener("max-connections = 10", ""),
            "listeners[0].max-connections",
            "udp listeners take",
        ),
        (
            listener("zero-copy = true", ""),
            "listeners[0].zero-copy",
            "udp listeners take",
        ),
        (
            listener("", "  sni = \"a.example\"\n"),
            "listeners[0].routes[0].sni",
            "no TLS server name",
        ),
        (listener("responses = 0", ""), "listeners[0].responses", "1"),
        (
            listener("max-flows = 2000000", ""),
            "listeners[0].max-flows",
            "1000000",
        ),
        (
            listener("idle-timeout = \"soon\"", ""),
            "listeners[0].idle-timeout",
            "duration",
        ),
        (
            listener("", "\n  [[listeners.routes]]\n  pool = \"main\"\n"),
            "listeners[0].routes",
            "one route",
        ),
        (
            listener("", "").replace("mode = \"udp\"", "mode = \"tcp\"\nresponses = 1"),
            "listeners[0].responses",
            "only `mode = \"udp\"` listeners",
        ),
        (
            listener("", "").replace("mode = \"udp\"", "mode = \"quic\""),
            "listeners[0].mode",
            "`udp`",
        ),
        (
            listener("affinity = \"client\"", ""),
            "listeners[0].affinity",
            "client-ip-port",
        ),
        (
            listener("per-datagram = true\naffinity = \"client-ip\"", ""),
            "listeners[0].affinity",
            "no flow",
        ),
    ] {
        let (ok, out) = check(dir.path(), "bascule.toml", &config);
        assert!(!ok, "{config}\n{out}");
        assert!(
            out.contains("bascule.toml:") && out.contains(field) && out.contains(why),
            "{field}: {out}"
        );
    }
    // UDP and TCP listeners may share a port number; two UDP ones may not.
    let both = listener("", "").replace("127.0.0.1:0", "127.0.0.1:5353")
        + "\n[[listeners]]\nname = \"dns-tcp\"\naddress = \"127.0.0.1:5353\"\nmode = \"tcp\"\n\n  [[listeners.routes]]\n  pool = \"main\"\n";
    let (ok, out) = check(dir.path(), "bascule.toml", &both);
    assert!(ok, "{out}");
    let twice = both.replace("mode = \"tcp\"", "mode = \"udp\"");
    let (ok, out) = check(dir.path(), "bascule.toml", &twice);
    assert!(
        !ok && out.contains("another listener already binds"),
        "{out}"
    );
}

#[tokio::test]
async fn a_drained_backend_keeps_its_flows_until_the_drain_timeout_and_gets_no_new_ones() {
    let backends = [UdpBackend::start("b1").await, UdpBackend::start("b2").await];
    let toml: Vec<String> = backends.iter().map(UdpBackend::toml).collect();
    let config = udp_config("builtin:round-robin", "", &toml)
        .replace("backends = [", "drain-timeout = \"400ms\"\nbackends = [");
    let bascule = Bascule::start_with(&config, &["--workers", "1"]);
    let listener = bascule.addr("dns");
    let on_b1 = client().await;
    let (answer, _) = ask(&on_b1, listener, "first", WAIT).await.unwrap();
    assert_eq!(answer, "b1:first");
    assert_eq!(drain_by_hand(&bascule, "main", "b1").await, 200);
    // The open flow goes on meanwhile; new ones go elsewhere.
    let (answer, _) = ask(&on_b1, listener, "still", WAIT).await.unwrap();
    assert_eq!(answer, "b1:still");
    for _ in 0..3 {
        let (answer, _) = ask(&client().await, listener, "new", WAIT).await.unwrap();
        assert_eq!(answer, "b2:new");
    }
    // Past the drain timeout the flow ends, and the client's next
    // datagram is a new flow, on b2.
    assert!(eventually(|| async { flows_closed(&bascule, "drained").await == 1.0 }).await);
    let (answer, _) = ask(&on_b1, listener, "moved", WAIT).await.unwrap();
    assert_eq!(answer, "b2:moved");
}

/// The `/status` health of `backend` and its last probe's reason.
async fn health_of(bascule: &Bascule, backend: &str) -> (String, String) {
    let status = backend_status(bascule, backend).await;
    (
        status["health"].as_str().unwrap_or_default().to_owned(),
        status["check"]["last-probe"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn a_backend_that_stops_answering_is_ejected_by_the_udp_probe_and_its_flows_move() {
    let backends = [UdpBackend::start("b1").await, UdpBackend::start("b2").await];
    let toml: Vec<String> = backends.iter().map(UdpBackend::toml).collect();
    let config = udp_config("builtin:round-robin", "", &toml).replace(
        "[admin]",
        "[pools.main.health]\ninterval = \"200ms\"\ntimeout = \"150ms\"\nunhealthy-threshold = 2\n\
         interpreter-options = { send = \"ping\", expect = \":ping\" }\n\n[admin]",
    ).replace("backends = [", "drain-timeout = \"300ms\"\nbackends = [");
    let bascule = Bascule::start_with(&config, &["--workers", "1"]);
    for backend in ["b1", "b2"] {
        assert!(
            eventually(|| async {
                health_of(&bascule, backend).await
                    == ("healthy".to_owned(), format!("answered `{backend}:ping`"))
            })
            .await
        );
    }
    let listener = bascule.addr("dns");
    let player = client().await;
    let (answer, _) = ask(&player, listener, "move", WAIT).await.unwrap();
    assert_eq!(answer, "b1:move");
    backends[0]
        .mute
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        eventually(|| async {
            health_of(&bascule, "b1").await
                == ("unhealthy".to_owned(), "timed out after 150ms".to_owned())
        })
        .await
    );
    // The flow on b1 drains; the player's next datagrams go to b2.
    assert!(
        eventually(|| async {
            matches!(ask(&player, listener, "move", Duration::from_millis(200)).await, Some((answer, _)) if answer == "b2:move")
        })
        .await
    );
    for _ in 0..3 {
        let (answer, _) = ask(&client().await, listener, "new", WAIT).await.unwrap();
        assert_eq!(answer, "b2:new");
    }
}

#[tokio::test]
async fn the_dns_interpreter_judges_a_real_dns_server_by_its_answer() {
    let dnsmasq = Dnsmasq::start(&[("shop.example.test", "192.0.2.10".parse().unwrap())]);
    // A port nothing listens on: ICMP port unreachable answers the probe.
    let gone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let gone_address = gone.local_addr().unwrap();
    drop(gone);
    let config = udp_config(
        "builtin:round-robin",
        "responses = 1",
        &[
            backend_toml("dnsmasq", dnsmasq.address),
            backend_toml("gone", gone_address),
        ],
    )
    .replace(
        "[admin]",
        "[pools.main.health]\ninterval = \"100ms\"\ninterpreter = \"builtin:dns-health\"\n\
         interpreter-options = { name = \"shop.example.test\", type = \"A\" }\n\n[admin]",
    );
    let bascule = Bascule::start(&config);
    assert!(
        eventually(|| async {
            let (health, reason) = health_of(&bascule, "dnsmasq").await;
            health == "healthy" && reason.starts_with("NOERROR in ")
        })
        .await
    );
    assert!(
        eventually(|| async {
            health_of(&bascule, "gone").await
                == (
                    "unhealthy".to_owned(),
                    "receive: connection refused".to_owned(),
                )
        })
        .await
    );
    // Queries reach only the healthy server.
    let socket = client().await;
    for id in 0..4u16 {
        socket
            .send_to(&dns_query(id, "shop.example.test"), bascule.addr("dns"))
            .await
            .unwrap();
        let mut answer = [0u8; 512];
        let (length, _) = tokio::time::timeout(WAIT, socket.recv_from(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&answer[length - 4..length], &[192, 0, 2, 10]);
    }
}

#[tokio::test]
async fn a_udp_health_check_without_a_payload_is_a_config_error() {
    let backend = UdpBackend::start("b1").await;
    let config = udp_config("builtin:round-robin", "", &[backend.toml()]).replace(
        "[admin]",
        "[pools.main.health]\ninterval = \"1s\"\n\n[admin]",
    );
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = check(dir.path(), "bascule.toml", &config);
    assert!(!ok, "{out}");
    assert!(
        out.contains("pools.main.health") && out.contains("`send` or `send-hex` is required"),
        "{out}"
    );
}

/// The PROXY v2 header a UDP datagram from `client` to `listener` must
/// carry (spec section 2.2): signature, v2 PROXY command, UDP over IPv4,
/// 12 address bytes, source then destination.
fn proxy_v2_datagram_header(client: SocketAddr, listener: SocketAddr) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x12, 0, 12]);
    for address in [client, listener] {
        let std::net::IpAddr::V4(ip) = address.ip() else {
            panic!("IPv4 only here")
        };
        header.extend_from_slice(&ip.octets());
    }
    header.extend_from_slice(&client.port().to_be_bytes());
    header.extend_from_slice(&listener.port().to_be_bytes());
    header
}

#[tokio::test]
async fn proxy_v2_headers_go_on_the_first_datagram_or_on_every_one() {
    for (on, expected_framed) in [
        ("first-datagram", [true, false, false]),
        ("every-datagram", [true, true, true]),
    ] {
        let backend = UdpBackend::start("b1").await;
        let config = udp_config(
            "builtin:round-robin",
            &format!("proxy-header = \"{on}\""),
            &[backend.toml()],
        )
        .replace("backends = [", "proxy-protocol = \"v2\"\nbackends = [");
        let bascule = Bascule::start(&config);
        let listener = bascule.addr("dns");
        let socket = client().await;
        let header = proxy_v2_datagram_header(socket.local_addr().unwrap(), listener);
        for (n, framed) in expected_framed.into_iter().enumerate() {
            let payload = format!("datagram {n}");
            assert!(ask(&socket, listener, &payload, WAIT).await.is_some());
            let (_, received) = backend.seen.lock().unwrap().last().cloned().unwrap();
            let mut expected = if framed { header.clone() } else { Vec::new() };
            expected.extend_from_slice(payload.as_bytes());
            assert_eq!(received, expected, "{on}, datagram {n}");
        }
    }
}

#[tokio::test]
async fn proxy_v1_cannot_go_over_udp() {
    let backend = UdpBackend::start("b1").await;
    let config = udp_config("builtin:round-robin", "", &[backend.toml()])
        .replace("backends = [", "proxy-protocol = \"v1\"\nbackends = [");
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = check(dir.path(), "bascule.toml", &config);
    assert!(
        !ok && out.contains("pools.main.proxy-protocol") && out.contains("v2 only"),
        "{out}"
    );
}

/// The `/status` entry of the UDP listener `dns`'s route.
async fn udp_status(bascule: &Bascule) -> serde_json::Value {
    let reply = send(bascule.addr("admin"), get("admin", "/status")).await;
    let status: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    let listener = status["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|listener| listener["name"] == "dns")
        .cloned()
        .unwrap();
    assert_eq!(listener["mode"], "udp");
    listener["routes"][0].clone()
}

#[tokio::test]
async fn status_counts_open_flows_across_a_reload_and_max_flows_still_holds() {
    let backend = UdpBackend::start("b1").await;
    let config = udp_config("builtin:round-robin", "", &[backend.toml()]);
    let mut bascule = Bascule::start(&config);
    let listener = bascule.addr("dns");
    let clients = [client().await, client().await, client().await];
    for socket in &clients {
        assert!(ask(socket, listener, "hi", WAIT).await.is_some());
    }
    let route = udp_status(&bascule).await;
    assert_eq!(
        (route["pool"].as_str(), route["flows"].as_u64()),
        (Some("main"), Some(3))
    );
    // The reload keeps the open flows and their count: with room for
    // three, a fourth client is turned away.
    let tighter = udp_config("builtin:round-robin", "max-flows = 3", &[backend.toml()]);
    let verdict = bascule.reload(&tighter);
    assert!(verdict.contains("bascule: reloaded"), "{verdict}");
    assert_eq!(udp_status(&bascule).await["max-flows"], 3);
    assert_eq!(udp_status(&bascule).await["flows"], 3);
    assert!(
        ask(
            &client().await,
            listener,
            "late",
            Duration::from_millis(400)
        )
        .await
        .is_none()
    );
    for socket in &clients {
        assert!(ask(socket, listener, "still here", WAIT).await.is_some());
    }
}

#[tokio::test]
async fn icmp_port_unreachable_counts_towards_outlier_ejection() {
    let live = UdpBackend::start("live").await;
    let gone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let gone_address = gone.local_addr().unwrap();
    drop(gone);
    let config = udp_config(
        "builtin:round-robin",
        "",
        &[backend_toml("gone", gone_address), live.toml()],
    )
    .replace(
        "[admin]",
        "[pools.main.outlier-detection]\nconsecutive-connect-failures = 2\nconsecutive-5xx = 0\n\n[admin]",
    );
    let bascule = Bascule::start_with(&config, &["--workers", "1"]);
    let listener = bascule.addr("dns");
    // Round robin sends every other new flow to `gone`, whose port
    // answers with ICMP port unreachable; those go unanswered.
    let mut unanswered = 0;
    for _ in 0..6 {
        if ask(&client().await, listener, "hi", Duration::from_millis(300))
            .await
            .is_none()
        {
            unanswered += 1;
        }
    }
    assert!(unanswered >= 2, "{unanswered}");
    assert!(
        eventually(|| async { backend_status(&bascule, "gone").await["check"]["ejected"] == true })
            .await
    );
    assert!(flows_closed(&bascule, "backend-unreachable").await >= 2.0);
    // Ejected: every new flow reaches the live backend.
    for _ in 0..6 {
        let (answer, _) = ask(&client().await, listener, "again", WAIT).await.unwrap();
        assert_eq!(answer, "live:again");
    }
}
