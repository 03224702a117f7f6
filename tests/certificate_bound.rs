//! Certificate-bound tokens (RFC 8705): the thumbprint of the client
//! certificate a token request came with reaches the issuer, computed from
//! the DER the host hands over.

mod common;

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{approve_on, clients, config, poll_body, start_on};
use device_grant::{
    ApprovedGrant, BackendError, CertificateThumbprint, DeviceGrant, EndpointRequest, ManualClock,
    TokenIssuer, TokenResponse,
};
use sha2::{Digest as _, Sha256};

/// Keeps the thumbprint each grant came with.
#[derive(Default)]
struct Issuer(Mutex<Vec<Option<CertificateThumbprint>>>);

#[async_trait::async_trait]
impl TokenIssuer for Issuer {
    async fn issue(&self, grant: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
        self.0.lock().unwrap().push(grant.client_certificate);
        Ok(TokenResponse::bearer(format!("t-{}", grant.id)))
    }
}

async fn redeem(certificate: Option<&[u8]>) -> Option<CertificateThumbprint> {
    let issuer = Arc::new(Issuer::default());
    let grant = DeviceGrant::builder(
        config().build().unwrap(),
        Arc::new(clients()),
        issuer.clone(),
    )
    .clock(Arc::new(ManualClock::default()))
    .build();
    let codes = start_on(&grant, "client_id=tv-app&scope=profile").await;
    approve_on(&grant, &codes, "alice").await;
    let body = poll_body("tv-app", codes.device_code.secret());
    let mut request = EndpointRequest::form(body.as_bytes());
    if let Some(der) = certificate {
        request = request.with_client_certificate(der);
    }
    grant.token(request).await.unwrap();
    let seen = issuer.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    seen[0]
}

#[tokio::test]
async fn the_issuer_gets_the_x5t_s256_of_the_client_certificate() {
    // Any bytes stand for the DER here: the thumbprint is their SHA-256,
    // computed here independently of the crate.
    let der = b"0\x82\x01\x0a certificate bytes as the TLS layer hands them over";
    let thumbprint = redeem(Some(der)).await.expect("a thumbprint");
    assert_eq!(
        thumbprint.to_base64url(),
        URL_SAFE_NO_PAD.encode(Sha256::digest(der))
    );
    assert!(!format!("{thumbprint:?}").contains(&thumbprint.to_base64url()));
}

#[tokio::test]
async fn without_a_certificate_the_issuer_gets_none() {
    assert_eq!(redeem(None).await, None);
}
