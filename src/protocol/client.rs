//! Clients: identifiers, secrets, registrations, and reading the credentials a
//! request carries (RFC 6749 §2.3.1).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use subtle::ConstantTimeEq as _;

use crate::protocol::error::{OAuthError, RequestError};
use crate::protocol::form::Form;
use crate::protocol::polling::Interval;
use crate::protocol::scope::ScopeSet;

/// A client identifier (RFC 6749 §2.2). Not a secret.
#[derive(
    Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
// Shared, not copied: every stored request names its client, and a clone of the
// registration's id is a reference-count increment instead of an allocation.
pub struct ClientId(Arc<str>);

impl ClientId {
    /// Wraps an identifier.
    pub fn new(id: impl Into<String>) -> Self {
        Self(Arc::from(id.into()))
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client secret as presented by a client. `Debug` redacts it.
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with another secret's bytes.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(other).into()
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// A token endpoint authentication method (RFC 8414 / RFC 7591 names).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A public client: `client_id` in the body, no secret.
    None,
    /// HTTP Basic with the form-urlencoded id and secret.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the body.
    ClientSecretPost,
}

impl AuthMethod {
    /// The registered name of the method.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }

    /// Whether the method proves the client's identity with its secret.
    pub fn uses_secret(self) -> bool {
        match self {
            Self::None => false,
            Self::ClientSecretBasic | Self::ClientSecretPost => true,
        }
    }
}

/// Why a client registration was refused ([`Client::validate`],
/// [`crate::StaticClients::try_with_public`],
/// [`crate::StaticClients::try_with_confidential`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// The client lists `none` beside a secret-based method: it would be a
    /// confidential client that anyone can act as with its `client_id` alone
    /// (RFC 6749 §3.2.1). Register it as public or as confidential.
    #[error(
        "client `{0}` lists `none` beside a secret-based method: register it as public (`none` only) or confidential (no `none`)"
    )]
    MixedAuthMethods(ClientId),
    /// The client lists no authentication method: it could never authenticate.
    #[error("client `{0}` lists no authentication method")]
    NoAuthMethod(ClientId),
    /// A public registration lists a method other than `none`.
    #[error("client `{0}` is registered as public but does not authenticate with `none` only")]
    NotPublic(ClientId),
    /// A confidential registration lists only `none`: its secret would never be asked for.
    #[error(
        "client `{0}` is registered as confidential but lists no `client_secret_basic` or `client_secret_post`"
    )]
    NotConfidential(ClientId),
    /// A confidential registration's secret is empty.
    #[error("client `{0}` is registered with an empty secret")]
    EmptySecret(ClientId),
    /// The default scopes are not all among the allowed scopes: a request that
    /// names no scope would be refused with `invalid_scope`.
    #[error("client `{0}` has default scopes that are not among its allowed scopes")]
    DefaultScopesNotAllowed(ClientId),
    /// The device-grant scope ceiling ([`Client::device_scopes`]) is not
    /// among the allowed scopes: it is a narrowing, never a widening.
    #[error("client `{0}` has device-grant scopes that are not among its allowed scopes")]
    DeviceScopesNotAllowed(ClientId),
    /// The identifier is registered already.
    #[error("client `{0}` is registered twice")]
    Duplicate(ClientId),
}

