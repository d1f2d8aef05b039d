//! TCP backends for the L4 tests: an echo server that greets with its
//! name, a recorder that keeps every byte a connection sent, and TLS
//! servers that answer with their name once the handshake is done. All on
//! loopback, all stopped on drop.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::rustls;

use crate::support::WAIT;

/// Accepts connections on `socket` and runs `serve` on each, until dropped.
struct Acceptor {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl Acceptor {
    async fn start<F, Fut>(bind: &str, serve: F) -> Acceptor
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let socket = TcpListener::bind(bind).await.unwrap();
        let address = socket.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = socket.accept().await {
                tokio::spawn(serve(stream));
            }
        });
        Acceptor { address, task }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Writes `NAME\n`, then echoes every byte back; passes the client's
/// end-of-stream on once everything is echoed.
pub struct EchoBackend {
    pub name: String,
    acceptor: Acceptor,
}

impl EchoBackend {
    pub async fn start(name: &str) -> EchoBackend {
        let greeting = format!("{name}\n");
        let acceptor = Acceptor::start("127.0.0.1:0", move |mut stream| {
            let greeting = greeting.clone();
            async move {
                if stream.write_all(greeting.as_bytes()).await.is_err() {
                    return;
                }
                let (mut read, mut write) = stream.split();
                if tokio::io::copy(&mut read, &mut write).await.is_ok() {
                    let _ = write.shutdown().await;
                }
            }
        })
        .await;
        EchoBackend {
            name: name.to_owned(),
            acceptor,
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.acceptor.address
    }

    pub fn toml(&self) -> String {
        crate::support::backend_toml(&self.name, self.address())
    }
}

/// Reads each connection to its end and keeps the bytes; answers
/// `got N\n` after the client half-closes.
pub struct ByteRecorder {
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    acceptor: Acceptor,
}

impl ByteRecorder {
    pub async fn start() -> ByteRecorder {
        let received = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&received);
        let acceptor = Acceptor::start("127.0.0.1:0", move |mut stream| {
            let record = Arc::clone(&record);
            async move {
                let mut bytes = Vec::new();
                let _ = stream.read_to_end(&mut bytes).await;
                let reply = format!("got {}\n", bytes.len());
                record.lock().unwrap().push(bytes);
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        })
        .await;
        ByteRecorder { received, acceptor }
    }

    pub fn address(&self) -> SocketAddr {
        self.acceptor.address
    }

    /// Every connection's bytes so far, in the order they ended.
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (bounded) until `count` connections have ended.
    pub async fn wait_for(&self, count: usize) -> Vec<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "recorder saw {} connections",
                received.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

/// A TLS server for one certificate that writes its name after the
/// handshake and closes.
pub struct TlsNamedBackend {
    pub name: String,
    acceptor: Acceptor,
}

/// A self-signed certificate for `names`, with its key, as rustls types.
pub struct TestCertificate {
    pub der: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl TestCertificate {
    pub fn new(names: &[&str]) -> TestCertificate {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let certified = rcgen::generate_simple_self_signed(names).unwrap();
        TestCertificate {
            der: certified.cert.der().clone(),
            key: rustls::pki_types::PrivateKeyDer::Pkcs8(
                certified.signing_key.serialize_der().into(),
            ),
        }
    }
}

pub fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsNamedBackend {
    pub async fn start(name: &str, certificate: &TestCertificate) -> TlsNamedBackend {
        let config = rustls::ServerConfig::builder_with_provider(ring())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certificate.der.clone()], certificate.key.clone_key())
            .unwrap();
        let tls = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let reply = format!("{name}\n");
        let acceptor = Acceptor::start("127.0.0.1:0", move |stream| {
            let (tls, reply) = (tls.clone(), reply.clone());
            async move {
                if let Ok(mut stream) = tls.accept(stream).await {
                    let _ = stream.write_all(reply.as_bytes()).await;
                    let _ = stream.shutdown().await;
                }
            }
        })
        .await;
        TlsNamedBackend {
            name: name.to_owned(),
            acceptor,
        }
    }

    pub fn toml(&self) -> String {
        crate::support::backend_toml(&self.name, self.acceptor.address)
    }
}

/// Connects to `address`, reads the greeting line an [`EchoBackend`] sends
/// first, and returns it with the stream.
pub async fn connect_greeted(address: SocketAddr) -> (String, TcpStream) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let line = read_line(&mut stream).await;
    (line, stream)
}

/// One `\n`-terminated line (without it), bounded in time.
pub async fn read_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    tokio::time::timeout(WAIT, async {
        let mut byte = [0u8; 1];
        while stream.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
            line.push(byte[0]);
        }
    })
    .await
    .unwrap();
    String::from_utf8(line).unwrap()
}

/// Reads until the peer closes, bounded in time.
pub async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut bytes))
        .await
        .unwrap()
        .unwrap();
    bytes
}

/// A TCP listener config: one listener `tcp` (with `listener_extra` lines)
/// routing everything to pool `main` (with `pool_extra` lines).
pub fn tcp_config(listener_extra: &str, pool_extra: &str, backends: &[String]) -> String {
    format!(
        r#"
[[listeners]]
name = "tcp"
address = "127.0.0.1:0"
mode = "tcp"
{listener_extra}

  [[listeners.routes]]
  pool = "main"

[pools.main]
balancer = "builtin:round-robin"
backends = [{}]
{pool_extra}

[admin]
address = "127.0.0.1:0"
"#,
        backends.join(", ")
    )
}

/// A TCP listener `raw` whose one route goes to pool `echo` over `echo`:
/// TOML to append to a config.
pub fn echo_listener_toml(echo: &EchoBackend) -> String {
    format!(
        "\n[[listeners]]\nname = \"raw\"\naddress = \"127.0.0.1:0\"\nmode = \"tcp\"\n\n  [[listeners.routes]]\n  pool = \"echo\"\n\n[pools.echo]\nbalancer = \"builtin:round-robin\"\nbackends = [{{ address = \"{}\", name = \"echo\" }}]\n",
        echo.address()
    )
}

/// One exchange with an echo backend through `address`: its greeting
/// checked, `bytes` sent, the client's half closed; what came back.
pub async fn echo_once(address: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let (greeting, mut stream) = connect_greeted(address).await;
    assert_eq!(greeting, "echo");
    stream.write_all(bytes).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut echoed = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    echoed
}
