//! TLS passthrough routed by SNI: real rustls clients, two rustls servers
//! holding different names, the handshake done end to end through the
//! proxy (so the bytes went through untouched).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use crate::support::*;
use crate::tcp_backends::*;

/// Connects through `proxy` with TLS for `name`, trusting `roots`; returns
/// what the server wrote, or the error.
async fn tls_read(
    proxy: SocketAddr,
    name: &str,
    roots: &[&TestCertificate],
) -> Result<String, std::io::Error> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.der.clone()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = TcpStream::connect(proxy).await?;
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = tokio::time::timeout(WAIT, connector.connect(name, stream))
        .await
        .expect("handshake did not finish in time")?;
    let mut text = String::new();
    tls.read_to_string(&mut text).await?;
    Ok(text)
}

fn sni_config(alpha: &TlsNamedBackend, beta: &TlsNamedBackend, fallback: &EchoBackend) -> String {
    format!(
        r#"
[[listeners]]
name = "strict"
address = "127.0.0.1:0"
mode = "tcp"

  [[listeners.routes]]
  sni = "alpha.test"
  pool = "alpha"

  [[listeners.routes]]
  sni = "*.beta.test"
  pool = "beta"

[[listeners]]
name = "with-default"
address = "127.0.0.1:0"
mode = "tcp"

  [[listeners.routes]]
  sni = "alpha.test"
  pool = "alpha"

  [[listeners.routes]]
  pool = "fallback"

[pools.alpha]
balancer = "builtin:round-robin"
backends = [{}]

[pools.beta]
balancer = "builtin:consistent-hash"
backends = [{}]

[pools.fallback]
balancer = "builtin:round-robin"
backends = [{}]

[admin]
address = "127.0.0.1:0"
"#,
        alpha.toml(),
        beta.toml(),
        fallback.toml()
    )
}

#[tokio::test]
async fn server_names_pick_the_pool_and_tls_passes_through() {
    let alpha_cert = TestCertificate::new(&["alpha.test"]);
    let beta_cert = TestCertificate::new(&["api.beta.test"]);
    let alpha = TlsNamedBackend::start("alpha", &alpha_cert).await;
    let beta = TlsNamedBackend::start("beta", &beta_cert).await;
    let fallback = EchoBackend::start("fallback").await;
    let bascule = Bascule::start(&sni_config(&alpha, &beta, &fallback));
    let roots = [&alpha_cert, &beta_cert];
    let strict = bascule.addr("strict");

    for _ in 0..3 {
        assert_eq!(
            tls_read(strict, "alpha.test", &roots).await.unwrap(),
            "alpha\n"
        );
        // The wildcard route, with names in any case.
        assert_eq!(
            tls_read(strict, "API.Beta.test", &roots).await.unwrap(),
            "beta\n"
        );
    }
    // An unknown name and no default route: closed, the handshake fails.
    assert!(tls_read(strict, "gamma.test", &roots).await.is_err());
    let no_route = bascule
        .metric(
            "bascule_tcp_connections_closed_total",
            &["listener=\"strict\"", "reason=\"no-route\""],
        )
        .await;
    assert_eq!(no_route, 1.0);
    // A wildcard does not match its bare suffix.
    assert!(tls_read(strict, "beta.test", &roots).await.is_err());

    // `/status` shows the listener as TCP with its SNI routes.
    let status = send(bascule.addr("admin"), get("admin", "/status")).await;
    let status: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    let listener = &status["listeners"][0];
    assert_eq!(listener["name"], "strict");
    assert_eq!(listener["mode"], "tcp");
    assert_eq!(listener["routes"][1]["sni"], "*.beta.test");
    assert_eq!(listener["routes"][1]["pool"], "beta");
}

async fn client_bytes(bascule: &Bascule) -> f64 {
    bascule
        .metric(
            "bascule_tcp_bytes_total",
            &["listener=\"with-default\"", "client-to-backend"],
        )
        .await
}

#[tokio::test]
async fn unknown_missing_or_unparsable_names_go_to_the_default_route() {
    let alpha_cert = TestCertificate::new(&["alpha.test"]);
    let beta_cert = TestCertificate::new(&["api.beta.test"]);
    let alpha = TlsNamedBackend::start("alpha", &alpha_cert).await;
    let beta = TlsNamedBackend::start("beta", &beta_cert).await;
    let fallback = EchoBackend::start("fallback").await;
    let bascule = Bascule::start(&sni_config(&alpha, &beta, &fallback));
    let with_default = bascule.addr("with-default");

    assert_eq!(
        tls_read(with_default, "alpha.test", &[&alpha_cert])
            .await
            .unwrap(),
        "alpha\n"
    );
    // Not TLS at all: the default pool gets the bytes as they came.
    let before = client_bytes(&bascule).await;
    let mut stream = TcpStream::connect(with_default).await.unwrap();
    stream.write_all(b"plain text\n").await.unwrap();
    assert_eq!(read_line(&mut stream).await, "fallback");
    assert_eq!(read_line(&mut stream).await, "plain text");
    // A ClientHello for a name no route has, and one cut short by the
    // client's end-of-stream: both to the default, bytes intact.
    let mut stream = TcpStream::connect(with_default).await.unwrap();
    stream.write_all(&[0x16, 0x03, 0x01, 0x00]).await.unwrap();
    stream.shutdown().await.unwrap();
    let echoed = read_to_end(&mut stream).await;
    assert_eq!(echoed, b"fallback\n\x16\x03\x01\x00");
    // Bytes read before choosing a backend count as forwarded too: the
    // plain-text line and the four bytes of the cut-short hello.
    let forwarded = client_bytes(&bascule).await - before;
    assert_eq!(forwarded, ("plain text\n".len() + 4) as f64);
}
