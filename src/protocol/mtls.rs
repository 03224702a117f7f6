//! Certificate-bound tokens (RFC 8705): the SHA-256 thumbprint of the client
//! certificate a token request came with, for the issuer to bind tokens to
//! (`cnf` member `x5t#S256`, RFC 8705 §3.1).
//!
//! The crate terminates no TLS: the host, which does, passes the client
//! certificate's DER with the token request
//! ([`EndpointRequest::client_certificate`](crate::EndpointRequest::client_certificate)),
//! and the issuer receives its thumbprint as
//! [`ApprovedGrant::client_certificate`](crate::ApprovedGrant::client_certificate).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

/// The `x5t#S256` thumbprint of an X.509 certificate (RFC 8705 §3.1): the
/// SHA-256 of its DER encoding. A digest of a public certificate: no secret.
/// `Debug` shows its first characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertificateThumbprint([u8; 32]);

impl CertificateThumbprint {
    /// The thumbprint of a certificate in DER form, as the TLS layer hands
    /// it over.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// The thumbprint as `x5t#S256` carries it: unpadded base64url.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for CertificateThumbprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertificateThumbprint({}…)", &self.to_base64url()[..8])
    }
}

impl std::fmt::Display for CertificateThumbprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_base64url())
    }
}
