//! Minting tokens: the host's job, from the grant the crate hands it.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::protocol::authorization::{Approval, AuthorizationId, RequestDetails};
use crate::protocol::authorization_details::AuthorizationDetails;
use crate::protocol::client::Client;
use crate::protocol::dpop::{DPOP_TOKEN_TYPE, JwkThumbprint};
use crate::protocol::error::BackendError;
use crate::protocol::mtls::CertificateThumbprint;
use crate::protocol::scope::ScopeSet;

/// An approved, just-redeemed device authorization: what tokens are minted from.
#[derive(Debug, Clone)]
pub struct ApprovedGrant {
    /// The authorization's identifier: keep it with the tokens, to revoke them if
    /// the device code is replayed.
    pub id: AuthorizationId,
    /// The client's registration.
    pub client: Arc<Client>,
    /// The request as the device made it.
    pub request: Arc<RequestDetails>,
    /// The person's approval: subject, granted scopes and authorization
    /// details, time, host data.
    pub approval: Arc<Approval>,
    /// The thumbprint of the key of the token request's DPoP proof (RFC
    /// 9449), when the request carried a valid one: bind the tokens to it
    /// (`cnf.jkt` in the access token or its introspection, RFC 9449 §6)
    /// and answer `token_type: DPoP` ([`TokenResponse::dpop`]). Always
    /// `None` without the `dpop` feature and a
    /// [`DpopConfig`](crate::DpopConfig).
    pub dpop_jkt: Option<JwkThumbprint>,
    /// The `x5t#S256` thumbprint of the client certificate the token request
    /// came with (RFC 8705), when the host passed one
    /// ([`EndpointRequest::client_certificate`](crate::EndpointRequest::client_certificate)):
    /// bind the tokens to it (`cnf` member `x5t#S256`, RFC 8705 §3.1).
    pub client_certificate: Option<CertificateThumbprint>,
}

/// What the host attaches to an approval for its token issuer (the time of
/// authentication, an ACR, profile claims), typed by the host: built from any
/// `T: Serialize` and read back as the host's own type.
///
/// Stored in the record as the JSON of the host's value, so a record written
/// with any version of this crate reads back the same. `Debug` redacts it: it
/// may hold secrets the crate cannot recognize (an upstream token, a session id).
///
/// ```
/// use device_grant::ApprovalData;
///
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct Claims { auth_time: i64, acr: String }
///
/// let claims = Claims { auth_time: 1_700_000_000, acr: "mfa".into() };
/// let data = ApprovalData::new(&claims).unwrap();
/// assert_eq!(data.decode::<Claims>().unwrap(), claims);
/// assert_eq!(format!("{data:?}"), "ApprovalData([redacted])");
/// ```
// The JSON value stays private: the public API speaks only in the host's own
// types, and the crate is free to change how it holds them.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ApprovalData(serde_json::Value);

impl ApprovalData {
    /// The host's value, serialized.
    pub fn new<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self, ApprovalDataError> {
        serde_json::to_value(value)
            .map(Self)
            .map_err(|_| ApprovalDataError::Serialize)
    }

    /// The host's value again, as `T`.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApprovalDataError> {
        T::deserialize(&self.0).map_err(|_| ApprovalDataError::Deserialize)
    }
}

impl std::fmt::Debug for ApprovalData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApprovalData([redacted])")
    }
}

/// Why [`ApprovalData`] could not be built or read. Carries no detail of the
/// data: serde's messages quote the values they fail on, and the data may hold
/// secrets.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalDataError {
    /// The host's value cannot be serialized (a map with non-string keys, a
    /// failing `Serialize` impl).
    #[error("the approval data cannot be serialized")]
    Serialize,
    /// The stored data is not a `T`.
    #[error("the approval data is not of the type asked for")]
    Deserialize,
}

/// Mints tokens for an approved grant.
///
/// # Contract
///
/// The crate calls [`TokenIssuer::issue`] from the poll that took the approval
/// (a compare-and-set from `Approved` to `Redeeming`, so one poll of any number
/// racing), and marks the code `Redeemed` once it returns tokens.
///
/// - **`Ok`**: the tokens are delivered to the device.
/// - **`Err`** must mean that nothing usable was minted (or that what was
///   minted is already revoked). The crate frees the approval, answers
///   `temporarily_unavailable` (for [`BackendError::Unavailable`] and
///   [`BackendError::Timeout`]) or `server_error`, and the device's next poll
///   calls `issue` again.
/// - **Called again for the same [`ApprovedGrant::id`]**: after an `Err`, after
///   a call that was abandoned (the request's future dropped mid-issue: the
///   approval's lease, [`PollingRules::redeem_lease`](crate::PollingRules::redeem_lease),
///   ends and the next poll takes it), or when the store could not confirm the
///   redemption. Treat the id as an idempotency key: return the same tokens, or
///   revoke those of the earlier call. So no code ever yields two live token
///   sets, and an issuer failure never costs the person their approval.
/// - It may block on I/O; keep it well under the redeem lease (30 s by
///   default), or raise the lease.
#[async_trait::async_trait]
pub trait TokenIssuer: Send + Sync {
    /// Mints the tokens.
    async fn issue(&self, grant: &ApprovedGrant) -> Result<TokenResponse, BackendError>;
}

/// A secret string (token) whose `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([redacted])")
    }
}

/// A successful token response (RFC 6749 §5.1). `Debug` redacts the tokens and
/// shows only the names of the `extra` members.
#[derive(Clone, PartialEq, serde::Serialize)]
pub struct TokenResponse {
    /// `access_token`.
    pub access_token: Token,
    /// `token_type`: `Bearer`, or `DPoP` for a DPoP-bound token.
    pub token_type: String,
    /// `expires_in`, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Token>,
    /// `scope`: required by RFC 6749 §5.1 when it differs from what was requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopeSet>,
    /// `id_token` (OpenID Connect).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<Token>,
    /// `authorization_details` (RFC 9396 §7): those the tokens grant. Left
    /// `None` by the issuer, the crate sets them to the approval's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<AuthorizationDetails>,
    /// Any other members.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl std::fmt::Debug for TokenResponse {
    // `extra` is the issuer's and may carry secrets of its own (OpenID Connect
    // Native SSO's `device_secret`): its names are useful, its values unknown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token)
            .field("scope", &self.scope)
            .field("id_token", &self.id_token)
            .field("authorization_details", &self.authorization_details)
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TokenResponse {
    /// A bearer token response.
    pub fn bearer(access_token: impl Into<String>) -> Self {
        Self {
            access_token: Token::new(access_token),
            token_type: "Bearer".to_owned(),
            expires_in: None,
            refresh_token: None,
            scope: None,
            id_token: None,
            authorization_details: None,
            extra: BTreeMap::new(),
        }
    }

    /// A DPoP-bound token response (`token_type: DPoP`, RFC 9449 §5), for a
    /// grant whose [`ApprovedGrant::dpop_jkt`] is set.
    pub fn dpop(access_token: impl Into<String>) -> Self {
        Self {
            token_type: DPOP_TOKEN_TYPE.to_owned(),
            ..Self::bearer(access_token)
        }
    }
}
