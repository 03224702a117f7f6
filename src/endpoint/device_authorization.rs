//! The device authorization endpoint (RFC 8628 §3.1, §3.2).

use crate::endpoint::budgets::Layer;
use crate::endpoint::{EndpointRequest, ToHttp};
use crate::grant::DeviceGrant;
use crate::host::consent::{ConsentDecision, PolicyCheck, PolicyStep};
use crate::host::events::{Event, EventKind};
use crate::host::limiter::BudgetKind;
use crate::host::store::Inserted;
use crate::protocol::authorization::{
    AuthorizationId, DeviceAuthorization, RequestContext, RequestDetails,
};
use crate::protocol::client::Client;
use crate::protocol::device_code::DeviceCode;
use crate::protocol::error::{OAuthError, RequestError};
use crate::protocol::pkce::CodeChallenge;
use crate::protocol::polling::Interval;
use crate::protocol::response::HttpResponse;
use crate::protocol::scope::ScopeSet;
use crate::protocol::user_code::UserCode;

/// The RFC 8628 §3.2 response. `Debug` redacts both codes (and the complete
/// URI, which carries the user code).
#[derive(Clone)]
pub struct DeviceAuthorizationResponse {
    /// The new authorization's identifier (not sent; for the host's logs).
    pub id: AuthorizationId,
    /// `device_code`.
    pub device_code: DeviceCode,
    /// `user_code`, in its display form.
    pub user_code: UserCode,
    /// `verification_uri`.
    pub verification_uri: String,
    /// `verification_uri_complete`: the URI with the user code as `user_code`.
    pub verification_uri_complete: Option<String>,
    /// `expires_in`, seconds.
    pub expires_in: u64,
    /// `interval`, seconds.
    pub interval: Interval,
}

impl std::fmt::Debug for DeviceAuthorizationResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorizationResponse")
            .field("id", &self.id)
            .field("device_code", &self.device_code)
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field(
                "verification_uri_complete",
                &self
                    .verification_uri_complete
                    .as_ref()
                    .map(|_| "[redacted]"),
            )
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish()
    }
}

impl serde::Serialize for DeviceAuthorizationResponse {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("device_code", self.device_code.secret())?;
        m.serialize_entry("user_code", self.user_code.display())?;
        m.serialize_entry("verification_uri", &self.verification_uri)?;
        if let Some(complete) = &self.verification_uri_complete {
            m.serialize_entry("verification_uri_complete", complete)?;
        }
        m.serialize_entry("expires_in", &self.expires_in)?;
        m.serialize_entry("interval", &self.interval)?;
        m.end()
    }
}

impl ToHttp for DeviceAuthorizationResponse {
    fn to_http(&self) -> HttpResponse {
        HttpResponse::json(200, self)
    }
}

