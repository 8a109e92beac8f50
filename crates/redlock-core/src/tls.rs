//! TLS to a node: which certificates to trust, which to present, and what a failed
//! handshake means in words.
//!
//! The engine does its own handshake (rustls, ring provider) and hands the encrypted stream
//! to the redis crate, so that a node can be verified under a name other than the host it
//! is reached at (`servername`), and so that a refused certificate is reported as the reason
//! it was refused. Certificates and keys are never printed: a configuration prints as the
//! names of the fields that are set.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};

/// How to encrypt the connection to a node, in the terms of Node's `tls.connect` options.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificates of the CAs to trust instead of the system's.
    pub ca: Option<Vec<u8>>,
    /// PEM client certificate (chain), for servers that ask for one (`tls-auth-clients`).
    pub cert: Option<Vec<u8>>,
    /// PEM private key of `cert`. Never printed.
    pub key: Option<Vec<u8>>,
    /// The name the server's certificate must be valid for, when not the host's own.
    pub servername: Option<String>,
    /// Whether the server's certificate is verified (true unless asked otherwise). With
    /// false, any certificate is accepted: the connection is encrypted but not
    /// authenticated.
    pub reject_unauthorized: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            ca: None,
            cert: None,
            key: None,
            servername: None,
            reject_unauthorized: true,
        }
    }
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: bool| if v { "<set>" } else { "<none>" };
        f.debug_struct("TlsConfig")
            .field("ca", &set(self.ca.is_some()))
            .field("cert", &set(self.cert.is_some()))
            .field("key", &set(self.key.is_some()))
            .field("servername", &self.servername)
            .field("reject_unauthorized", &self.reject_unauthorized)
            .finish()
    }
}

/// What is ready to connect: the rustls configuration and the name to verify.
#[derive(Clone)]
pub(crate) struct Handshake {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) name: ServerName<'static>,
}

/// Makes ring the process's default rustls provider, for the TLS the redis crate does itself
/// (cluster members), which builds its configuration from the default. A no-op after the
/// first call.
pub(crate) fn install_provider() {
    let _ = ring::default_provider().install_default();
}

impl TlsConfig {
    /// Checks the certificates and key and prepares the handshake for a node at `host`.
    /// The error says which field is wrong, never what it holds.
    pub(crate) fn handshake(&self, host: &str) -> Result<Handshake, &'static str> {
        let provider = Arc::new(ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|_| "no TLS protocol version is available")?;
        let builder = if self.reject_unauthorized {
            let roots = match &self.ca {
                Some(pem) => {
                    let mut roots = RootCertStore::empty();
                    for cert in certificates(pem).ok_or("tls.ca holds no PEM certificate")? {
                        roots
                            .add(cert)
                            .map_err(|_| "tls.ca holds a certificate that cannot be used")?;
                    }
                    roots
                }
                None => system_roots().clone(),
            };
            builder.with_root_certificates(roots)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        };
        let config = match (&self.cert, &self.key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = certificates(cert).ok_or("tls.cert holds no PEM certificate")?;
                let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| {
                    "tls.key holds no unencrypted PEM private key (encrypted keys are not supported)"
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|_| "tls.key does not fit tls.cert")?
            }
            _ => return Err("tls.cert and tls.key must be given together"),
        };
        let name = self.servername.as_deref().unwrap_or(host);
        let name = ServerName::try_from(name.trim_start_matches('[').trim_end_matches(']'))
            .map_err(|_| "the server name to verify is not a valid DNS name or IP address")?
            .to_owned();
        Ok(Handshake {
            config: Arc::new(config),
            name,
        })
    }
}

/// Every certificate in `pem`, or `None` when it holds none or a malformed one.
fn certificates(pem: &[u8]) -> Option<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    Some(certs).filter(|c| !c.is_empty())
}

/// The operating system's trusted CAs, read once per process. Unreadable ones are skipped:
/// a node whose CA is missing fails its handshake with "not signed by a trusted CA".
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        roots
    })
}

/// What a failed TLS connection means, in words, from the error the handshake (or the first
/// read after it) returned. Holds no secret: rustls errors name certificate problems and
/// alerts only.
pub(crate) fn describe(error: &(dyn std::error::Error + 'static), name: &str) -> Option<String> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(e) = e.downcast_ref::<rustls::Error>() {
            return Some(describe_rustls(e, name));
        }
        // io::Error hides its inner error from source() in some versions; look inside.
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return Some(describe_rustls(inner, name));
            }
        }
        cause = e.source();
    }
    None
}

/// The same words for a failed handshake that reaches us only as text (the redis crate's
/// cluster client keeps no error source): rustls's names for the refusal, read back into
/// the error they stand for.
pub(crate) fn describe_text(text: &str, name: &str) -> Option<String> {
    use rustls::AlertDescription as Alert;
    use rustls::Error::{AlertReceived, InvalidCertificate};
    let known = [
        (
            "UnknownIssuer",
            InvalidCertificate(CertificateError::UnknownIssuer),
        ),
        (
            "NotValidForName",
            InvalidCertificate(CertificateError::NotValidForName),
        ),
        ("Expired", InvalidCertificate(CertificateError::Expired)),
        (
            "CertificateRequired",
            AlertReceived(Alert::CertificateRequired),
        ),
        ("HandshakeFailure", AlertReceived(Alert::HandshakeFailure)),
        ("BadCertificate", AlertReceived(Alert::BadCertificate)),
        ("UnknownCA", AlertReceived(Alert::UnknownCA)),
        (
            "CertificateUnknown",
            AlertReceived(Alert::CertificateUnknown),
        ),
    ];
    let (_, error) = known.into_iter().find(|(word, _)| text.contains(word))?;
    Some(describe_rustls(&error, name))
}

fn describe_rustls(error: &rustls::Error, name: &str) -> String {
    use rustls::AlertDescription as Alert;
    let why = match error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the server's certificate is not signed by a trusted CA (check tls.ca)".to_owned()
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the server's certificate is not valid for the name {name} (check the host or tls.servername)"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "the server's certificate has expired".to_owned(),
        rustls::Error::InvalidCertificate(other) => {
            format!("the server's certificate was refused: {other:?}")
        }
        rustls::Error::AlertReceived(
            alert @ (Alert::CertificateRequired
            | Alert::HandshakeFailure
            | Alert::BadCertificate
            | Alert::UnknownCA
            | Alert::CertificateUnknown),
        ) => format!(
            "the server refused the connection ({alert:?}): it may require a client certificate it trusts (tls.cert and tls.key)"
        ),
        other => other.to_string(),
    };
    format!("TLS failed: {why}")
}

/// Accepts any server certificate (`rejectUnauthorized: false`), still checking that the
/// server holds the key of the certificate it shows.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
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

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handshake_failure_known_only_as_text_gets_the_same_words() {
        let text =
            "Failed to create initial connections - Io: invalid peer certificate: UnknownIssuer";
        let words = describe_text(text, "h").unwrap();
        let error = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(words, describe_rustls(&error, "h"));
        assert!(words.contains("not signed by a trusted CA"));
        assert!(describe_text("Connection refused (os error 111)", "h").is_none());
    }
}