/// What the host's registry knows of a client.
///
/// A client is either public (its `auth_methods` are exactly `[AuthMethod::None]`)
/// or confidential (secret-based methods only); [`Client::validate`] checks a
/// registration, and client authentication refuses `none` from a client that
/// is not public whatever the registry holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    /// The identifier.
    pub id: ClientId,
    /// A name to show people on the consent page.
    pub name: String,
    /// The methods the client may authenticate with: `None` alone for a public
    /// client, `ClientSecretBasic` and/or `ClientSecretPost` for a confidential one.
    pub auth_methods: Vec<AuthMethod>,
    /// Whether the client may use the device grant: off unless registered
    /// for it ([`Client::new`] leaves it off, [`Client::for_device_grant`]
    /// sets it). When off, a device authorization request is
    /// `unauthorized_client`; turned off after the person approved, the
    /// device's next poll is `access_denied`, its request is denied for good
    /// and no token is minted. Client authentication for the host's other
    /// grants ([`crate::DeviceGrant::authenticate_client`]) does not depend
    /// on it.
    pub device_grant: bool,
    /// Whether the device authorization response carries
    /// `verification_uri_complete` (RFC 8628 §3.3.1) for this client, when
    /// the deployment allows it at all
    /// ([`ConfigBuilder::verification_uri_complete`](crate::ConfigBuilder::verification_uri_complete)).
    /// Default `false`: a link with the code in it is what a phisher sends
    /// (RFC 10027); set it for devices that show a QR code. The verification
    /// page must still have the person confirm the code they see on their
    /// device.
    pub verification_uri_complete: bool,
    /// The scopes the client may ask for.
    pub allowed_scopes: ScopeSet,
    /// The most the client may get through the device grant, among
    /// `allowed_scopes`; `None` (the default) means `allowed_scopes`. A device
    /// authorization request above it is `invalid_scope` (RFC 6749 §5.2),
    /// and an approval cannot grant above it (checked again at approval, in
    /// case the ceiling was lowered in between).
    pub device_scopes: Option<ScopeSet>,
    /// The scopes requested when a request names none; a subset of `allowed_scopes`.
    pub default_scopes: ScopeSet,
    /// A polling interval for this client instead of the configured one.
    pub interval: Option<Interval>,
    /// Whether the client must use PKCE (RFC 7636): when set, a device
    /// authorization request without an `S256` `code_challenge` is
    /// `invalid_request`. Default `false`: a client may still send a challenge,
    /// and its verifier is then required at the token endpoint all the same.
    /// Set it for public clients whose device codes could be seen on the way
    /// (a CLI printing debug output, a shared log).
    pub require_pkce: bool,
}

impl Client {
    /// A client *not* registered for the device grant, with `name` equal to
    /// its id, no scopes and the given methods: what a registry holds for the
    /// host's other clients. See [`Client::for_device_grant`].
    pub fn new(id: impl Into<String>, auth_methods: Vec<AuthMethod>) -> Self {
        let id = ClientId::new(id);
        Self {
            name: id.as_str().to_owned(),
            id,
            auth_methods,
            device_grant: false,
            verification_uri_complete: false,
            allowed_scopes: ScopeSet::new(),
            device_scopes: None,
            default_scopes: ScopeSet::new(),
            interval: None,
            require_pkce: false,
        }
    }

    /// A client registered for the device grant ([`Client::device_grant`]),
    /// otherwise as [`Client::new`].
    pub fn for_device_grant(id: impl Into<String>, auth_methods: Vec<AuthMethod>) -> Self {
        Self {
            device_grant: true,
            ..Self::new(id, auth_methods)
        }
    }

    /// The scopes the client may get through the device grant: its
    /// [`Client::device_scopes`] ceiling, else its `allowed_scopes`.
    pub fn device_scope_ceiling(&self) -> &ScopeSet {
        self.device_scopes.as_ref().unwrap_or(&self.allowed_scopes)
    }

    /// Whether the client is public (authenticates with `none` only).
    pub fn is_public(&self) -> bool {
        !self.auth_methods.is_empty() && self.auth_methods.iter().all(|&m| m == AuthMethod::None)
    }

    /// Whether the client is confidential (authenticates with its secret only).
    pub fn is_confidential(&self) -> bool {
        !self.auth_methods.is_empty() && self.auth_methods.iter().all(|m| m.uses_secret())
    }

    /// Checks the registration: public or confidential, not both, default
    /// scopes and the device-grant ceiling among the allowed ones. [`crate::StaticClients`] calls it on every
    /// registration; a host's own [`crate::ClientRegistry`] should call it when
    /// it loads or stores a client.
    pub fn validate(&self) -> Result<(), RegistrationError> {
        if self.auth_methods.is_empty() {
            return Err(RegistrationError::NoAuthMethod(self.id.clone()));
        }
        if !self.is_public() && !self.is_confidential() {
            return Err(RegistrationError::MixedAuthMethods(self.id.clone()));
        }
        if !self.default_scopes.is_subset(&self.allowed_scopes) {
            return Err(RegistrationError::DefaultScopesNotAllowed(self.id.clone()));
        }
        if !self.device_scope_ceiling().is_subset(&self.allowed_scopes) {
            return Err(RegistrationError::DeviceScopesNotAllowed(self.id.clone()));
        }
        Ok(())
    }
}

/// The credentials a request carries, once the RFC 6749 §2.3 rules are applied.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    /// The client that claims to be calling.
    pub id: ClientId,
    /// The method it used.
    pub method: AuthMethod,
    /// The secret, unless the method is `None`.
    pub secret: Option<ClientSecret>,
}

