//! The endpoints: each orchestrates the pure core and the host's traits.

mod budgets;
mod commit;
pub(crate) mod device_authorization;
#[cfg(feature = "dpop")]
pub(crate) mod dpop;
pub(crate) mod token;
pub(crate) mod verification;

use std::sync::Arc;

use time::OffsetDateTime;

use crate::endpoint::token::DEVICE_CODE_GRANT_TYPE;
use crate::grant::DeviceGrant;
use crate::protocol::authorization::DeviceAuthorization;
use crate::protocol::client::{AuthMethod, Client, ClientCredentials};
use crate::protocol::error::{BackendError, OAuthError, RequestError};
use crate::protocol::form::{Form, Limits, is_form_content_type};
use crate::protocol::response::HttpResponse;
use crate::protocol::user_code::UserCode;

/// The parts of an HTTP request the two OAuth endpoints read.
///
/// `Debug` shows the content type, whether an `Authorization` header is
/// present and the body's length: never the header's value or the body.
#[derive(Clone, Copy)]
pub struct EndpointRequest<'a> {
    /// The `Content-Type` header value; anything but a form (or none) is refused.
    pub content_type: Option<&'a str>,
    /// The `Authorization` header value, if any.
    pub authorization: Option<&'a str>,
    /// The raw body.
    pub body: &'a [u8],
    /// The `DPoP` header value (RFC 9449), if any. Several `DPoP` fields are
    /// passed joined with commas, as HTTP joins them: the token endpoint
    /// then refuses the request (a proof must be exactly one). Read only
    /// with the `dpop` feature and a
    /// [`DpopConfig`](crate::DpopConfig); ignored otherwise.
    pub dpop: Option<&'a str>,
    /// The DER encoding of the client's TLS certificate, when the host
    /// terminates mutual TLS and the client presented one (RFC 8705): its
    /// thumbprint reaches the issuer as
    /// [`ApprovedGrant::client_certificate`](crate::ApprovedGrant::client_certificate),
    /// to bind the tokens to it. The crate does not authenticate clients by
    /// certificate.
    pub client_certificate: Option<&'a [u8]>,
}

impl std::fmt::Debug for EndpointRequest<'_> {
    // `#[tracing::instrument]` records a handler's arguments with `Debug`: the
    // header carries Basic credentials, the body `client_secret` and `device_code`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointRequest")
            .field("content_type", &self.content_type)
            .field("has_authorization", &self.authorization.is_some())
            .field("has_dpop", &self.dpop.is_some())
            .field("has_client_certificate", &self.client_certificate.is_some())
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl<'a> EndpointRequest<'a> {
    /// A form-encoded request with this body and no `Authorization` header.
    pub fn form(body: &'a [u8]) -> Self {
        Self {
            content_type: Some("application/x-www-form-urlencoded"),
            authorization: None,
            body,
            dpop: None,
            client_certificate: None,
        }
    }

    /// The same request with an `Authorization` header value.
    pub fn with_authorization(mut self, value: &'a str) -> Self {
        self.authorization = Some(value);
        self
    }

    /// The same request with a `DPoP` header value.
    pub fn with_dpop(mut self, proof: &'a str) -> Self {
        self.dpop = Some(proof);
        self
    }

    /// The same request with the client's TLS certificate (DER).
    pub fn with_client_certificate(mut self, der: &'a [u8]) -> Self {
        self.client_certificate = Some(der);
        self
    }

    /// The request's `grant_type`, read with the token endpoint's rules
    /// (a form body within `limits`; a missing, empty or repeated
    /// `grant_type` is `invalid_request`), so that one token endpoint can send
    /// the device grant to [`DeviceGrant::token`] and other grants to the
    /// host's code. [`DeviceGrant::grant_type`] reads with the configured limits.
    pub fn grant_type(&self, limits: &Limits) -> Result<GrantType, OAuthError> {
        let form = self.parse_within(limits)?;
        Ok(GrantType::from_value(form.require("grant_type")?))
    }

    pub(crate) fn parse(&self, grant: &DeviceGrant) -> Result<Form<'a>, OAuthError> {
        self.parse_within(&grant.inner.config.limits)
    }

    fn parse_within(&self, limits: &Limits) -> Result<Form<'a>, OAuthError> {
        if !self.content_type.is_some_and(is_form_content_type) {
            return Err(RequestError::WrongContentType.into());
        }
        Ok(Form::parse(self.body, limits)?)
    }
}

/// The `grant_type` of a token request, from [`EndpointRequest::grant_type`]
/// or [`DeviceGrant::grant_type`].
///
/// ```
/// # use device_grant::{EndpointRequest, GrantType, Limits};
/// let request = EndpointRequest::form(b"grant_type=refresh_token&refresh_token=r");
/// match request.grant_type(&Limits::default()) {
///     Ok(GrantType::DeviceCode) => { /* grant.token(request) */ }
///     Ok(GrantType::Other(name)) if name == "refresh_token" => { /* the host's */ }
///     Ok(_) => { /* OAuthError::UnsupportedGrantType */ }
///     Err(error) => { /* error.to_http() */ }
/// }
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantType {
    /// [`DEVICE_CODE_GRANT_TYPE`]: serve it with [`DeviceGrant::token`].
    DeviceCode,
    /// Any other value, percent-decoded and compared case-sensitively (RFC 6749
    /// defines no case folding): the host's, or `unsupported_grant_type`.
    Other(String),
}

