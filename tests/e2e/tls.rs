//! TLS termination on HTTP listeners: certificates made at test time by a
//! test CA (rcgen), chosen by SNI and checked by a rustls client that trusts
//! only that CA; ALPN h2 and HTTP/1.1 on one listener; versions; reloads.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

use crate::support::*;
use crate::test_ca::TestCa;

const ALL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The listener `web` with `[listeners.tls]` `tls`, routing to `backend`.
fn tls_config(backend: &RecordingBackend, tls: &str) -> String {
    single_pool_config_on(
        &format!("\n  [listeners.tls]\n{tls}"),
        "builtin:round-robin",
        ADMIN,
        [backend.toml()],
    )
}

fn certificate_entry((cert, key): &(String, String), sni: &[&str]) -> String {
    let sni = if sni.is_empty() {
        String::new()
    } else {
        format!(
            ", sni = [{}]",
            sni.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!("{{ cert = \"{cert}\", key = \"{key}\"{sni} }}")
}

/// Handshakes with `server_name`; the leaf certificate the server sent,
/// or the handshake error.
async fn handshake(
    connector: &tokio_rustls::TlsConnector,
    address: std::net::SocketAddr,
    server_name: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, std::io::Error> {
    let stream = TcpStream::connect(address).await.unwrap();
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    tokio::time::timeout(WAIT, connector.connect(name, stream))
        .await
        .expect("handshake timed out")
}

fn leaf(stream: &tokio_rustls::client::TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// `GET /` over an established TLS stream with HTTP/1.1.
async fn get_over_h1(stream: tokio_rustls::client::TlsStream<TcpStream>, host: &str) -> Reply {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    reply(sender.send_request(get(host, "/")).await.unwrap()).await
}

#[tokio::test]
async fn certificates_are_chosen_by_sni_with_a_default_or_a_refusal() {
    let backend = RecordingBackend::start("b").await;
    let ca = TestCa::new();
    let a = ca.issue("a", &["a.example.com"]);
    let b = ca.issue("b", &["*.b.example.com", "b.example.com"]);
    let tls = format!(
        "  certificates = [{}, {}]\n",
        certificate_entry(&a, &[]),
        certificate_entry(&b, &[])
    );
    let bascule = Bascule::start(&tls_config(&backend, &tls));
    let web = bascule.addr("web");
    let client = ca.client(&["http/1.1"], ALL_VERSIONS);
    let a_der = CertificateDer::from_pem_file(&a.0);
    let b_der = CertificateDer::from_pem_file(&b.0);

    let to_a = handshake(&client, web, "a.example.com").await.unwrap();
    assert_eq!(leaf(&to_a), a_der, "exact name from the certificate");
    let reply = get_over_h1(to_a, "a.example.com").await;
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "b"));
    assert_eq!(backend.seen()[0].headers["x-forwarded-proto"], "https");

    let to_b = handshake(&client, web, "x.b.example.com").await.unwrap();
    assert_eq!(leaf(&to_b), b_der, "wildcard name");
    // An unknown name gets the default (first) certificate, which the
    // client then refuses for its name: the server did answer.
    let unknown = handshake(&client, web, "c.example.com").await;
    let error = unknown.expect_err("a's certificate does not name c.example.com");
    assert!(
        error
            .to_string()
            .contains("only valid for DnsName(\"a.example.com\")"),
        "the default is the first certificate: {error}"
    );

    // `unknown-sni = "refuse"`, and explicit `sni` lists instead of the
    // certificate's names.
    let tls = format!(
        "  certificates = [{}]\n  unknown-sni = \"refuse\"\n",
        certificate_entry(&b, &["only.example.com"])
    );
    let refusing = Bascule::start(&tls_config(&backend, &tls));
    let refused = handshake(&client, refusing.addr("web"), "x.b.example.com").await;
    let error = refused.expect_err("no certificate lists that name");
    // rustls answers a handshake it has no certificate for with an
    // `access_denied` alert.
    assert!(error.to_string().contains("AccessDenied"), "{error}");
}

#[tokio::test]
async fn tls_1_2_is_refused_under_min_version_1_3() {
    let backend = RecordingBackend::start("b").await;
    let ca = TestCa::new();
    let a = ca.issue("a", &["a.example.com"]);
    let tls = format!(
        "  certificates = [{}]\n  min-version = \"1.3\"\n",
        certificate_entry(&a, &[])
    );
    let bascule = Bascule::start(&tls_config(&backend, &tls));
    let tls12_only = ca.client(&[], &[&rustls::version::TLS12]);
    assert!(
        handshake(&tls12_only, bascule.addr("web"), "a.example.com")
            .await
            .is_err()
    );
    assert!(
        eventually(|| async {
            bascule
                .metric(
                    "bascule_tls_handshake_errors_total",
                    &["listener=\"web\"", "reason=\"failed\""],
                )
                .await
                == 1.0
        })
        .await,
        "the refused handshake is counted"
    );
    let tls13 = ca.client(&[], &[&rustls::version::TLS13]);
    let stream = handshake(&tls13, bascule.addr("web"), "a.example.com")
        .await
        .unwrap();
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert!(
        eventually(|| async {
            bascule
                .metric(
                    "bascule_tls_handshakes_total",
                    &["version=\"1.3\"", "alpn=\"none\""],
                )
                .await
                == 1.0
        })
        .await
    );
}

#[tokio::test]
async fn alpn_h2_and_http_1_1_share_a_listener_and_plugins_see_the_session() {
    let h2 = RecordingBackend::start("h2").await;
    let http11 = RecordingBackend::start("http_1.1").await;
    let ca = TestCa::new();
    let a = ca.issue("a", &["a.example.com"]);
    // Balanced by the negotiated ALPN: each protocol's backend is named
    // after it.
    let config = single_pool_config_on(
        &format!(
            "\n  [listeners.tls]\n  certificates = [{}]\n",
            certificate_entry(&a, &[])
        ),
        &test_plugin("test-pick-by").display().to_string(),
        "balancer-options = { field = \"alpn\" }",
        [h2.toml(), http11.toml()],
    );
    let bascule = Bascule::start(&config);
    let web = bascule.addr("web");

    let client = ca.client(&["h2"], ALL_VERSIONS);
    let stream = handshake(&client, web, "a.example.com").await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    for _ in 0..3 {
        let request = Request::get("https://a.example.com/over-h2")
            .body(Full::<Bytes>::default())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "h2");
    }

    let client = ca.client(&["http/1.1"], ALL_VERSIONS);
    let stream = handshake(&client, web, "a.example.com").await.unwrap();
    let reply = get_over_h1(stream, "a.example.com").await;
    assert_eq!(reply.body, "http_1.1");
    assert_eq!(h2.seen().len(), 3);
}

#[tokio::test]
async fn a_reload_swaps_the_certificate_and_open_connections_keep_working() {
    let backend = RecordingBackend::start("b").await;
    let ca = TestCa::new();
    let old = ca.issue("old", &["a.example.com"]);
    let new = ca.issue("new", &["a.example.com"]);
    let tls = |pair: &(String, String)| {
        tls_config(
            &backend,
            &format!("  certificates = [{}]\n", certificate_entry(pair, &[])),
        )
    };
    let mut bascule = Bascule::start(&tls(&old));
    let web = bascule.addr("web");
    let client = ca.client(&["http/1.1"], ALL_VERSIONS);
    let open = handshake(&client, web, "a.example.com").await.unwrap();
    assert_eq!(leaf(&open), CertificateDer::from_pem_file(&old.0));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(open))
        .await
        .unwrap();
    tokio::spawn(connection);

    let printed = bascule.reload(&tls(&new));
    assert!(printed.contains("bascule: reloaded"), "{printed}");
    let fresh = handshake(&client, web, "a.example.com").await.unwrap();
    assert_eq!(leaf(&fresh), CertificateDer::from_pem_file(&new.0));
    let response = sender
        .send_request(get("a.example.com", "/"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the open connection keeps working");

    // A reload with a broken certificate is refused; the new one serves on.
    std::fs::write(ca.path("broken.pem"), "not a certificate").unwrap();
    let broken = (ca.path("broken.pem").display().to_string(), new.1.clone());
    let printed = bascule.reload(&tls(&broken));
    assert!(printed.contains("holds no PEM certificate"), "{printed}");
    let after = handshake(&client, web, "a.example.com").await.unwrap();
    assert_eq!(leaf(&after), CertificateDer::from_pem_file(&new.0));
}

#[test]
fn certificate_errors_name_the_file_and_the_problem() {
    let ca = TestCa::new();
    let a = ca.issue("a", &["a.example.com"]);
    let b = ca.issue("b", &["b.example.com"]);
    std::fs::write(ca.path("empty.pem"), "").unwrap();
    let config = |cert: &str, key: &str| {
        single_pool_config_on(
            &format!(
                "\n  [listeners.tls]\n  certificates = [{}]\n",
                certificate_entry(&(cert.to_owned(), key.to_owned()), &[])
            ),
            "builtin:round-robin",
            "",
            ["{ address = \"127.0.0.1:9\" }".to_owned()],
        )
    };
    let empty = ca.path("empty.pem").display().to_string();
    let missing = ca.path("missing.pem").display().to_string();
    let cases = [
        (
            config(&a.0, &b.1),
            format!(
                "the key in {} does not match the certificate in {}",
                b.1, a.0
            ),
        ),
        (
            config(&empty, &a.1),
            format!("{empty} holds no PEM certificate"),
        ),
        (
            config(&a.0, &a.0),
            format!("{} holds no PEM private key", a.0),
        ),
        (config(&missing, &a.1), format!("cannot read {missing}")),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (text, expected) in cases {
        let (ok, stderr) = check(dir.path(), "tls.toml", &text);
        assert!(!ok, "{text}");
        assert!(
            stderr.contains("listeners[0].tls.certificates[0].cert"),
            "{stderr}"
        );
        assert!(stderr.contains(&expected), "{expected}: {stderr}");
    }
}

/// Reads the first certificate of a PEM file.
trait FromPemFile {
    fn from_pem_file(path: impl AsRef<Path>) -> Self;
}

impl FromPemFile for CertificateDer<'static> {
    fn from_pem_file(path: impl AsRef<Path>) -> Self {
        use rustls::pki_types::pem::PemObject;
        <CertificateDer<'static> as PemObject>::from_pem_file(path).unwrap()
    }
}

/// `testssl.sh` (Debian's `testssl.sh`, installed by `make test`) against a
/// TLS listener serving a certificate from a CA it is told to trust: no
/// finding rated HIGH or CRITICAL.
#[tokio::test]
async fn testssl_finds_nothing_high_or_critical() {
    let backend = RecordingBackend::start("b").await;
    let ca = TestCa::new();
    let site = ca.issue("site", &["localhost"]);
    std::fs::write(ca.path("ca.pem"), &ca.pem).unwrap();
    let tls = format!("  certificates = [{}]\n", certificate_entry(&site, &[]));
    let bascule = Bascule::start(&tls_config(&backend, &tls));
    let report = ca.path("testssl.json");
    let mut command = tokio::process::Command::new("testssl");
    command
        .args([
            "--quiet",
            "--color",
            "0",
            "--warnings",
            "off",
            "--severity",
            "HIGH",
        ])
        .args(["--connect-timeout", "5", "--openssl-timeout", "5"])
        .arg("--add-ca")
        .arg(ca.path("ca.pem"))
        .arg("--jsonfile")
        .arg(&report)
        .arg(format!("localhost:{}", bascule.addr("web").port()))
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(ca.path("testssl.log")).unwrap())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    // Its exit status counts findings; the report says which.
    tokio::time::timeout(std::time::Duration::from_secs(300), command.status())
        .await
        .expect("testssl ran past 300 s")
        .expect("testssl is installed (make test-packages)");
    let findings: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let log = std::fs::read_to_string(ca.path("testssl.log")).unwrap_or_default();
    assert!(
        log.contains("TLS 1.3    offered") && log.contains(" Done "),
        "the scan did not run to its end: {log}"
    );
    let serious: Vec<String> = findings
        .iter()
        .filter(|finding| matches!(finding["severity"].as_str(), Some("HIGH" | "CRITICAL")))
        .map(|finding| format!("{}: {}", finding["id"], finding["finding"]))
        .collect();
    assert!(serious.is_empty(), "{serious:#?}");
}

/// A backend on 127.0.0.1 serving HTTPS with `certificate` (from
/// [`TestCa::issue`]); with `client_ca`, it requires a client certificate
/// that CA signed. Answers its name.
async fn tls_backend(
    name: &'static str,
    (cert, key): &(String, String),
    client_ca: Option<&TestCa>,
) -> std::net::SocketAddr {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.der.clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(chain, key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = socket.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_request| async move {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(
                        name,
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

fn upstream_config(backend: std::net::SocketAddr, tls: &str) -> String {
    single_pool_config(
        "builtin:round-robin",
        &format!("\n  [pools.main.tls]\n{tls}\n{ADMIN}"),
        [backend_toml("secure", backend)],
    )
}

#[tokio::test]
async fn upstream_tls_verifies_the_backend_against_the_configured_ca() {
    let ca = TestCa::new();
    let other_ca = TestCa::new();
    let served = ca.issue("backend", &["backend.test"]);
    let backend = tls_backend("secure", &served, None).await;
    std::fs::write(ca.path("ca.pem"), &ca.pem).unwrap();
    std::fs::write(other_ca.path("ca.pem"), &other_ca.pem).unwrap();

    // Health probes of the pool run over TLS too.
    let trusting = Bascule::start(&upstream_config(
        backend,
        &format!(
            "  ca = \"{}\"\n  server-name = \"backend.test\"\n\n[pools.main.health]\ninterval = \"100ms\"\n",
            ca.path("ca.pem").display()
        ),
    ));
    assert!(
        eventually(|| async {
            trusting
                .metric(
                    "bascule_health_probes_total",
                    &["backend=\"secure\"", "result=\"healthy\""],
                )
                .await
                >= 1.0
        })
        .await,
        "a probe over TLS passed"
    );
    for _ in 0..3 {
        let reply = trusting.get_root().await;
        assert_eq!(
            (reply.status.as_u16(), reply.body.as_str()),
            (200, "secure")
        );
    }

    let wrong_ca = Bascule::start(&upstream_config(
        backend,
        &format!(
            "  ca = \"{}\"\n  server-name = \"backend.test\"\n",
            other_ca.path("ca.pem").display()
        ),
    ));
    assert_eq!(wrong_ca.get_root().await.status.as_u16(), 502);
    assert!(
        wrong_ca
            .metric(
                "bascule_upstream_connect_failures_total",
                &["backend=\"secure\""]
            )
            .await
            >= 1.0
    );
    let wrong_name = Bascule::start(&upstream_config(
        backend,
        &format!(
            "  ca = \"{}\"\n  server-name = \"other.test\"\n",
            ca.path("ca.pem").display()
        ),
    ));
    assert_eq!(wrong_name.get_root().await.status.as_u16(), 502);
    let unverified = Bascule::start(&upstream_config(backend, "  verify = false\n"));
    assert_eq!(unverified.get_root().await.status.as_u16(), 200);
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate() {
    let ca = TestCa::new();
    let served = ca.issue("backend", &["backend.test"]);
    let client = ca.issue("client", &["proxy.test"]);
    let backend = tls_backend("secure", &served, Some(&ca)).await;
    std::fs::write(ca.path("ca.pem"), &ca.pem).unwrap();
    let trust = format!(
        "  ca = \"{}\"\n  server-name = \"backend.test\"\n",
        ca.path("ca.pem").display()
    );
    let with_certificate = Bascule::start(&upstream_config(
        backend,
        &format!(
            "{trust}  cert = \"{}\"\n  key = \"{}\"\n",
            client.0, client.1
        ),
    ));
    let reply = with_certificate.get_root().await;
    assert_eq!(
        (reply.status.as_u16(), reply.body.as_str()),
        (200, "secure")
    );
    let without = Bascule::start(&upstream_config(backend, &trust));
    assert_eq!(without.get_root().await.status.as_u16(), 502);
}

#[test]
fn upstream_tls_errors_name_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let backend = "127.0.0.1:9".parse().unwrap();
    let cases = [
        (
            "  verify = true\n",
            "pools.main.tls: backends given by IP address (secure) have no host name to verify",
        ),
        (
            "  verify = false\n  cert = \"c.pem\"\n",
            "a client certificate needs both `cert` and `key`",
        ),
        (
            "  server-name = \"b.test\"\n  ca = \"/nonexistent/ca.pem\"\n",
            "/nonexistent/ca.pem holds no usable PEM certificate to trust",
        ),
    ];
    for (tls, expected) in cases {
        let (ok, stderr) = check(dir.path(), "upstream.toml", &upstream_config(backend, tls));
        assert!(!ok, "{tls}");
        assert!(stderr.contains(expected), "{tls}: {stderr}");
    }
}
