//! HTTPS: the server's TLS settings, built by rustls (ring provider, TLS 1.2 and 1.3
//! only) from PEM bytes the Python side read, with HTTP/2 and HTTP/1.1 offered by ALPN
//! (`h2` first). Certificates can be replaced while the server runs
//! ([`Tls::reload`], on `SIGHUP`): connections already open keep the configuration
//! they were accepted with, new ones get the new one.
//!
//! With a client CA bundle, every client must present a certificate that chains to it
//! (mutual TLS); without one, clients are not asked for a certificate.
//!
//! Private keys arrive decrypted: `data_bridge.serve.tls` decrypts a password-protected key
//! before handing it over, so no password crosses into Rust.

use std::sync::Arc;

use parking_lot::RwLock;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::errors::ApiError;

/// TLS material as Python hands it over: certificate chain, key and client CA bundle,
/// each PEM.
pub type PemBundle = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

/// PEM-encoded material for a TLS server.
pub struct TlsMaterial<'a> {
    /// The certificate chain, leaf first.
    pub cert_chain: &'a [u8],
    /// The private key of the leaf (PKCS#8, PKCS#1 or SEC1, unencrypted).
    pub key: &'a [u8],
    /// CA certificates client certificates must chain to (`None`: no client auth).
    pub client_ca: Option<&'a [u8]>,
}

fn bad(what: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::Config(format!("TLS: {what}: {err}"))
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, ApiError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(what, e))?;
    if certs.is_empty() {
        return Err(bad(what, "no PEM certificate found"));
    }
    Ok(certs)
}

/// The rustls configuration for `material`.
fn server_config(material: &TlsMaterial<'_>) -> Result<ServerConfig, ApiError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(material.cert_chain, "certificate file")?;
    let key = PrivateKeyDer::from_pem_slice(material.key).map_err(|e| bad("key file", e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| bad("protocol versions", e))?;
    let builder = match material.client_ca {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(pem, "CA certificates file")? {
                roots
                    .add(cert)
                    .map_err(|e| bad("CA certificates file", e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| bad("CA certificates file", e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| bad("certificate and key", e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A server's TLS settings, replaceable while it runs.
pub struct Tls {
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Settings for `material`, or why it cannot be used (`ApiError::Config`).
    pub fn new(material: &TlsMaterial<'_>) -> Result<Self, ApiError> {
        Ok(Tls {
            current: RwLock::new(Arc::new(server_config(material)?)),
        })
    }

    /// Replaces the settings for connections accepted from now on; on error the old
    /// ones stay.
    pub fn reload(&self, material: &TlsMaterial<'_>) -> Result<(), ApiError> {
        let config = Arc::new(server_config(material)?);
        *self.current.write() = config;
        Ok(())
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_material_is_a_config_error() {
        let material = TlsMaterial {
            cert_chain: b"not a certificate",
            key: b"not a key",
            client_ca: None,
        };
        match Tls::new(&material) {
            Err(ApiError::Config(msg)) => assert!(msg.contains("certificate file"), "{msg}"),
            _ => panic!("expected a configuration error"),
        }
    }
}
