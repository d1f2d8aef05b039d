//! One certificate chain and key from PEM files, checked: a chain that is
//! not PEM, a missing or unsupported key, and a key that does not match
//! the certificate are errors naming the file; an expired certificate is
//! a warning.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// Why a certificate or its key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The file could not be read.
    #[error("cannot read {path}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no PEM `CERTIFICATE` block.
    #[error("{path} holds no PEM certificate (expected `-----BEGIN CERTIFICATE-----`)", path = path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A PEM block of the chain is malformed.
    #[error("{path} is not a valid PEM certificate chain", path = path.display())]
    BadChain {
        /// The file.
        path: PathBuf,
        /// The PEM error.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The file holds no PEM private key.
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", path = path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The key is of a kind rustls cannot sign with.
    #[error("the key in {path} is not supported", path = path.display())]
    UnsupportedKey {
        /// The file.
        path: PathBuf,
        /// rustls's error.
        #[source]
        source: rustls::Error,
    },
    /// The key is not the certificate's.
    #[error("the key in {key} does not match the certificate in {cert}", key = key.display(), cert = cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The leaf certificate cannot be parsed.
    #[error("the first certificate in {path} cannot be parsed", path = path.display())]
    Unparsable {
        /// The file.
        path: PathBuf,
    },
}

/// A loaded certificate: the key rustls signs with, and the DNS names the
/// leaf certificate is valid for.
pub(super) struct LoadedCertificate {
    pub(super) key: Arc<CertifiedKey>,
    pub(super) names: Vec<String>,
}

/// Reads `cert` (PEM chain, leaf first) and `key`, and checks they belong
/// together.
pub(super) fn load(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<LoadedCertificate, CertificateError> {
    let (chain, private) = read_pair(cert, key)?;
    let names = chain
        .first()
        .map(|leaf| leaf_names(leaf, cert))
        .transpose()?
        .unwrap_or_default();
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|source| CertificateError::UnsupportedKey {
            path: key.to_owned(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|_| CertificateError::KeyMismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
        })?;
    Ok(LoadedCertificate {
        key: Arc::new(certified),
        names,
    })
}

/// The PEM chain in `cert` (at least one certificate) and the PEM private
/// key in `key`, unchecked against each other: a listener's certificate
/// and an upstream client certificate are read alike.
pub(super) fn read_pair(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), CertificateError> {
    let chain = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| CertificateError::BadChain {
            path: cert.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(CertificateError::NoCertificate {
            path: cert.to_owned(),
        });
    }
    let private =
        PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|_| CertificateError::NoKey {
            path: key.to_owned(),
        })?;
    Ok((chain, private))
}

fn read(path: &Path) -> Result<Vec<u8>, CertificateError> {
    std::fs::read(path).map_err(|source| CertificateError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The leaf's DNS names (subject alternative names, else the common
/// name), lowercase; warns when it has expired or is not valid yet.
fn leaf_names(leaf: &CertificateDer<'_>, path: &Path) -> Result<Vec<String>, CertificateError> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(leaf).map_err(|_| CertificateError::Unparsable {
            path: path.to_owned(),
        })?;
    if !parsed.validity().is_valid() {
        tracing::warn!(
            certificate = %path.display(),
            not_before = %parsed.validity().not_before,
            not_after = %parsed.validity().not_after,
            "certificate is outside its validity period (expired or not yet valid): clients will refuse it"
        );
    }
    let mut names: Vec<String> = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => {
                        Some(dns.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names.extend(
            parsed
                .subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    Ok(names)
}