impl GrantType {
    fn from_value(value: &str) -> Self {
        if value == DEVICE_CODE_GRANT_TYPE {
            Self::DeviceCode
        } else {
            Self::Other(value.to_owned())
        }
    }

    /// The value as sent (percent-decoded).
    pub fn as_str(&self) -> &str {
        match self {
            Self::DeviceCode => DEVICE_CODE_GRANT_TYPE,
            Self::Other(value) => value,
        }
    }
}

/// Something an endpoint returns that renders as an HTTP response.
pub trait ToHttp {
    /// The response: status, headers (always `no-store`), JSON body.
    fn to_http(&self) -> HttpResponse;
}

impl ToHttp for OAuthError {
    fn to_http(&self) -> HttpResponse {
        OAuthError::to_http(self)
    }
}

impl<T: ToHttp> ToHttp for Result<T, OAuthError> {
    fn to_http(&self) -> HttpResponse {
        match self {
            Ok(v) => v.to_http(),
            Err(e) => e.to_http(),
        }
    }
}

impl DeviceGrant {
    /// [`EndpointRequest::grant_type`] with the configured
    /// [`Limits`](crate::Limits).
    pub fn grant_type(&self, request: &EndpointRequest<'_>) -> Result<GrantType, OAuthError> {
        request.grant_type(&self.inner.config.limits)
    }