impl DeviceGrant {
    /// Serves the device authorization endpoint: authenticates the client, checks
    /// the grant and scopes, asks the host's policy, and issues a device code
    /// and a user code.
    ///
    /// A client not registered for the device grant ([`Client::device_grant`])
    /// is `unauthorized_client`; scopes above the client's device-grant
    /// ceiling ([`Client::device_scope_ceiling`]) are `invalid_scope`; a
    /// request the [`ConsentPolicy`](crate::ConsentPolicy) refuses at
    /// [`PolicyStep::Initiation`] is `unauthorized_client`
    /// ([`OAuthError::InitiationRefused`]), with an [`EventKind::Refused`]
    /// event. `verification_uri_complete` is sent only to a client that asks
    /// for it ([`Client::verification_uri_complete`]).
    ///
    /// A request may carry a PKCE `code_challenge` with `code_challenge_method`
    /// `S256` (RFC 7636); it is kept with the request, and the token endpoint
    /// then wants its `code_verifier`. `plain`, any other method, a challenge
    /// without a method (which RFC 7636 §4.3 reads as `plain`), a method
    /// without a challenge and a malformed challenge are `invalid_request`, as
    /// is a request without a challenge from a client that
    /// [requires PKCE](crate::Client::require_pkce).
    ///
    /// A request may carry `authorization_details` (RFC 9396 §2), a JSON array
    /// checked by the host's
    /// [registered types](crate::DeviceGrantBuilder::authorization_detail_types)
    /// and kept with the request; malformed details, too many, an unknown type
    /// or a detail its type refuses are `invalid_authorization_details`.
    ///
    /// `context` is what the host knows of the device's request (address, user
    /// agent…); it is shown to the person at consent.
    pub async fn device_authorization(
        &self,
        request: EndpointRequest<'_>,
        context: RequestContext,
    ) -> Result<DeviceAuthorizationResponse, OAuthError> {
        let form = request.parse(self)?;
        let client = self.authenticate(&form, request.authorization).await?;
        let scopes = self.requested_scopes(&client, form.get("scope")?)?;
        // PKCE (RFC 7636), `S256` only; checked before any budget is spent.
        let code_challenge = CodeChallenge::from_request(
            form.get("code_challenge")?,
            form.get("code_challenge_method")?,
            client.require_pkce,
        )?;
        // RFC 9396: checked by the host's registered types before any budget is spent.
        let authorization_details = form
            .get("authorization_details")?
            .map(|text| self.inner.detail_types.parse(text))
            .transpose()?;
        // A DPoP proof binds the device code to its key, when the host binds
        // device codes; checked before any budget is spent too.
        #[cfg(feature = "dpop")]
        let dpop_jkt = self.device_code_binding(&request).await?;
        #[cfg(not(feature = "dpop"))]
        let dpop_jkt = None;
        let config = &self.inner.config;
        let now = self.now();
        let id = AuthorizationId::generate();
        // The host's policy, before any budget is spent: a refused request
        // costs its source nothing and stores nothing.
        let verdict = self.policy(&PolicyCheck {
            step: PolicyStep::Initiation,
            client: &client,
            scopes: &scopes,
            device: &context,
            consent: None,
            subject: None,
        });
        if verdict.effective() != ConsentDecision::Allow {
            self.emit(Event {
                id: Some(id),
                client_id: Some(client.id.clone()),
                device_ip: context.ip,
                device_user_agent: context.user_agent.clone(),
                policy: Some(verdict),
                ..Event::bare(now, EventKind::Refused)
            });
            return Err(OAuthError::InitiationRefused);
        }
        let layers = self.authorization_layers(&client, &context);
        if let Err(refused) = self.spend(&layers, now).await? {
            let retry_after = refused.retry_after;
            return Err(match refused.kind {
                BudgetKind::PendingTotal => OAuthError::Overloaded { retry_after },
                _ => OAuthError::RateLimited { retry_after },
            });
        }
        let interval = client.interval.unwrap_or(config.interval);
        let device_code = DeviceCode::generate();
        let details = RequestDetails {
            client_id: client.id.clone(),
            scopes,
            created_at: now,
            expires_at: now + config.lifetime,
            context,
            code_challenge,
            authorization_details,
            dpop_jkt,
        };
        let policy = &config.user_code_policy;
        let mut user_code = policy.generate();
        let mut record = DeviceAuthorization::new(
            id,
            device_code.hash(),
            config.user_code_key.hash(&user_code),
            details,
            interval,
            config.retention,
        );
        for attempt in 0..config.user_code_tries {
            if attempt > 0 {
                user_code = policy.generate();
                record.user_code_hash = config.user_code_key.hash(&user_code);
            }
            let inserted = match self.live_under_previous_keys(&user_code, now).await {
                Ok(true) => continue,
                Ok(false) => self.inner.store.insert(&record, now).await,
                Err(e) => Err(e),
            };
            match inserted {
                Ok(Inserted::UserCodeTaken) => continue,
                Ok(Inserted::Stored) => {}
                Err(e) => {
                    // Nothing was stored (or, after a timeout, a record no one
                    // holds the device code of): the budgets are given back.
                    self.refund(&layers, now).await;
                    return Err(e.into());
                }
            }
            self.emit(
                Event::about(now, EventKind::Created, id, &record.request)
                    .with_policy(Some(verdict)),
            );
            return Ok(DeviceAuthorizationResponse {
                id,
                // Only for a client that asks for it: a link that carries the
                // code is what a phisher sends (RFC 10027).
                verification_uri_complete: (config.complete_uri
                    && client.verification_uri_complete)
                    .then(|| self.complete_uri(&user_code)),
                device_code,
                user_code,
                verification_uri: config.verification_uri.to_string(),
                expires_in: config.lifetime.whole_seconds().unsigned_abs(),
                interval,
            });
        }
        self.refund(&layers, now).await;
        Err(OAuthError::UserCodesExhausted)
    }

