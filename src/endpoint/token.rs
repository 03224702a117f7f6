//! The token endpoint's device code grant (RFC 8628 §3.4, §3.5).

use crate::endpoint::{EndpointRequest, ToHttp};
use crate::grant::DeviceGrant;
use crate::host::events::Event;
use crate::host::issuer::{ApprovedGrant, TokenResponse};
use crate::protocol::authorization::PollOutcome;
use crate::protocol::device_code;
use crate::protocol::error::OAuthError;
use crate::protocol::response::HttpResponse;

/// The `grant_type` of the device code grant.
pub const DEVICE_CODE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

// Compare-and-set rounds before giving up. Racing polls of one code converge in
// two (the losers re-read a changed record and get slow_down or invalid_grant).
const CAS_ROUNDS: usize = 16;

impl ToHttp for TokenResponse {
    fn to_http(&self) -> HttpResponse {
        HttpResponse::json(200, self)
    }
}

impl DeviceGrant {
    /// Serves a token request whose `grant_type` is [`DEVICE_CODE_GRANT_TYPE`]
    /// (any other is `unsupported_grant_type`).
    ///
    /// A pending poll answers `authorization_pending` or `slow_down`; an approved
    /// one is marked redeemed (a compare-and-set, so exactly one of any number of
    /// racing polls wins) and then the host's issuer mints the tokens.
    pub async fn token(&self, request: EndpointRequest<'_>) -> Result<TokenResponse, OAuthError> {
        let form = request.parse(self)?;
        if form.require("grant_type")? != DEVICE_CODE_GRANT_TYPE {
            return Err(OAuthError::UnsupportedGrantType);
        }
        let client = self.authenticate(&form, request.authorization).await?;
        let device_code = form.require("device_code")?;
        if !device_code::is_well_formed(device_code) {
            return Err(OAuthError::InvalidGrant);
        }
        let hash = device_code::hash(device_code);
        let store = &self.inner.store;
        for _ in 0..CAS_ROUNDS {
            let Some(record) = store.by_device_code(&hash).await? else {
                return Err(OAuthError::InvalidGrant);
            };
            if record.request.client_id != client.id {
                return Err(OAuthError::InvalidGrant);
            }
            let poll = record.poll(self.now(), &self.inner.config.polling);
            if let Some(next) = &poll.next {
                if !store.compare_and_set(record.version, next).await? {
                    continue;
                }
            }
            let id = record.id;
            // Cloned only for the outcomes that emit an event: a pending poll, the
            // most common request of all, has no use for it.
            let client_id = || record.request.client_id.clone();
            return match poll.outcome {
                PollOutcome::Pending => Err(OAuthError::AuthorizationPending),
                PollOutcome::SlowDown(interval) => {
                    self.emit(Event::SlowDown {
                        id,
                        client_id: client_id(),
                        interval,
                    });
                    Err(OAuthError::SlowDown)
                }
                PollOutcome::Denied => Err(OAuthError::AccessDenied),
                PollOutcome::Expired => Err(OAuthError::ExpiredToken),
                PollOutcome::Replay => {
                    self.emit(Event::Replay {
                        id,
                        client_id: client_id(),
                    });
                    Err(OAuthError::InvalidGrant)
                }
                PollOutcome::Redeem(approval) => {
                    let grant = ApprovedGrant {
                        id,
                        client,
                        request: record.request.clone(),
                        approval,
                    };
                    let mut response = self.inner.issuer.issue(&grant).await?;
                    // RFC 6749 §5.1: `scope` is required when it differs from the request.
                    if response.scope.is_none() && grant.approval.scopes != grant.request.scopes {
                        response.scope = Some(grant.approval.scopes.clone());
                    }
                    self.emit(Event::Redeemed {
                        id,
                        client_id: client_id(),
                        subject: grant.approval.subject.clone(),
                    });
                    Ok(response)
                }
            };
        }
        Err(OAuthError::Contended)
    }
}