    /// The request's form parameters, read with the endpoints' rules and the
    /// configured [`Limits`](crate::Limits), for the host's own grants at the
    /// same token endpoint: a body that is not a form, too large, repeats a
    /// parameter or is not UTF-8 is refused with the same errors as the
    /// device grant's.
    ///
    /// ```
    /// # let config = device_grant::Config::builder("https://as.example/device", device_grant::UserCodeKey::generate()).build().unwrap();
    /// # struct Issuer;
    /// # #[async_trait::async_trait]
    /// # impl device_grant::TokenIssuer for Issuer {
    /// #     async fn issue(&self, _: &device_grant::ApprovedGrant) -> Result<device_grant::TokenResponse, device_grant::BackendError> { unimplemented!() }
    /// # }
    /// # let grant = device_grant::DeviceGrant::builder(config, std::sync::Arc::new(device_grant::StaticClients::new()), std::sync::Arc::new(Issuer)).build();
    /// use device_grant::EndpointRequest;
    ///
    /// let request = EndpointRequest::form(b"grant_type=refresh_token&refresh_token=r1");
    /// let form = grant.form(&request).unwrap();
    /// assert_eq!(form.require("refresh_token").unwrap(), "r1");
    /// assert_eq!(form.get("scope").unwrap(), None);
    ///
    /// let repeated = EndpointRequest::form(b"refresh_token=a&refresh_token=b");
    /// let err = grant.form(&repeated).unwrap().require("refresh_token").unwrap_err();
    /// assert_eq!(device_grant::OAuthError::from(err).code().as_str(), "invalid_request");
    /// ```
    pub fn form<'a>(&self, request: &EndpointRequest<'a>) -> Result<Form<'a>, OAuthError> {
        request.parse(self)
    }

    /// Authenticates the client of a token-endpoint request exactly as the device
    /// code grant does (RFC 6749 §2.3), for the host's other grants served at the
    /// same endpoint (`refresh_token`), so that every grant accepts the same
    /// credentials and refuses them with the same errors.
    ///
    /// Whether the client may use the device grant ([`Client::device_grant`]) is
    /// not checked: that is the device grant's own rule. Whether it may use the
    /// grant at hand is the host's to check.
    pub async fn authenticate_client(
        &self,
        request: EndpointRequest<'_>,
    ) -> Result<Arc<Client>, OAuthError> {
        let form = request.parse(self)?;
        self.authenticate_any(&form, request.authorization).await
    }

    /// The live pending record a typed user code names. Looked up under the
    /// current key and every previous one: a code issued before a key rotation
    /// stays usable. A code live under two keys (drawn by an instance that did
    /// not know the other key) names two requests, and the person cannot be
    /// asked which: it names none.
    pub(crate) async fn live_by_typed_code(
        &self,
        code: &UserCode,
        now: OffsetDateTime,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        let mut found = None;
        for key in self.inner.config.user_code_keys() {
            let hash = key.hash(code);
            let record = self.inner.store.by_user_code(&hash, now).await?;
            if let Some(record) = record.filter(|r| r.is_live(now) && r.user_code_hash == hash) {
                if found.is_some() {
                    return Ok(None);
                }
                found = Some(record);
            }
        }
        Ok(found)
    }

    /// Whether `code` is live under a previous key, which a new code must not
    /// be: the store checks uniqueness only under the hash it stores.
    pub(crate) async fn live_under_previous_keys(
        &self,
        code: &UserCode,
        now: OffsetDateTime,
    ) -> Result<bool, BackendError> {
        for key in &self.inner.config.previous_user_code_keys {
            let hash = key.hash(code);
            let record = self.inner.store.by_user_code(&hash, now).await?;
            if record.is_some_and(|r| r.is_live(now) && r.user_code_hash == hash) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Client authentication for the device grant's endpoints: RFC 6749 §2.3,
    /// then `unauthorized_client` unless the client may use the device grant.
    pub(crate) async fn authenticate(
        &self,
        form: &Form<'_>,
        authorization: Option<&str>,
    ) -> Result<Arc<Client>, OAuthError> {
        let client = self.authenticate_any(form, authorization).await?;
        if !client.device_grant {
            return Err(OAuthError::UnauthorizedClient);
        }
        Ok(client)
    }

    /// RFC 6749 §2.3 client authentication, for any grant.
    pub(crate) async fn authenticate_any(
        &self,
        form: &Form<'_>,
        authorization: Option<&str>,
    ) -> Result<Arc<Client>, OAuthError> {
        let realm = &self.inner.config.realm;
        let credentials =
            ClientCredentials::read(form, authorization).map_err(|e| e.in_realm(realm))?;
        // Built only when refused: a poll authenticates on every request.
        let invalid = || OAuthError::InvalidClient {
            via_header: authorization.is_some(),
            realm: realm.clone(),
        };
        let clients = &self.inner.clients;
        let Some(client) = clients.find(&credentials.id).await? else {
            return Err(invalid());
        };
        if !client.auth_methods.contains(&credentials.method) {
            return Err(invalid());
        }
        // RFC 6749 §3.2.1: only a public client may be identified by its id
        // alone. A host registry that lists `none` beside a secret method would
        // otherwise let anyone act as that confidential client.
        if credentials.method == AuthMethod::None && !client.is_public() {
            return Err(invalid());
        }
        if let Some(secret) = &credentials.secret {
            if !clients.verify_secret(&client, secret).await? {
                return Err(invalid());
            }
        }
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use crate::host::clients::StaticClients;
    use crate::host::issuer::{ApprovedGrant, TokenIssuer, TokenResponse};
    use crate::protocol::error::BackendError;
    use crate::protocol::user_code::UserCodeKey;

    struct NoTokens;
    #[async_trait::async_trait]
    impl TokenIssuer for NoTokens {
        async fn issue(&self, _: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
            Err(BackendError::other("unused"))
        }
    }

    fn grant() -> DeviceGrant {
        let config = Config::builder(
            "https://as.example/device",
            UserCodeKey::new(&[1; 32]).unwrap(),
        )
        .build()
        .unwrap();
        let mut web = Client::for_device_grant("web", vec![AuthMethod::None]);
        web.device_grant = false;
        let clients = StaticClients::new()
            .with_public(Client::for_device_grant("tv", vec![AuthMethod::None]))
            .with_public(web)
            .with_confidential(
                Client::for_device_grant("printer", vec![AuthMethod::ClientSecretPost]),
                "s3cret",
            );
        DeviceGrant::builder(config, Arc::new(clients), Arc::new(NoTokens)).build()
    }

    #[tokio::test]
    async fn authenticate_client_applies_the_token_endpoint_rules() {
        let grant = grant();
        let ok = |body: &'static [u8]| grant.authenticate_client(EndpointRequest::form(body));
        assert_eq!(
            ok(b"grant_type=refresh_token&client_id=tv")
                .await
                .unwrap()
                .id
                .as_str(),
            "tv"
        );
        assert_eq!(
            ok(b"client_id=printer&client_secret=s3cret")
                .await
                .unwrap()
                .id
                .as_str(),
            "printer"
        );
        // Other grants' clients need not be allowed the device grant.
        assert_eq!(
            ok(b"grant_type=refresh_token&client_id=web")
                .await
                .unwrap()
                .id
                .as_str(),
            "web"
        );
        for body in [
            &b"client_id=printer&client_secret=wrong"[..],
            b"client_id=printer",
            b"client_id=nobody",
            b"refresh_token=x",
        ] {
            let err = grant
                .authenticate_client(EndpointRequest::form(body))
                .await
                .unwrap_err();
            assert!(matches!(err, OAuthError::InvalidClient { .. }), "{err:?}");
        }
        let not_a_form = EndpointRequest {
            content_type: Some("application/json"),
            authorization: None,
            body: b"{}",
            dpop: None,
            client_certificate: None,
        };
        assert!(matches!(
            grant.authenticate_client(not_a_form).await,
            Err(OAuthError::InvalidRequest(_))
        ));
    }
}
