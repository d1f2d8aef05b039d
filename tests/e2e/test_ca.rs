//! A certificate authority made at test time (rcgen): it issues the
//! certificates listeners and backends serve, written as PEM files in a
//! temporary directory, and the clients that trust only it.

use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::CertificateDer;

/// A test CA and the certificates it signs, written as PEM files.
pub struct TestCa {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    pub der: CertificateDer<'static>,
    pub pem: String,
    dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Bascule test CA");
        let certificate = params.self_signed(&key).unwrap();
        TestCa {
            params,
            key,
            der: certificate.der().clone(),
            pem: certificate.pem(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes `<file>.pem` and `<file>.key` for a leaf valid for `names`;
    /// returns the TOML entry naming them.
    pub fn issue(&self, file: &str, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap();
        // What a scanner expects of a served certificate: a year or two of
        // validity left, and a revocation pointer (never fetched here).
        let year = 1970
            + std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                / 31_556_952;
        let year = i32::try_from(year).unwrap();
        params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
        params.not_after = rcgen::date_time_ymd(year + 2, 1, 1);
        params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec!["http://127.0.0.1:9/ca.crl".to_owned()],
        }];
        let issuer = rcgen::Issuer::new(self.params.clone(), &self.key);
        let leaf = params.signed_by(&key, &issuer).unwrap();
        let cert = self.dir.path().join(format!("{file}.pem"));
        let key_path = self.dir.path().join(format!("{file}.key"));
        std::fs::write(&cert, leaf.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert.display().to_string(), key_path.display().to_string())
    }

    pub fn path(&self, file: &str) -> std::path::PathBuf {
        self.dir.path().join(file)
    }

    /// A rustls client trusting only this CA, offering `alpn`, limited to
    /// `versions`.
    pub fn client(
        &self,
        alpn: &[&str],
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}
