//! `bascule demo` (what `make demo` runs) starts on a free port and serves
//! its three backends through the HTTP listener (with its header filter)
//! and the TCP listener.

use std::net::SocketAddr;
use std::process::Command;

use crate::support::*;

#[tokio::test]
async fn demo_serves_its_backends_through_both_listeners() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bascule"));
    command.args(["demo", "--listen", "127.0.0.1:0"]);
    let (child, lines) = spawn_with_lines(&mut command);
    // Killed however the test ends, a failed assertion included.
    let _demo = KilledOnDrop(child);
    let (mut http, mut tcp): (Option<SocketAddr>, Option<SocketAddr>) = (None, None);
    while http.is_none() || tcp.is_none() {
        let line = lines
            .recv_timeout(WAIT)
            .expect("demo did not announce its listeners");
        let address = |scheme: &str| {
            line.strip_prefix(&format!("bascule demo proxy on {scheme}://"))
                .and_then(|rest| rest.split_whitespace().next())
                .map(|address| address.parse().unwrap())
        };
        http = http.or_else(|| address("http"));
        tcp = tcp.or_else(|| address("tcp"));
    }
    let (http, tcp) = (http.unwrap(), tcp.unwrap());

    let mut served = Vec::new();
    for _ in 0..3 {
        let reply = send(http, get("demo.test", "/hello")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.headers["x-bascule-filter"], "builtin:headers");
        let client = reply.headers["x-client"].to_str().unwrap();
        assert!(client.starts_with("127.0.0.1:"), "{client}");
        served.push(reply.headers["x-backend"].to_str().unwrap().to_owned());
    }
    served.sort();
    assert_eq!(
        served,
        ["demo-backend-1", "demo-backend-2", "demo-backend-3"]
    );

    let reply = send(tcp, get("demo.test", "/over-tcp")).await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("GET /over-tcp"), "{}", reply.body);
}