    /// The budgets a device authorization spends: its source network (and IPv6
    /// /48), the client's budgets when the client is confidential (a public
    /// client's id is everyone's to name), and the deployment's ceiling.
    fn authorization_layers(&self, client: &Client, context: &RequestContext) -> Vec<Layer> {
        let config = &self.inner.config;
        let budgets = &config.budgets;
        let mut layers = Vec::with_capacity(4);
        if let Some(ip) = context.ip {
            layers.extend(
                budgets
                    .authorizations_per_source
                    .map(|b| Layer::source(ip, b)),
            );
            layers.extend(
                budgets
                    .authorizations_per_wide_source
                    .and_then(|b| Layer::wide_source(ip, b)),
            );
        }
        if !client.is_public() {
            layers.extend(
                budgets
                    .authorizations_per_client
                    .map(|b| Layer::client(&client.id, b)),
            );
            layers.extend(
                budgets
                    .pending_per_client
                    .map(|n| Layer::pending(&client.id, n, config.lifetime)),
            );
        }
        layers.extend(
            budgets
                .pending_total
                .map(|n| Layer::pending_total(n, config.lifetime)),
        );
        layers
    }

    fn requested_scopes(
        &self,
        client: &Client,
        scope: Option<&str>,
    ) -> Result<ScopeSet, OAuthError> {
        let Some(scope) = scope else {
            // RFC 6749 §3.3: the defaults stand in for a request and must be
            // allowed like one. A host registry need not have checked them.
            if !client
                .default_scopes
                .is_subset(client.device_scope_ceiling())
            {
                return Err(OAuthError::InvalidScope);
            }
            return Ok(client.default_scopes.clone());
        };
        let max = self.inner.config.limits.max_scopes;
        if scope.split(' ').filter(|s| !s.is_empty()).count() > max {
            return Err(RequestError::TooManyScopes(max).into());
        }
        // RFC 6749 §5.2: a malformed scope is `invalid_scope` too.
        let scopes = ScopeSet::parse(scope).map_err(|_| OAuthError::InvalidScope)?;
        // The device grant's ceiling, never wider than the allowed scopes.
        if !scopes.is_subset(client.device_scope_ceiling())
            || !scopes.is_subset(&client.allowed_scopes)
        {
            return Err(OAuthError::InvalidScope);
        }
        // Devices mostly ask for exactly their allowed or default scopes: the
        // record shares the registration's set rather than keeping its own.
        if scopes == client.allowed_scopes {
            return Ok(client.allowed_scopes.clone());
        }
        if scopes == client.default_scopes {
            return Ok(client.default_scopes.clone());
        }
        Ok(scopes)
    }

    /// `verification_uri` with the user code's display form as `user_code`.
    pub(crate) fn complete_uri(&self, user_code: &UserCode) -> String {
        let mut uri = self.inner.config.verification_uri.clone();
        uri.query_pairs_mut()
            .append_pair("user_code", user_code.display());
        uri.to_string()
    }
}
