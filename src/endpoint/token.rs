//! The token endpoint's device code grant (RFC 8628 §3.4, §3.5).

use std::sync::Arc;

use crate::endpoint::commit::Commit;
use crate::endpoint::{EndpointRequest, ToHttp};
use crate::grant::DeviceGrant;
use crate::host::consent::{ConsentDecision, PolicyCheck, PolicyStep, PolicyVerdict};
use crate::host::events::{Event, EventKind};
use crate::host::issuer::{ApprovedGrant, TokenResponse};
use crate::host::store::{PollAttempt, Polled, whole_micros};
use crate::protocol::authorization::{Approval, DeviceAuthorization, PollOutcome, RequestDetails};
use crate::protocol::client::Client;
use crate::protocol::device_code;
use crate::protocol::dpop::{DpopError, JwkThumbprint};
use crate::protocol::error::OAuthError;
use crate::protocol::mtls::CertificateThumbprint;
use crate::protocol::pkce::{self, CodeChallenge};
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
    /// still redeem the code. It raises [`EventKind::VerifierRefused`].
    ///
    /// Before an approved code is redeemed, the client's registration is read
    /// again and the [`ConsentPolicy`](crate::ConsentPolicy) is asked at
    /// [`PolicyStep::Redemption`]: a client no longer registered for the
    /// device grant ([`Client::device_grant`]), or a refusal, is
    /// `access_denied` ([`OAuthError::RedemptionRefused`]), the request is
    /// marked denied so that every later poll gets `access_denied` too, no
    /// token is minted, and [`EventKind::Refused`] is raised. A pending
    /// request of a client no longer registered is denied the same way at its
    /// next poll.
    ///
    /// With a [`DpopConfig`](crate::DpopConfig) (feature `dpop`), a `DPoP`
    /// header ([`EndpointRequest::dpop`]) is checked next, before the
    /// request's state too: a refused proof is `invalid_dpop_proof`
    /// ([`OAuthError::DpopProof`]) and changes nothing. The key of a valid
    /// proof reaches the issuer as [`ApprovedGrant::dpop_jkt`].
    pub async fn token(&self, request: EndpointRequest<'_>) -> Result<TokenResponse, OAuthError> {
        let form = request.parse(self)?;
        if form.require("grant_type")? != DEVICE_CODE_GRANT_TYPE {
            return Err(OAuthError::UnsupportedGrantType);
        }
        // Not `authenticate`: a client withdrawn from the grant after its
        // request was approved must get `access_denied` for that request, and
        // the request denied for good (below).
        let client = self.authenticate_any(&form, request.authorization).await?;
        let withdrawn = || {
            if client.device_grant {
                OAuthError::InvalidGrant
            } else {
                OAuthError::UnauthorizedClient
            }
        };
        let device_code = form.require("device_code")?;
        if !device_code::is_well_formed(device_code) {
            return Err(withdrawn());
        }
        let verifier = form.get("code_verifier")?;
        // The proof before the record: a bad one changes nothing and learns
        // nothing of the request's state.
        #[cfg(feature = "dpop")]
        let dpop_jkt = self.dpop_proof(&request).await?;
        #[cfg(not(feature = "dpop"))]
        let dpop_jkt = None;
        let hash = device_code::hash(device_code);
        let store = &self.inner.store;
        // The most frequent request of the grant, a pending poll, in one round
        // trip where the store can judge its pace itself. Anything else (a
        // client withdrawn from the grant, a malformed verifier, a record that
        // is not this client's pending one) takes the general path below.
        let mut read = None;
        let derived = verifier.map(CodeChallenge::from_verifier);
        if client.device_grant && !matches!(derived, Some(None)) {
            let challenge = derived.flatten();
            let attempt = PollAttempt::new(
                &client.id,
                challenge.as_ref(),
                dpop_jkt.as_ref(),
                self.now(),
                &self.inner.config.polling,
            );
            match self.poll_settled(&hash, &attempt).await? {
                Polled::Pending => return Err(OAuthError::AuthorizationPending),
                Polled::SlowDown(interval, record) => {
                    self.emit(Event::about(
                        attempt.now,
                        EventKind::SlowDown { interval },
                        record.id,
                        &record.request,
                    ));
                    return Err(OAuthError::SlowDown { interval });
                }
                Polled::Undecided(record) => read = Some(record),
            }
        }
        for _ in 0..CAS_ROUNDS {
            let found = match read.take() {
                Some(found) => found,
                None => store.by_device_code(&hash).await?,
            };
            let Some(record) = found else {
                return Err(withdrawn());
            };
            if record.request.client_id != client.id {
                return Err(withdrawn());
            }
            // PKCE before anything else: a poll without the right verifier
            // writes nothing, counts toward no slow_down, raises no replay and
            // learns nothing of the request's state.
            if let Err(refused) =
                pkce::check_verifier(record.request.code_challenge.as_ref(), verifier)
            {
                self.emit(Event::about(
                    self.now(),
                    EventKind::VerifierRefused { reason: refused },
                    record.id,
                    &record.request,
                ));
                return Err(refused.into());
            }
            // A device code bound to a DPoP key: only a proof of that key
            // redeems or polls it, checked before anything changes.
            if let Some(bound) = &record.request.dpop_jkt {
                match &dpop_jkt {
                    Some(jkt) if jkt == bound => {}
                    Some(_) => return Err(DpopError::WrongKey.into()),
                    None => return Err(DpopError::Missing.into()),
                }
            }
            // Whole microseconds, as a store that judges polls keeps them.
            let now = whole_micros(self.now());
            let poll = record.poll(now, &self.inner.config.polling);
            // Built only for the outcomes that emit an event: a pending poll, the
            // most common request of all, has no use for one.
            let event = |kind| Event::about(now, kind, record.id, &record.request);
            // The redemption re-check: the client's registration as it is now,
            // then the host's policy. A refusal denies the request for good.
            let verdict = match &poll.outcome {
                PollOutcome::Redeem(approval) => {
                    Some(self.redemption_verdict(&client, &record.request, approval))
                }
                PollOutcome::Pending | PollOutcome::SlowDown(_) if !client.device_grant => {
                    Some(withdrawn_verdict())
                }
                _ => None,
            };
            if let Some(verdict) = verdict.filter(|v| v.effective() != ConsentDecision::Allow) {
                match self.withdraw(&record, verdict).await? {
                    true => return Err(OAuthError::RedemptionRefused),
                    false => continue,
                }
            }
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
                    let certificate = request
                        .client_certificate
                        .map(CertificateThumbprint::of_der);
                    self.redeem(client, taken, approval, verdict, (dpop_jkt, certificate))
                        .await
                }
                outcome => {
                    if let Some(next) = &poll.next {
                        // This write's own pace (and status, past expiry).
                        let landed = |s: &DeviceAuthorization| {
                            s.status == next.status
                                && s.interval == next.interval
                                && s.last_poll == next.last_poll
                        };
                        match self.commit(record.version, next, landed).await {
                            Commit::Done => {}
                            Commit::Lost => continue,
                            Commit::Unknown(e) => return Err(e.into()),
                        }
                    }
                    match outcome {
                        PollOutcome::SlowDown(interval) => {
                            self.emit(event(EventKind::SlowDown { interval }));
                            Err(OAuthError::SlowDown { interval })
                        }
                        PollOutcome::Denied => Err(OAuthError::AccessDenied),
                        PollOutcome::Expired => Err(OAuthError::ExpiredToken),
                        PollOutcome::Replay => {
                            let subject = record.status.approval().map(|a| &a.subject);
                            self.emit(event(EventKind::Replay).with_subject(subject));
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
        verdict: Option<PolicyVerdict>,
        (dpop_jkt, client_certificate): (Option<JwkThumbprint>, Option<CertificateThumbprint>),
    ) -> Result<TokenResponse, OAuthError> {
        let grant = ApprovedGrant {
            id: taken.id,
            client,
            request: taken.request.clone(),
            approval,
            dpop_jkt,
            client_certificate,
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
        self.emit(
            Event::about(self.now(), EventKind::Redeemed, grant.id, &grant.request)
                .with_subject(Some(&grant.approval.subject))
                .with_policy(verdict),
        );
        Ok(response)
    }

    /// The verdict at redemption: the client must still be registered for
    /// the device grant (in every mode), then the host's policy decides.
    fn redemption_verdict(
        &self,
        client: &Client,
        request: &RequestDetails,
        approval: &Approval,
    ) -> PolicyVerdict {
        if !client.device_grant {
            return withdrawn_verdict();
        }
        self.policy(&PolicyCheck {
            step: PolicyStep::Redemption,
            client,
            scopes: &approval.scopes,
            device: &request.context,
            consent: None,
            subject: Some(&approval.subject),
        })
    }

    /// Denies `record` for good after a refusal at redemption: `true` once
    /// written (a lost reply settled by reading the record back), `false` if
    /// the record changed meanwhile (read it again).
    async fn withdraw(
        &self,
        record: &DeviceAuthorization,
        verdict: PolicyVerdict,
    ) -> Result<bool, OAuthError> {
        let now = self.now();
        let Ok(next) = record.withdraw(now) else {
            // Expired meanwhile: no path to tokens either way.
            return Err(OAuthError::ExpiredToken);
        };
        let denied = next.status.clone();
        match self
            .commit(record.version, &next, |s| s.status == denied)
            .await
        {
            Commit::Done => {}
            Commit::Lost => return Ok(false),
            Commit::Unknown(e) => return Err(e.into()),
        }
        let subject = record.status.approval().map(|a| &a.subject);
        self.emit(
            Event::about(now, EventKind::Refused, record.id, &record.request)
                .with_subject(subject)
                .with_policy(Some(verdict)),
        );
        Ok(true)
    }
}

/// A client no longer registered for the device grant: refused whatever the
/// policy mode.
fn withdrawn_verdict() -> PolicyVerdict {
    PolicyVerdict {
        step: PolicyStep::Redemption,
        decision: ConsentDecision::Refuse,
        enforced: true,
    }
}
