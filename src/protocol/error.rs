//! OAuth error codes and the one place where crate errors become them.
//!
//! Every failure an endpoint can return is an [`OAuthError`]; [`OAuthError::code`]
//! is the single mapping from a typed failure to an RFC 6749 §5.2 / RFC 8628 §3.5
//! error code, and [`OAuthError::to_http`] the single rendering of it.

use std::sync::Arc;

use crate::protocol::authorization_details::AuthorizationDetailsError;
use crate::protocol::dpop::DpopError;
use crate::protocol::dpop_nonce::DpopNonce;
use crate::protocol::pkce::CodeVerifierError;
use crate::protocol::polling::Interval;
use crate::protocol::response::HttpResponse;

/// An error code of RFC 6749 §5.2 or RFC 8628 §3.5, as sent in the `error` member.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `invalid_request` (RFC 6749 §5.2).
    InvalidRequest,
    /// `invalid_client` (RFC 6749 §5.2).
    InvalidClient,
    /// `invalid_grant` (RFC 6749 §5.2).
    InvalidGrant,
    /// `unauthorized_client` (RFC 6749 §5.2).
    UnauthorizedClient,
    /// `unsupported_grant_type` (RFC 6749 §5.2).
    UnsupportedGrantType,
    /// `invalid_scope` (RFC 6749 §5.2).
    InvalidScope,
    /// `authorization_pending` (RFC 8628 §3.5).
    AuthorizationPending,
    /// `slow_down` (RFC 8628 §3.5).
    SlowDown,
    /// `access_denied` (RFC 8628 §3.5).
    AccessDenied,
    /// `expired_token` (RFC 8628 §3.5).
    ExpiredToken,
    /// `server_error` (RFC 6749 §4.1.2.1), for a failing host backend.
    ServerError,
    /// `temporarily_unavailable` (RFC 6749 §4.1.2.1), for a backend that is down or timed out.
    TemporarilyUnavailable,
    /// `invalid_dpop_proof` (RFC 9449 §12.2).
    InvalidDpopProof,
    /// `use_dpop_nonce` (RFC 9449 §8, §12.2).
    UseDpopNonce,
    /// `invalid_authorization_details` (RFC 9396 §5).
    InvalidAuthorizationDetails,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::AccessDenied => "access_denied",
            Self::ExpiredToken => "expired_token",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::InvalidAuthorizationDetails => "invalid_authorization_details",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was malformed (`invalid_request`). The texts never echo a value
