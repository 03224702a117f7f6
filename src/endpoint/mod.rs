//! The endpoints: each orchestrates the pure core and the host's traits.

mod budgets;
pub mod device_authorization;
pub mod token;
pub mod verification;

use std::sync::Arc;

use crate::grant::DeviceGrant;
use crate::protocol::client::{Client, ClientCredentials};
use crate::protocol::error::{OAuthError, RequestError};
use crate::protocol::form::{Form, is_form_content_type};
use crate::protocol::response::HttpResponse;

/// The parts of an HTTP request the two OAuth endpoints read.
#[derive(Debug, Clone, Copy)]
pub struct EndpointRequest<'a> {
    /// The `Content-Type` header value; anything but a form (or none) is refused.
    pub content_type: Option<&'a str>,
    /// The `Authorization` header value, if any.
    pub authorization: Option<&'a str>,
    /// The raw body.
    pub body: &'a [u8],
}

impl<'a> EndpointRequest<'a> {
    /// A form-encoded request with this body and no `Authorization` header.
    pub fn form(body: &'a [u8]) -> Self {
        Self {
            content_type: Some("application/x-www-form-urlencoded"),
            authorization: None,
            body,
        }
    }

    /// The same request with an `Authorization` header value.
    pub fn with_authorization(mut self, value: &'a str) -> Self {
        self.authorization = Some(value);
        self
    }

    pub(crate) fn parse(&self, grant: &DeviceGrant) -> Result<Form<'a>, OAuthError> {
        if !self.content_type.is_some_and(is_form_content_type) {
            return Err(RequestError::WrongContentType.into());
        }
        Ok(Form::parse(self.body, &grant.inner.config.limits)?)
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
    /// RFC 6749 §2.3 client authentication, shared by both endpoints.
    pub(crate) async fn authenticate(
        &self,
        form: &Form<'_>,
        authorization: Option<&str>,
    ) -> Result<Arc<Client>, OAuthError> {
        let credentials = ClientCredentials::read(form, authorization)?;
        let invalid = OAuthError::InvalidClient {
            via_header: authorization.is_some(),
        };
        let clients = &self.inner.clients;
        let Some(client) = clients.find(&credentials.id).await? else {
            return Err(invalid);
        };
        if !client.auth_methods.contains(&credentials.method) {
            return Err(invalid);
        }
        if let Some(secret) = &credentials.secret {
            if !clients.verify_secret(&client, secret).await? {
                return Err(invalid);
            }
        }
        if !client.device_grant {
            return Err(OAuthError::UnauthorizedClient);
        }
        Ok(client)
    }
}
