//! TLS terminated on a TCP listener (HAProxy's `mode tcp` with `ssl`): the
//! proxy decrypts with its own certificate and forwards plaintext bytes,
//! chosen per route by SNI beside routes that pass TLS through untouched.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use crate::support::*;
use crate::tcp_backends::*;
use crate::test_ca::TestCa;

fn terminating_config(
    (cert, key): &(String, String),
    plain: &EchoBackend,
    passed: &TlsNamedBackend,
) -> String {
    format!(
        r#"
[[listeners]]
name = "edge"
address = "127.0.0.1:0"
mode = "tcp"

  [[listeners.routes]]
  sni = "pass.test"
  tls = "passthrough"
  pool = "passed"

  [[listeners.routes]]
  pool = "plain"

  [listeners.tls]
  certificates = [{{ cert = "{cert}", key = "{key}" }}]

[pools.plain]
balancer = "builtin:round-robin"
backends = [{}]

[pools.passed]
balancer = "builtin:round-robin"
backends = [{}]

[admin]
address = "127.0.0.1:0"
"#,
        plain.toml(),
        passed.toml()
    )
}

/// A TLS connection to `address` for `name`, trusting `ca` and `extra`.
async fn connect_tls(
    address: SocketAddr,
    name: &str,
    ca: &TestCa,
    extra: Option<&TestCertificate>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    if let Some(extra) = extra {
        roots.add(extra.der.clone()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let stream = TcpStream::connect(address).await?;
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    tokio::time::timeout(WAIT, connector.connect(name, stream))
        .await
        .expect("handshake did not finish in time")
}

#[tokio::test]
async fn terminated_routes_forward_plaintext_beside_passthrough_routes() {
    let ca = TestCa::new();
    let edge_cert = ca.issue("edge", &["app.test"]);
    let pass_cert = TestCertificate::new(&["pass.test"]);
    let plain = EchoBackend::start("plain").await;
    let passed = TlsNamedBackend::start("passed", &pass_cert).await;
    let bascule = Bascule::start(&terminating_config(&edge_cert, &plain, &passed));
    let edge = bascule.addr("edge");

    // Terminated: the proxy's certificate (from the test CA), then the
    // plaintext echo backend's greeting and echo, both ways encrypted.
    let mut tls = connect_tls(edge, "app.test", &ca, None).await.unwrap();
    let mut greeting = [0u8; 6];
    tls.read_exact(&mut greeting).await.unwrap();
    assert_eq!(&greeting, b"plain\n");
    let payload: Vec<u8> = (0..200_000u32).map(|n| (n % 251) as u8).collect();
    let (mut read, mut write) = tokio::io::split(tls);
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        write.write_all(&sent).await.unwrap();
        write.shutdown().await.unwrap();
    });
    let mut echoed = Vec::new();
    tokio::time::timeout(WAIT, read.read_to_end(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed == payload, "the echo came back intact");

    // Passed through: the backend's own certificate, which the proxy does
    // not hold.
    let mut tls = connect_tls(edge, "pass.test", &ca, Some(&pass_cert))
        .await
        .unwrap();
    let mut reply = String::new();
    tls.read_to_string(&mut reply).await.unwrap();
    assert_eq!(reply, "passed\n");

    // A client that does not speak TLS to a terminating route: closed,
    // counted as a failed handshake.
    let mut raw = TcpStream::connect(edge).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, raw.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(
        !rest.starts_with(b"plain"),
        "no plaintext reached the client"
    );
    let failed = ["listener=\"edge\"", "reason=\"tls-handshake\""];
    assert!(
        eventually(|| async {
            bascule
                .metric("bascule_tcp_connections_closed_total", &failed)
                .await
                == 1.0
        })
        .await
    );
    let handshakes = bascule
        .metric("bascule_tls_handshakes_total", &["listener=\"edge\""])
        .await;
    assert_eq!(handshakes, 1.0, "only the terminated connection");
}

#[test]
fn terminate_needs_certificates_and_http_routes_take_no_tls_key() {
    let dir = tempfile::tempdir().unwrap();
    let tcp = tcp_config("", "", &[backend_toml("b", "127.0.0.1:9")]).replace(
        "  pool = \"main\"",
        "  tls = \"terminate\"\n  pool = \"main\"",
    );
    let (ok, stderr) = check(dir.path(), "tcp.toml", &tcp);
    assert!(!ok);
    assert!(
        stderr
            .contains("listeners[0].routes[0].tls: `terminate` needs the listener's certificates"),
        "{stderr}"
    );
    let http = single_pool_config(
        "builtin:round-robin",
        "",
        [backend_toml("b", "127.0.0.1:9")],
    )
    .replace(
        "  pool = \"main\"",
        "  tls = \"passthrough\"\n  pool = \"main\"",
    );
    let (ok, stderr) = check(dir.path(), "http.toml", &http);
    assert!(!ok);
    assert!(stderr.contains("`tls` is for tcp routes"), "{stderr}");
}
