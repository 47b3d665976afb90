//! TLS pieces of the checks: the trust roots (system + an optional extra CA), the client configuration (no
//! session resumption), days until a certificate expires, and readable reasons for rustls errors.
//!
//! rustls with the aws-lc-rs provider, chosen explicitly so the process-wide default never matters, and the
//! platform verifier (system roots), the same stack reqwest uses for pooled `url` targets.

use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Errors building the TLS trust configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The extra CA file holds no usable certificate.
    #[error("no PEM certificate in the CA bundle {what}")]
    NoCertificate {
        /// Which bundle (file name or "given bytes").
        what: String,
    },
    /// A PEM block could not be read.
    #[error("bad PEM certificate in the CA bundle {what}")]
    BadPem {
        /// Which bundle.
        what: String,
        /// The parse error.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the verifier or protocol versions.
    #[error("cannot set up TLS verification")]
    Rustls(#[source] rustls::Error),
}

/// Reads every certificate of a PEM bundle.
pub fn parse_pem_bundle(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsSetupError::BadPem {
            what: what.to_string(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            what: what.to_string(),
        });
    }
    Ok(certs)
}

/// The client configurations of a checker, built on one verifier (the system roots are loaded once).
pub struct Configs {
    /// Bare `tls` checks: no ALPN, no session resumption.
    pub tls: Arc<rustls::ClientConfig>,
    /// Fresh HTTPS connections: ALPN `http/1.1`, no session resumption.
    pub https: Arc<rustls::ClientConfig>,
    /// The pooled client (`reuse_connections`): ALPN `h2` and `http/1.1`, sessions resumed as a pool would.
    pub pooled: rustls::ClientConfig,
}

/// Client configs trusting the system roots plus `extra_roots`. The fresh ones never resume a session: every
/// handshake is a new visitor's, so the server presents (and we check) its certificate each time.
pub fn client_configs(extra_roots: Vec<CertificateDer<'static>>) -> Result<Configs, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())
            .map_err(TlsSetupError::Rustls)?,
    );
    let config = |alpn: &[&[u8]], resume: bool| -> Result<rustls::ClientConfig, TlsSetupError> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsSetupError::Rustls)?
            .dangerous() // not dangerous: the platform verifier does full chain + hostname verification
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        if !resume {
            config.resumption = rustls::client::Resumption::disabled();
        }
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    };
    Ok(Configs {
        tls: Arc::new(config(&[], false)?),
        https: Arc::new(config(&[b"http/1.1"], false)?),
        pooled: config(&[b"h2", b"http/1.1"], true)?,
    })
}

/// Whole days from `now` until the DER certificate's notAfter (negative once expired); `None` if unparsable.
pub fn days_until_expiry(der: &[u8], now: SystemTime) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let not_after = cert.validity().not_after.timestamp();
    let now = match now.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok()?,
        Err(e) => -i64::try_from(e.duration().as_secs()).ok()?,
    };
    Some((not_after - now).div_euclid(86_400))
}

/// A short reason for an I/O error, looking inside for a rustls error.
pub fn describe_io(e: &std::io::Error) -> String {
    if let Some(inner) = e.get_ref() {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return describe_rustls(tls);
        }
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return describe_io(io); // hyper-rustls wraps the rustls error in two io::Errors
        }
    }
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        std::io::ErrorKind::UnexpectedEof => "connection closed early".into(),
        _ => e.to_string(),
    }
}

/// A short reason for a rustls error: what a person fixes ("certificate expired").
pub fn describe_rustls(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => "certificate expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => "certificate not valid yet".into(),
            C::UnknownIssuer => "certificate not trusted (unknown issuer; self-signed?)".into(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "certificate not valid for this host name".into()
            }
            C::Revoked => "certificate revoked".into(),
            other => format!("invalid certificate: {other:?}"),
        },
        other => format!("TLS error: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expiry_days_round_down() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        params.not_after = rcgen::date_time_ymd(2030, 1, 11);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let jan_1_2030 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000);
        assert_eq!(days_until_expiry(cert.der(), jan_1_2030), Some(10));
        assert_eq!(
            days_until_expiry(cert.der(), jan_1_2030 + Duration::from_secs(3600)),
            Some(9)
        );
        assert_eq!(
            days_until_expiry(cert.der(), jan_1_2030 + Duration::from_secs(11 * 86_400)),
            Some(-1)
        );
        assert_eq!(days_until_expiry(b"not a cert", jan_1_2030), None);
    }

    #[test]
    fn pem_bundles() {
        assert!(matches!(
            parse_pem_bundle(b"", "x.pem"),
            Err(TlsSetupError::NoCertificate { .. })
        ));
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["a".into()])
            .expect("p")
            .self_signed(&key)
            .expect("c");
        assert_eq!(
            parse_pem_bundle(cert.pem().as_bytes(), "x.pem")
                .expect("parses")
                .len(),
            1
        );
    }
}
