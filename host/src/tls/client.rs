//! TLS from the proxy to a pool's backends: the rustls client
//! configuration built from the pool's `tls` (roots from `ca` or the
//! platform, verification, a client certificate for mutual TLS), and the
//! handshake. One configuration per pool keeps its session cache, so new
//! connections to a backend resume their TLS session.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::certificates::{self, CertificateError};
use crate::config::{UpstreamProtocol, UpstreamTlsConfig};

/// A pool's TLS to its backends.
pub struct UpstreamTls {
    connector: TlsConnector,
    /// Unique per configuration: pooled connections are kept apart by it.
    id: u64,
}

/// Where one backend's TLS connections go: the pool's configuration and
/// the name its certificate must carry.
#[derive(Clone)]
pub struct TlsTarget {
    tls: Arc<UpstreamTls>,
    name: ServerName<'static>,
    /// The configuration and the name, for keeping pooled connections
    /// apart.
    key: u64,
}

/// Why a pool's TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamTlsError {
    /// The `ca` bundle cannot be used.
    #[error("{path} holds no usable PEM certificate to trust", path = path.display())]
    Ca {
        /// The bundle.
        path: PathBuf,
    },
    /// The client certificate or its key cannot be used.
    #[error(transparent)]
    ClientCertificate(#[from] CertificateError),
    /// The crypto provider cannot do the TLS versions rustls offers by
    /// default (a build problem, never a config one).
    #[error("the TLS crypto provider supports no default protocol version")]
    Provider(#[source] rustls::Error),
    /// rustls refused the client certificate.
    #[error("the client certificate cannot be used")]
    Rejected(#[source] rustls::Error),
}

// === impl UpstreamTls ===

impl UpstreamTls {
    /// Builds the client configuration of `config`: reads `ca` (or the
    /// platform's roots) and the client certificate, and offers the ALPN
    /// protocols `protocol` allows.
    pub fn load(
        config: &UpstreamTlsConfig,
        protocol: UpstreamProtocol,
    ) -> Result<Self, UpstreamTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(UpstreamTlsError::Provider)?;
        let builder = if config.verify {
            builder.with_root_certificates(roots(config.ca.as_deref())?)
        } else {
            tracing::warn!(
                field = %config.location.field,
                "TLS to backends WITHOUT certificate verification (`verify = false`): anyone on the path can impersonate them"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
        };
        let mut client = match &config.client_certificate {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let (chain, key) = certificates::read_pair(cert, key)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(UpstreamTlsError::Rejected)?
            }
        };
        // The backend connection speaks HTTP/1.1.
        client.alpn_protocols = match protocol {
            UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
            UpstreamProtocol::Http2 => vec![b"h2".to_vec()],
            UpstreamProtocol::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        };
        static IDS: AtomicU64 = AtomicU64::new(1);
        Ok(UpstreamTls {
            connector: TlsConnector::from(Arc::new(client)),
            id: IDS.fetch_add(1, Ordering::Relaxed),
        })
    }
}

// === impl TlsTarget ===

impl std::fmt::Debug for TlsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTarget")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TlsTarget {
    /// Connections of `tls` to a backend that must be `name`.
    pub fn new(tls: Arc<UpstreamTls>, name: ServerName<'static>) -> Self {
        let key = xxhash_rust::xxh3::xxh3_64_with_seed(name.to_str().as_bytes(), tls.id);
        TlsTarget { tls, name, key }
    }

    /// Identifies the configuration and the name.
    pub fn key(&self) -> u64 {
        self.key
    }

    /// The handshake over `stream`.
    pub async fn connect<S>(&self, stream: S) -> std::io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.tls.connector.connect(self.name.clone(), stream).await
    }
}

fn roots(ca: Option<&Path>) -> Result<RootCertStore, UpstreamTlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let unusable = || UpstreamTlsError::Ca {
                path: path.to_owned(),
            };
            let bundle = std::fs::read(path).map_err(|_| unusable())?;
            for certificate in CertificateDer::pem_slice_iter(&bundle) {
                let certificate = certificate.map_err(|_| unusable())?;
                roots.add(certificate).map_err(|_| unusable())?;
            }
            if roots.is_empty() {
                return Err(unusable());
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for error in &native.errors {
                tracing::warn!(%error, "a platform root certificate could not be read");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(added, ignored, "platform roots loaded for upstream TLS");
        }
    }
    Ok(roots)
}

/// `verify = false`: any certificate is accepted, signatures still checked
/// (the handshake stays a handshake; only the identity is not).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