impl ClientCredentials {
    /// Reads the credentials from the form body and the `Authorization` header value.
    ///
    /// - Basic credentials and a `client_secret` in the body together are two
    ///   methods at once: `invalid_request`.
    /// - A `client_id` in the body beside Basic credentials must name the same client.
    /// - An `Authorization` header that is not well-formed Basic is `invalid_client`
    ///   with a `WWW-Authenticate` challenge.
    /// - No client identification at all is `invalid_client`.
    pub fn read(form: &Form<'_>, authorization: Option<&str>) -> Result<Self, OAuthError> {
        let body_id = form.get("client_id")?;
        let body_secret = form.get("client_secret")?;
        if let Some(header) = authorization {
            let (id, secret) =
                parse_basic(header).ok_or_else(|| OAuthError::invalid_client(true))?;
            if body_secret.is_some() {
                return Err(RequestError::MultipleClientAuthentication.into());
            }
            if body_id.is_some_and(|b| b != id) {
                return Err(RequestError::ClientIdMismatch.into());
            }
            return Ok(Self {
                id: ClientId::new(id),
                method: AuthMethod::ClientSecretBasic,
                secret: Some(ClientSecret(secret)),
            });
        }
        match (body_id, body_secret) {
            (Some(id), Some(secret)) => Ok(Self {
                id: ClientId::new(id),
                method: AuthMethod::ClientSecretPost,
                secret: Some(ClientSecret::new(secret)),
            }),
            (Some(id), None) => Ok(Self {
                id: ClientId::new(id),
                method: AuthMethod::None,
                secret: None,
            }),
            (None, _) => Err(OAuthError::invalid_client(false)),
        }
    }
}

const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Parses `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn parse_basic(header: &str) -> Option<(String, String)> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = BASE64_LENIENT.decode(rest.trim().as_bytes()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let id = form_decode(id)?;
    let secret = form_decode(secret)?;
    if id.is_empty() {
        return None;
    }
    Some((id, secret))
}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space.
fn form_decode(s: &str) -> Option<String> {
    let plus_as_space = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::form::Limits;

    fn read(body: &str, header: Option<&str>) -> Result<ClientCredentials, OAuthError> {
        let form = Form::parse(body.as_bytes(), &Limits::default()).unwrap();
        ClientCredentials::read(&form, header)
    }

    fn basic(raw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    #[test]
    fn basic_uses_form_urlencoding() {
        // id "my client", secret "p:ss+w%rd" encoded per RFC 6749 §2.3.1.
        let c = read("", Some(&basic("my+client:p%3Ass%2Bw%25rd"))).unwrap();
        assert_eq!(c.id.as_str(), "my client");
        assert_eq!(c.method, AuthMethod::ClientSecretBasic);
        assert_eq!(c.secret.unwrap().secret(), "p:ss+w%rd");
        let c = read(
            "",
            Some(&basic("printer:printer-secret").replace("Basic", "bAsIc")),
        )
        .unwrap();
        assert_eq!(c.id.as_str(), "printer");
    }

    #[test]
    fn basic_with_matching_body_id_is_accepted() {
        let h = basic("printer:s");
        assert!(read("client_id=printer", Some(&h)).is_ok());
        assert!(matches!(
            read("client_id=other", Some(&h)),
            Err(OAuthError::InvalidRequest(RequestError::ClientIdMismatch))
        ));
        assert!(matches!(
            read("client_secret=s", Some(&h)),
            Err(OAuthError::InvalidRequest(
                RequestError::MultipleClientAuthentication
            ))
        ));
    }

    #[test]
    fn post_and_none() {
        let c = read("client_id=printer&client_secret=s", None).unwrap();
        assert_eq!(c.method, AuthMethod::ClientSecretPost);
        let c = read("client_id=tv-app", None).unwrap();
        assert_eq!(c.method, AuthMethod::None);
        assert!(c.secret.is_none());
        assert!(matches!(
            read("client_secret=s", None),
            Err(OAuthError::InvalidClient {
                via_header: false,
                ..
            })
        ));
        assert!(matches!(
            read("client_id=a&client_id=b", None),
            Err(OAuthError::InvalidRequest(RequestError::RepeatedParameter(
                "client_id"
            )))
        ));
    }

    #[test]
    fn malformed_headers_are_invalid_client_with_challenge() {
        for h in [
            "Bearer abc",
            "Basic",
            "Basic !!!",
            &basic("nocolon"),
            &basic(":secret"),
            &basic("id:%FF"),
        ] {
            assert!(
                matches!(
                    read("", Some(h)),
                    Err(OAuthError::InvalidClient {
                        via_header: true,
                        ..
                    })
                ),
                "{h}"
            );
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let c = read("client_id=a&client_secret=hunter2", None).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
