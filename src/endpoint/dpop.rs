//! DPoP at the token endpoint (RFC 9449 §5): the proof a token request
//! carries, checked before anything else, and the thumbprint handed to the
//! issuer.

use std::sync::Arc;

use crate::endpoint::EndpointRequest;
use crate::grant::DeviceGrant;
use crate::host::dpop_replay::ProofReplay;
use crate::protocol::dpop::{DpopAlgorithm, DpopError, DpopVerifier, JwkThumbprint};
use crate::protocol::dpop_nonce::DpopNonces;
use crate::protocol::error::OAuthError;

/// Why a [`DpopConfig`] was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopConfigError {
    /// The token endpoint URL is not an absolute `http(s)` URL without query
    /// and fragment.
    #[error("the DPoP token endpoint must be an absolute http(s) URL without query or fragment")]
    TokenEndpoint,
    /// The device authorization endpoint URL is not an absolute `http(s)`
    /// URL without query and fragment.
    #[error(
        "the DPoP device authorization endpoint must be an absolute http(s) URL without query or fragment"
    )]
    DeviceAuthorizationEndpoint,
}

/// DPoP at the token endpoint: where it is (what a proof's `htu` must name),
/// the proof rules, and the store that remembers used proofs. Given to
/// [`DeviceGrantBuilder::dpop`](crate::DeviceGrantBuilder::dpop).
///
/// With it, a token request that carries a `DPoP` header
/// ([`EndpointRequest::dpop`]) must carry a valid proof for `POST` to the
/// token endpoint, checked before the device code is looked at: a refused
/// proof is `invalid_dpop_proof` and changes nothing. The proof's key
/// thumbprint reaches the issuer as
/// [`ApprovedGrant::dpop_jkt`](crate::ApprovedGrant::dpop_jkt), to bind the
/// tokens it mints. A request without a proof gets what the issuer mints
/// for `dpop_jkt: None` (bearer tokens, usually). Without a `DpopConfig`,
/// the header is ignored (RFC 9449 §5: a server that does not serve DPoP
/// issues bearer tokens).
pub struct DpopConfig {
    pub(crate) verifier: DpopVerifier,
    pub(crate) token_endpoint: String,
    pub(crate) replay: Arc<dyn ProofReplay>,
    pub(crate) nonces: Option<DpopNonces>,
    pub(crate) device_authorization_endpoint: Option<String>,
}

impl std::fmt::Debug for DpopConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopConfig")
            .field("verifier", &self.verifier)
            .field("token_endpoint", &self.token_endpoint)
            .field("nonces", &self.nonces)
            .field(
                "device_authorization_endpoint",
                &self.device_authorization_endpoint,
            )
            .finish_non_exhaustive()
    }
}

impl DpopConfig {
    /// DPoP for the token endpoint at `token_endpoint` (its absolute URL as
    /// clients address it), with the default [`DpopVerifier`], remembering
    /// used proofs in `replay` (a [`MemoryProofReplay`](crate::MemoryProofReplay)
    /// for one process; a shared store for several instances).
    pub fn new(
        token_endpoint: &str,
        replay: Arc<dyn ProofReplay>,
    ) -> Result<Self, DpopConfigError> {
        Ok(Self {
            verifier: DpopVerifier::default(),
            token_endpoint: endpoint_url(token_endpoint).ok_or(DpopConfigError::TokenEndpoint)?,
            replay,
            nonces: None,
            device_authorization_endpoint: None,
        })
    }

    /// The proof rules (algorithms, `iat` leeway).
    pub fn verifier(mut self, verifier: DpopVerifier) -> Self {
        self.verifier = verifier;
        self
    }

    /// Requires server nonces (RFC 9449 §8): a proof without a nonce these
    /// [`DpopNonces`] issued (in the current window or the one before) is
    /// refused with `use_dpop_nonce` ([`OAuthError::UseDpopNonce`]) and a
    /// fresh nonce in the `DPoP-Nonce` header, before anything else is
    /// looked at. A client retries at once with the nonce (openid-client
    /// and other RFC 9449 clients do so by themselves) and keeps it for its
    /// later proofs. Off by default: it costs one refused request per client
    /// and nonce lifetime, and bounds how long a proof made in advance can
    /// be used. Several instances must share the nonces' key.
    pub fn nonces(mut self, nonces: DpopNonces) -> Self {
        self.nonces = Some(nonces);
        self
    }