/// the client sent, only the names of the crate's own parameters.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A required parameter is absent (or empty, which counts as absent).
    #[error("missing parameter `{0}`")]
    MissingParameter(&'static str),
    /// A parameter the endpoint reads appears more than once (RFC 6749 §3.1).
    #[error("parameter `{0}` is repeated")]
    RepeatedParameter(&'static str),
    /// The body, once percent-decoded, is not UTF-8.
    #[error("the body is not valid UTF-8")]
    InvalidUtf8,
    /// The body exceeds the configured size limit.
    #[error("the body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The body has more parameters than the configured limit.
    #[error("the body has more than {0} parameters")]
    TooManyParameters(usize),
    /// A parameter value exceeds the configured length limit.
    #[error("parameter `{0}` is too long")]
    ValueTooLong(&'static str),
    /// The request was sent with a content type other than a form.
    #[error("the content type must be application/x-www-form-urlencoded")]
    WrongContentType,
    /// The client used more than one authentication method (RFC 6749 §2.3).
    #[error("the client used more than one authentication method")]
    MultipleClientAuthentication,
    /// `client_id` in the body names a different client than the Authorization header.
    #[error("`client_id` does not match the authenticated client")]
    ClientIdMismatch,
    /// `scope` is not a space-separated list of RFC 6749 §3.3 scope tokens.
    #[error("`scope` is malformed")]
    MalformedScope,
    /// `scope` lists more values than the configured limit.
    #[error("`scope` has more than {0} values")]
    TooManyScopes(usize),
    /// `code_challenge_method` is not `S256`, or is absent beside a
    /// `code_challenge` (RFC 7636 §4.3 then means `plain`): the crate serves
    /// `S256` only.
    #[error("`code_challenge_method` must be S256")]
    UnsupportedCodeChallengeMethod,
    /// `code_challenge` is not an `S256` challenge: 43 characters of unpadded
    /// base64url (RFC 7636 §4.2).
    #[error("`code_challenge` is not 43 characters of unpadded base64url")]
    MalformedCodeChallenge,
    /// The client is registered as requiring PKCE
    /// ([`Client::require_pkce`](crate::Client::require_pkce)) and the request
    /// has no `code_challenge`.
    #[error("this client must send a `code_challenge` with `code_challenge_method` S256")]
    CodeChallengeRequired,
}

/// A failure of a host backend: storage, client registry, limiter or token issuer.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend cannot be reached (connection refused, pool exhausted, server down).
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The backend did not answer in time.
    #[error("backend timed out")]
    Timeout,
    /// The backend returned data the crate cannot read.
    #[error("backend returned a corrupt record: {0}")]
    Corrupt(String),
    /// Any other backend failure.
    #[error("backend failure: {0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl BackendError {
    /// Wraps any error as [`BackendError::Other`].
    pub fn other(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Other(error.into())
    }
}

/// The realm of the `WWW-Authenticate: Basic realm="…"` challenge sent with a
/// `401 invalid_client` (RFC 6749 §5.2, RFC 7617). Default `device-grant`; set it
/// with [`ConfigBuilder::realm`](crate::ConfigBuilder::realm).
///
/// Printable ASCII only, without `"` or `\`, 1 to 256 characters: it is sent
/// inside a quoted string as it is, so it can neither end the string nor the
/// header.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Realm(Arc<str>);

/// The longest [`Realm`], in characters.
pub(crate) const MAX_REALM_CHARS: usize = 256;

/// Why a [`Realm`] was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RealmError {
    /// The realm is empty.
    #[error("the realm is empty")]
    Empty,
    /// The realm is longer than 256 characters.
    #[error("the realm is longer than 256 characters")]
    TooLong,
    /// The realm has a quote, a backslash, a control character or a character
    /// outside printable ASCII.
    #[error("the realm may hold only printable ASCII characters other than `\"` and `\\`")]
    ForbiddenCharacter,
}

impl Realm {
    /// The default realm, `device-grant`.
    pub const DEFAULT: &'static str = "device-grant";

    /// A realm; see [`Realm`] for what is refused.
    pub fn new(realm: &str) -> Result<Self, RealmError> {
        if realm.is_empty() {
            return Err(RealmError::Empty);
        }
        if realm.len() > MAX_REALM_CHARS {
            return Err(RealmError::TooLong);
        }
        // A quote or backslash would end or escape the quoted string, a control
        // character (CR, LF) the header; non-ASCII bytes are read differently
        // by different HTTP stacks.
        if !realm
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        {
            return Err(RealmError::ForbiddenCharacter);
        }
        Ok(Self(Arc::from(realm)))
    }

    /// The realm as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Realm {
    fn default() -> Self {
        Self(Arc::from(Self::DEFAULT))
    }
}

impl std::fmt::Debug for Realm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Realm({:?})", self.as_str())
    }
}

