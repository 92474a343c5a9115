//! TLS listeners: rustls (ring provider) from PEM files, with optional client-certificate
//! authentication against a CA bundle (Kafka's `ssl.client.auth=required`). A verified client
//! certificate names the connection's principal as Kafka's default `ssl.principal.mapping.rules`
//! do: `User:` and the certificate subject's RFC 4514 (RFC 2253) name, e.g. `User:CN=alice,O=acme`.
//!
//! ```toml
//! [tls]
//! cert = "server.pem"        # certificate chain, leaf first
//! key = "server-key.pem"     # its private key (PKCS#8, PKCS#1 or SEC1)
//! client_ca = "ca.pem"       # optional: clients must present a certificate it signed
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// The `[tls]` section of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain of the listener, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the certificate.
    pub key: PathBuf,
    /// PEM CA bundle: when set, clients must present a certificate signed by one of them.
    pub client_ca: Option<PathBuf>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", path.display());
    Ok(certs)
}

impl TlsConfig {
    /// The acceptor for this listener; fails on unreadable or mismatched files.
    pub fn acceptor(&self) -> anyhow::Result<TlsAcceptor> {
        let chain = certificates(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("reading the private key {}", self.key.display()))?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates(ca)? {
                    roots
                        .add(cert)
                        .with_context(|| format!("a CA certificate in {}", ca.display()))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .context("client certificate verifier")?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(chain, key)
            .context("the certificate and its key do not match")?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// The principal a verified client certificate names (`User:` + its subject), when the
/// client presented one; `None` for a certificate that does not parse (then the
/// connection stays `User:ANONYMOUS`, as without a certificate).
pub fn client_principal(conn: &rustls::ServerConnection) -> Option<String> {
    use x509_cert::der::Decode;
    let leaf = conn.peer_certificates()?.first()?;
    match x509_cert::Certificate::from_der(leaf.as_ref()) {
        Ok(cert) => {
            let principal = format!("User:{}", cert.tbs_certificate().subject());
            tracing::info!(%principal, "client certificate verified");
            Some(principal)
        }
        Err(e) => {
            tracing::warn!(error = %e, "client certificate subject unreadable");
            None
        }
    }
}