    /// Binds device codes to DPoP keys, an extension of RFC 9449 to the
    /// device grant, off by default: a device authorization request that
    /// carries a `DPoP` proof for `POST` to `device_authorization_endpoint`
    /// (its absolute URL as clients address it) binds the device code to the
    /// proof's key ([`RequestDetails::dpop_jkt`](crate::RequestDetails::dpop_jkt)),
    /// and every token request for that device code must then carry a proof
    /// of the same key, or is refused with `invalid_dpop_proof`
    /// ([`DpopError::Missing`], [`DpopError::WrongKey`]) and changes nothing.
    /// A thief of the device code alone, without the device's key, can then
    /// not redeem it. A request without a proof is not bound; a refused proof
    /// at the device authorization endpoint is `invalid_dpop_proof` and
    /// stores nothing. Proofs there go through the same checks as at the
    /// token endpoint (nonces and replay included).
    pub fn bind_device_codes(
        mut self,
        device_authorization_endpoint: &str,
    ) -> Result<Self, DpopConfigError> {
        self.device_authorization_endpoint = Some(
            endpoint_url(device_authorization_endpoint)
                .ok_or(DpopConfigError::DeviceAuthorizationEndpoint)?,
        );
        Ok(self)
    }

    /// The algorithms accepted: what `dpop_signing_alg_values_supported`
    /// lists ([`Metadata::dpop`](crate::Metadata::dpop)).
    pub fn supported_algorithms(&self) -> &[DpopAlgorithm] {
        self.verifier.supported_algorithms()
    }

    /// The token endpoint URL proofs must name.
    pub fn token_endpoint(&self) -> &str {
        &self.token_endpoint
    }
}

/// An endpoint's absolute `http(s)` URL, without query and fragment, as a
/// proof's `htu` is compared with it.
fn endpoint_url(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    let fits = matches!(url.scheme(), "https" | "http")
        && url.query().is_none()
        && url.fragment().is_none()
        && url.has_host();
    fits.then(|| url.into())
}

impl DeviceGrant {
    /// The DPoP proof of a token request, checked as the device code grant
    /// checks it (RFC 9449 §4.3, replay included), for the host's other
    /// grants served at the same endpoint (`refresh_token`, whose tokens
    /// stay bound to the key: RFC 9449 §5).
    ///
    /// `Ok(None)`: the request has no proof, or no [`DpopConfig`] is set.
    /// `Ok(Some(jkt))`: a valid, unused proof made with the key `jkt`.
    /// `Err`: `invalid_dpop_proof`, `use_dpop_nonce` (when
    /// [`DpopConfig::nonces`] are required), or the replay store's failure.
    pub async fn dpop_proof(
        &self,
        request: &EndpointRequest<'_>,
    ) -> Result<Option<JwkThumbprint>, OAuthError> {
        match &self.inner.dpop {
            Some(dpop) => self.check_proof(dpop, request, &dpop.token_endpoint).await,
            None => Ok(None),
        }
    }

    /// The device authorization request's DPoP proof, when device codes are
    /// bound ([`DpopConfig::bind_device_codes`]): `Ok(None)` without a proof
    /// or without binding.
    pub(crate) async fn device_code_binding(
        &self,
        request: &EndpointRequest<'_>,
    ) -> Result<Option<JwkThumbprint>, OAuthError> {
        match &self.inner.dpop {
            Some(dpop) => match &dpop.device_authorization_endpoint {
                Some(endpoint) => self.check_proof(dpop, request, endpoint).await,
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// The proof of `request` for `POST` to `endpoint` (RFC 6749 §3.1 and
    /// §3.2: both endpoints are POST only), with the nonce and replay checks.
    async fn check_proof(
        &self,
        dpop: &DpopConfig,
        request: &EndpointRequest<'_>,
        endpoint: &str,
    ) -> Result<Option<JwkThumbprint>, OAuthError> {
        let Some(proof) = request.dpop else {
            return Ok(None);
        };
        let now = self.now();
        let proof = dpop.verifier.verify(proof, "POST", endpoint, None, now)?;
        if let Some(nonces) = &dpop.nonces {
            if !proof.nonce.as_deref().is_some_and(|n| nonces.check(n, now)) {
                return Err(OAuthError::UseDpopNonce {
                    nonce: nonces.current(now),
                });
            }
        }
        if !dpop
            .replay
            .first_use(&proof.id, proof.valid_until, now)
            .await?
        {
            return Err(DpopError::Replayed.into());
        }
        Ok(Some(proof.jkt))
    }
}