impl std::fmt::Display for Realm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every way the device authorization and token endpoints can refuse a request.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The request is malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(#[from] RequestError),
    /// Client authentication failed: unknown client, wrong secret, or a method the
    /// client is not registered for.
    #[error("client authentication failed")]
    InvalidClient {
        /// Whether the client tried the `Authorization` header, which makes the reply
        /// `401` with `WWW-Authenticate` (RFC 6749 §5.2).
        via_header: bool,
        /// The challenge's realm. The endpoints set the configured one
        /// ([`Config::realm`](crate::Config::realm)), so that rendering the error
        /// needs no configuration.
        realm: Realm,
    },
    /// The client may not use the device grant.
    #[error("the client is not allowed to use the device grant")]
    UnauthorizedClient,
    /// A requested scope is unknown or not allowed for the client.
    #[error("a requested scope is not allowed for this client")]
    InvalidScope,
    /// The device code is unknown, belongs to another client, or was already redeemed.
    #[error("the device code is invalid")]
    InvalidGrant,
    /// The token request's `code_verifier` does not fit the request's PKCE
    /// code challenge (RFC 7636 §4.6). Sent as `invalid_grant`; nothing
    /// changed.
    #[error(transparent)]
    CodeVerifier(#[from] CodeVerifierError),
    /// The token request's DPoP proof is refused (RFC 9449 §4.3). Sent as
    /// `invalid_dpop_proof` (HTTP 400); nothing changed.
    #[error(transparent)]
    DpopProof(#[from] DpopError),
    /// The token request's DPoP proof does not carry a nonce this server
    /// issued and still accepts (RFC 9449 §8), when nonces are required
    /// ([`DpopConfig::nonces`](crate::DpopConfig::nonces)). Sent as
    /// `use_dpop_nonce` (HTTP 400) with the nonce to use in the `DPoP-Nonce`
    /// header; nothing changed.
    #[error("the DPoP proof must carry the server's current nonce")]
    UseDpopNonce {
        /// The nonce the client's next proof must carry.
        nonce: DpopNonce,
    },
    /// The request's `authorization_details` (RFC 9396) are malformed, too
    /// many, of a type the host does not accept, or refused by the type's
    /// validator. Sent as `invalid_authorization_details`.
    #[error(transparent)]
    InvalidAuthorizationDetails(#[from] AuthorizationDetailsError),
    /// The token request's `grant_type` is not the device code grant.
    #[error("unsupported grant type")]
    UnsupportedGrantType,
    /// The person has not yet approved or denied the request (RFC 8628 §3.5).
    #[error("authorization pending")]
    AuthorizationPending,
    /// The device polls faster than its interval; the interval grew by 5
    /// seconds to `interval`, which the response carries beside the error
    /// (`"interval": 10`) so that a client need not count the steps itself.
    #[error("slow down: poll at most every {} s", interval.secs())]
    SlowDown {
        /// The interval the device must now keep.
        interval: Interval,
    },
    /// The person denied the request.
    #[error("access denied")]
    AccessDenied,
    /// The host's policy ([`ConsentPolicy`](crate::ConsentPolicy)) refused
    /// the device authorization request. Sent as `unauthorized_client` (RFC
    /// 6749 §5.2: the client is not authorized to use this grant here and
    /// now); nothing was stored.
    #[error("the client is not allowed to start a device authorization here")]
    InitiationRefused,
    /// An approved request may no longer be redeemed: its client is no longer
    /// registered for the device grant, or the host's policy refused at
    /// redemption. Sent as `access_denied` (RFC 8628 §3.5); the request is
    /// now denied, so every later poll gets `access_denied` too, and no token
    /// was minted.
    #[error("access denied")]
    RedemptionRefused,
    /// The device code expired before it was redeemed.
    #[error("the device code has expired")]
    ExpiredToken,
    /// No free user code was found in the configured number of tries: the code
    /// space is crowded. Sent as `temporarily_unavailable`.
    #[error("no free user code could be drawn")]
    UserCodesExhausted,
    /// A device-authorization budget (per client, per source, or pending per
    /// client) is spent. Sent as `429` with `Retry-After` and
    /// `temporarily_unavailable`.
    #[error("too many device authorizations; retry in {} s", retry_after.whole_seconds())]
    RateLimited {
        /// When the budget's window ends.
        retry_after: time::Duration,
    },
    /// The deployment holds as many pending requests as
    /// [`Budgets::pending_total`](crate::Budgets::pending_total) allows: storage
    /// is protected, and no one in particular is singled out. Sent as `503`
    /// with `Retry-After` and `temporarily_unavailable`.
    #[error("too many pending device authorizations; retry in {} s", retry_after.whole_seconds())]
    Overloaded {
        /// When the ceiling's window ends.
        retry_after: time::Duration,
    },
    /// The record changed under every one of the crate's compare-and-set rounds.
    /// Sent as `temporarily_unavailable`; the client polls again.
    #[error("the request is contended")]
    Contended,
    /// A host backend failed. Before a request's commit point nothing was
    /// changed; a token request whose issuer failed has freed its approval
    /// again (or its lease frees it), so the device's next poll gets tokens.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl OAuthError {
    /// [`OAuthError::InvalidClient`] in the default realm; the endpoints put
    /// their errors in the configured one ([`OAuthError::in_realm`]).
    pub fn invalid_client(via_header: bool) -> Self {
        Self::InvalidClient {
            via_header,
            realm: Realm::default(),
        }
    }

    /// The same error, with `realm` as the realm of its challenge if it is
    /// [`OAuthError::InvalidClient`] (any other error is returned as it is).
    /// For a host that refuses a client itself, at a token endpoint it shares
    /// with the crate: `OAuthError::invalid_client(true).in_realm(grant.config().realm())`.
    pub fn in_realm(self, realm: &Realm) -> Self {
        match self {
            Self::InvalidClient { via_header, .. } => Self::InvalidClient {
                via_header,
                realm: realm.clone(),
            },
            other => other,
        }
    }

    /// The OAuth error code this error is sent as: the crate's one mapping.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidRequest(_) => ErrorCode::InvalidRequest,
            Self::InvalidClient { .. } => ErrorCode::InvalidClient,
            Self::UnauthorizedClient | Self::InitiationRefused => ErrorCode::UnauthorizedClient,
            Self::InvalidScope => ErrorCode::InvalidScope,
            Self::InvalidGrant | Self::CodeVerifier(_) => ErrorCode::InvalidGrant,
            Self::DpopProof(_) => ErrorCode::InvalidDpopProof,
            Self::UseDpopNonce { .. } => ErrorCode::UseDpopNonce,
            Self::UnsupportedGrantType => ErrorCode::UnsupportedGrantType,
            Self::InvalidAuthorizationDetails(_) => ErrorCode::InvalidAuthorizationDetails,
            Self::AuthorizationPending => ErrorCode::AuthorizationPending,
            Self::SlowDown { .. } => ErrorCode::SlowDown,
            Self::AccessDenied | Self::RedemptionRefused => ErrorCode::AccessDenied,
            Self::ExpiredToken => ErrorCode::ExpiredToken,
            Self::UserCodesExhausted
            | Self::RateLimited { .. }
            | Self::Overloaded { .. }
            | Self::Contended
            | Self::Backend(BackendError::Unavailable(_) | BackendError::Timeout) => {
                ErrorCode::TemporarilyUnavailable
            }
            Self::Backend(_) => ErrorCode::ServerError,
        }
    }

    /// The HTTP status: 400 for OAuth errors, 401 for `invalid_client` sent through
    /// the `Authorization` header, 503 and 500 for backend failures.
    pub fn status(&self) -> u16 {
        match self.code() {
            ErrorCode::InvalidClient
                if matches!(
                    self,
                    Self::InvalidClient {
                        via_header: true,
                        ..
                    }
                ) =>
            {
                401
            }
            ErrorCode::TemporarilyUnavailable if matches!(self, Self::RateLimited { .. }) => 429,
            ErrorCode::TemporarilyUnavailable => 503,
            ErrorCode::ServerError => 500,
            _ => 400,
        }
    }

    /// The `error_description` sent to the client, if any. Backend details are never
    /// sent: they may name hosts or contain record data.
    pub fn description(&self) -> Option<String> {
        match self {
            Self::InvalidRequest(reason) => Some(reason.to_string()),
            Self::Backend(_) => None,
            other => Some(other.to_string()),
        }
    }

    /// Renders the RFC 6749 §5.2 error response.
    pub fn to_http(&self) -> HttpResponse {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            error: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            error_description: Option<&'a str>,
            // `slow_down` only: the interval to keep from now on (RFC 8628
            // §3.5 allows more members; RFC 6749 §5.2 clients ignore them).
            #[serde(skip_serializing_if = "Option::is_none")]
            interval: Option<u32>,
        }
        let description = self.description();
        let body = Body {
            error: self.code().as_str(),
            error_description: description.as_deref(),
            interval: match self {
                Self::SlowDown { interval } => Some(interval.secs()),
                _ => None,
            },
        };
        let mut response = HttpResponse::json(self.status(), &body);
        if let Self::RateLimited { retry_after } | Self::Overloaded { retry_after } = self {
            let secs = retry_after.whole_seconds().max(1);
            response.headers.push(("retry-after", secs.to_string()));
        }
        if let Self::UseDpopNonce { nonce } = self {
            response.headers.push(("dpop-nonce", nonce.to_string()));
        }
        if let Self::InvalidClient {
            via_header: true,
            realm,
        } = self
        {
            response
                .headers
                .push(("www-authenticate", format!("Basic realm=\"{realm}\"")));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_client_via_header_is_401_with_challenge() {
        let r = OAuthError::invalid_client(true).to_http();
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"device-grant\"")
        );
        let realm = Realm::new("example.com").unwrap();
        let r = OAuthError::invalid_client(true).in_realm(&realm).to_http();
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"example.com\"")
        );
        let r = OAuthError::invalid_client(false).in_realm(&realm).to_http();
        assert_eq!(r.status, 400);
        assert!(r.header("www-authenticate").is_none());
    }

    #[test]
    fn every_error_has_no_store_and_json() {
        let all = [
            OAuthError::InvalidRequest(RequestError::InvalidUtf8),
            OAuthError::invalid_client(false),
            OAuthError::UnauthorizedClient,
            OAuthError::InvalidScope,
            OAuthError::InvalidGrant,
            OAuthError::UnsupportedGrantType,
            OAuthError::AuthorizationPending,
            OAuthError::SlowDown {
                interval: Interval::DEFAULT,
            },
            OAuthError::AccessDenied,
            OAuthError::ExpiredToken,
            OAuthError::Backend(BackendError::Timeout),
            OAuthError::Backend(BackendError::Corrupt("x".into())),
            OAuthError::InitiationRefused,
            OAuthError::RedemptionRefused,
        ];
        let expected = [
            "invalid_request",
            "invalid_client",
            "unauthorized_client",
            "invalid_scope",
            "invalid_grant",
            "unsupported_grant_type",
            "authorization_pending",
            "slow_down",
            "access_denied",
            "expired_token",
            "temporarily_unavailable",
            "server_error",
            "unauthorized_client",
            "access_denied",
        ];
        for (e, code) in all.iter().zip(expected) {
            let r = e.to_http();
            assert_eq!(r.header("cache-control"), Some("no-store"));
            assert_eq!(r.header("pragma"), Some("no-cache"));
            assert_eq!(r.header("content-type"), Some("application/json"));
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(v["error"], code);
        }
        assert_eq!(all[10].status(), 503);
        let limited = OAuthError::RateLimited {
            retry_after: time::Duration::seconds(42),
        }
        .to_http();
        assert_eq!(limited.status, 429);
        assert_eq!(limited.header("retry-after"), Some("42"));
        let full = OAuthError::Overloaded {
            retry_after: time::Duration::seconds(7),
        }
        .to_http();
        assert_eq!(full.status, 503);
        assert_eq!(full.header("retry-after"), Some("7"));
        assert!(full.body.contains("temporarily_unavailable"));
        assert_eq!(all[11].status(), 500);
        // Backend detail never reaches the client.
        assert!(!all[11].to_http().body.contains('x'));
    }
}
