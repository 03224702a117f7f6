//! The token endpoint's device code grant (RFC 8628 §3.4, §3.5).

use std::sync::Arc;

use crate::endpoint::commit::Commit;
use crate::endpoint::{EndpointRequest, ToHttp};
use crate::grant::DeviceGrant;
use crate::host::events::Event;
use crate::host::issuer::{ApprovedGrant, TokenResponse};
use crate::protocol::authorization::{Approval, DeviceAuthorization, PollOutcome};
use crate::protocol::client::Client;
use crate::protocol::device_code;
use crate::protocol::error::OAuthError;
use crate::protocol::pkce;
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
    /// A pending poll answers `authorization_pending` or `slow_down`. An
    /// approved one takes the approval (a compare-and-set to `Redeeming`, so
    /// exactly one of any number of racing polls wins), has the host's issuer
    /// mint the tokens, and marks the code redeemed. If the issuer fails, the
    /// approval is freed and the client gets `temporarily_unavailable` or
    /// `server_error`: its next poll gets the tokens. If this request is
    /// abandoned while the issuer runs, the approval is freed when its lease
    /// ([`PollingRules::redeem_lease`](crate::PollingRules::redeem_lease)) ends.
    ///
    /// When the device authorization carried a PKCE code challenge, the
    /// request must carry its `code_verifier`; a missing or wrong verifier, or
    /// one sent for a request made without a challenge, is `invalid_grant`
    /// ([`OAuthError::CodeVerifier`]) and is checked before the request's
    /// state: it changes nothing, so the device holding the verifier can
    /// still redeem the code. It raises [`Event::VerifierRefused`].
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
        let verifier = form.get("code_verifier")?;
        let hash = device_code::hash(device_code);
        let store = &self.inner.store;
        for _ in 0..CAS_ROUNDS {
            let Some(record) = store.by_device_code(&hash).await? else {
                return Err(OAuthError::InvalidGrant);
            };
            if record.request.client_id != client.id {
                return Err(OAuthError::InvalidGrant);
            }
            // PKCE before anything else: a poll without the right verifier
            // writes nothing, counts toward no slow_down, raises no replay and
            // learns nothing of the request's state.
            if let Err(refused) =
                pkce::check_verifier(record.request.code_challenge.as_ref(), verifier)
            {
                self.emit(Event::VerifierRefused {
                    id: record.id,
                    client_id: client.id.clone(),
                    reason: refused,
                });
                return Err(refused.into());
            }
            let poll = record.poll(self.now(), &self.inner.config.polling);
            let id = record.id;
            // Cloned only for the outcomes that emit an event: a pending poll, the
            // most common request of all, has no use for it.
            let client_id = || record.request.client_id.clone();
            return match poll.outcome {
                PollOutcome::Redeem(approval) => {
                    // RFC 9396: never mint tokens for details wider than the
                    // request, whatever the store handed back.
                    if !self.inner.detail_types.is_within(
                        approval.authorization_details.as_ref(),
                        record.request.authorization_details.as_ref(),
                    ) {
                        return Err(OAuthError::InvalidGrant);
                    }
                    let Some(taken) = poll.next else {
                        return Err(OAuthError::Contended);
                    };
                    let lease = taken.status.clone();
                    match self
                        .commit(record.version, &taken, |s| s.status == lease)
                        .await
                    {
                        Commit::Done => {}
                        Commit::Lost => continue,
                        // Not knowing whether the approval was taken, take no
                        // tokens: if it was, the lease ends and frees it.
                        Commit::Unknown(e) => return Err(e.into()),
                    }
                    self.redeem(client, taken, approval).await
                }
                outcome => {
                    if let Some(next) = &poll.next {
                        if !store.compare_and_set(record.version, next).await? {
                            continue;
                        }
                    }
                    match outcome {
                        PollOutcome::SlowDown(interval) => {
                            self.emit(Event::SlowDown {
                                id,
                                client_id: client_id(),
                                interval,
                            });
                            Err(OAuthError::SlowDown { interval })
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
                        _ => Err(OAuthError::AuthorizationPending),
                    }
                }
            };
        }
        Err(OAuthError::Contended)
    }

    /// Mints the tokens of an approval this poll has taken (`taken` is the
    /// stored `Redeeming` record), then marks it redeemed.
    async fn redeem(
        &self,
        client: Arc<Client>,
        taken: DeviceAuthorization,
        approval: Arc<Approval>,
    ) -> Result<TokenResponse, OAuthError> {
        let grant = ApprovedGrant {
            id: taken.id,
            client,
            request: taken.request.clone(),
            approval,
        };
        let mut response = match self.inner.issuer.issue(&grant).await {
            Ok(response) => response,
            Err(e) => {
                // The issuer minted nothing (its contract): free the approval so
                // that the device's next poll gets tokens. Best effort: if this
                // write fails, the lease ends and frees it.
                if let Ok(released) = taken.release_redemption() {
                    let approval = released.status.clone();
                    let _ = self
                        .commit(taken.version, &released, |s| s.status == approval)
                        .await;
                }
                return Err(e.into());
            }
        };
        // The tokens exist: they are delivered whatever this write says. If it
        // did not land (the store failed, or the lease ran out and another poll
        // took the approval), the issuer sees the same grant id again, which its
        // contract makes safe.
        if let Ok(done) = taken.redeemed(self.now()) {
            let status = done.status.clone();
            let _ = self
                .commit(taken.version, &done, |s| s.status == status)
                .await;
        }
        // RFC 6749 §5.1: `scope` is required when it differs from the request.
        if response.scope.is_none() && grant.approval.scopes != grant.request.scopes {
            response.scope = Some(grant.approval.scopes.clone());
        }
        // RFC 9396 §7: the details the tokens carry.
        if response.authorization_details.is_none() {
            response.authorization_details = grant.approval.authorization_details.clone();
        }
        self.emit(Event::Redeemed {
            id: grant.id,
            client_id: grant.client.id.clone(),
            subject: grant.approval.subject.clone(),
        });
        Ok(response)
    }
}
