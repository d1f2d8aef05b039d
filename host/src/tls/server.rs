//! A listener's TLS: the rustls server configuration built from
//! `[listeners.tls]`, and the handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::certificates::{self, CertificateError};
use super::resolver::SniResolver;
use super::stream::ClientStream;
use crate::config::{TlsConfig, TlsVersion, UnknownSni};

/// A listener's TLS termination, ready to accept.
pub struct ServerTls {
    acceptor: TlsAcceptor,
}

/// What a handshake negotiated, as requests and plugins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSession {
    /// `1.2` or `1.3`.
    pub version: &'static str,
    /// The ALPN protocol agreed (`h2`, `http/1.1`), when the client
    /// offered one.
    pub alpn: Option<String>,
    /// The server name the client asked for.
    pub sni: Option<String>,
}

// === impl ServerTls ===

impl ServerTls {
    /// Reads and checks every certificate of `config`; an error comes with
    /// the index of the certificate entry it came from.
    pub fn load(config: &TlsConfig) -> Result<Self, (usize, CertificateError)> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut resolver = SniResolver::default();
        let mut default = None;
        for (index, certificate) in config.certificates.iter().enumerate() {
            let loaded = certificates::load(&certificate.cert, &certificate.key, &provider)
                .map_err(|error| (index, error))?;
            let names = if certificate.sni.is_empty() {
                &loaded.names
            } else {
                &certificate.sni
            };
            resolver.add(names, &loaded.key);
            default.get_or_insert_with(|| Arc::clone(&loaded.key));
        }
        if config.unknown_sni == UnknownSni::Default {
            resolver.set_default(default);
        }
        let server = server_config(config, provider, resolver);
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
        })
    }

    /// Runs the handshake on `stream` within `timeout`; `None` when it
    /// failed or timed out (logged at debug: clients cause it). Counted
    /// per `listener`.
    pub async fn accept(
        &self,
        stream: TcpStream,
        timeout: Duration,
        listener: &str,
    ) -> Option<(ClientStream, TlsSession)> {
        let peer = stream.peer_addr().ok();
        let (tls, session) = self.handshake(stream, peer, timeout, listener).await?;
        Some((ClientStream::Tls(Box::new(tls)), session))
    }

    /// [`ServerTls::accept`] over any byte stream from `peer`: a TCP
    /// listener's connection, replaying the ClientHello it read to route.
    pub async fn handshake<IO>(
        &self,
        io: IO,
        peer: Option<SocketAddr>,
        timeout: Duration,
        listener: &str,
    ) -> Option<(TlsStream<IO>, TlsSession)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let failed = |reason: &'static str| {
            metrics::counter!(crate::metrics::TLS_HANDSHAKE_ERRORS, "listener" => listener.to_owned(), "reason" => reason)
                .increment(1);
        };
        match tokio::time::timeout(timeout, self.acceptor.accept(io)).await {
            Ok(Ok(tls)) => {
                let (_, connection) = tls.get_ref();
                let session = TlsSession {
                    version: match connection.protocol_version() {
                        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
                        _ => "1.3",
                    },
                    alpn: connection
                        .alpn_protocol()
                        .map(|alpn| String::from_utf8_lossy(alpn).into_owned()),
                    sni: connection.server_name().map(str::to_owned),
                };
                metrics::counter!(
                    crate::metrics::TLS_HANDSHAKES,
                    "listener" => listener.to_owned(),
                    "version" => session.version,
                    "alpn" => session.alpn.clone().unwrap_or_else(|| "none".to_owned()),
                )
                .increment(1);
                Some((tls, session))
            }
            Ok(Err(error)) => {
                failed("failed");
                tracing::debug!(client = ?peer, %error, "TLS handshake failed");
                None
            }
            Err(_) => {
                failed("timeout");
                crate::metrics::timed_out("tls-handshake");
                tracing::debug!(client = ?peer, "TLS handshake timed out");
                None
            }
        }
    }
}

fn server_config(
    config: &TlsConfig,
    provider: Arc<CryptoProvider>,
    resolver: SniResolver,
) -> ServerConfig {
    let versions: &[&rustls::SupportedProtocolVersion] = match config.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        // The ring provider supports both versions: this cannot fail.
        .unwrap_or_else(|_| ServerConfig::builder());
    let mut server = builder
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    // The server's cipher suite order (rustls's: AEADs with forward
    // secrecy, strongest first), not the client's.
    server.ignore_client_order = true;
    server.alpn_protocols = config
        .alpn
        .iter()
        .map(|protocol| protocol.as_bytes().to_vec())
        .collect();
    if config.session_tickets {
        match rustls::crypto::ring::Ticketer::new() {
            Ok(ticketer) => server.ticketer = ticketer,
            Err(error) => tracing::warn!(%error, "no TLS session tickets"),
        }
    } else {
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
    }
    server
}
