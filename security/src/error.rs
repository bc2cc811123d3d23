//! The PKI layer's one error type.

/// Errors of the PKI layer. Messages name the thing that was wrong.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("certificate operation failed while {operation}: {source}")]
    Certificate {
        operation: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("{0}")]
    InvalidToken(String),
    #[error("cannot read the certificate {what}: {reason}")]
    BadCertificate { what: &'static str, reason: String },
    #[error("TLS configuration failed: {0}")]
    Tls(String),
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl SecurityError {
    pub(crate) fn cert(operation: &'static str) -> impl FnOnce(rcgen::Error) -> Self {
        move |source| SecurityError::Certificate { operation, source }
    }
}
