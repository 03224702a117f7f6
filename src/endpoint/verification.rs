//! The verification API behind the host's pages (RFC 8628 §3.3): find a pending
//! request from what a person typed, then approve or deny it.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::{Duration, OffsetDateTime};

use crate::endpoint::budgets::Layer;
use crate::grant::DeviceGrant;
use crate::host::consent::{ConsentDecision, ConsentSignals};
use crate::host::events::Event;
use crate::host::limiter::LimiterKey;
use crate::protocol::authorization::{
    Approval, AuthorizationId, DeviceAuthorization, RequestDetails, Subject, TransitionError,
};
use crate::protocol::client::Client;
use crate::protocol::error::BackendError;
use crate::protocol::proximity::proximity;
use crate::protocol::scope::ScopeSet;
use crate::protocol::user_code::{UserCodeError, UserCodeHash};

const CAS_ROUNDS: usize = 16;

/// Why the verification API refused.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum VerificationError {
    /// The input cannot be a user code (wrong length or character). Costs no attempt.
    #[error(transparent)]
    Malformed(#[from] UserCodeError),
    /// No pending request has this code: wrong, expired, or already acted upon.
    #[error("no pending request has this code")]
    NotFound,
    /// The limiter key has no attempts left.
    #[error("too many wrong codes; try again in {} s", retry_after.whole_seconds())]
    TooManyAttempts {
        /// When the next window starts.
        retry_after: Duration,
    },
    /// The approval grants a scope the device did not request.
    #[error("the approval grants a scope that was not requested")]
    ScopeNotRequested,
    /// The request changed under every compare-and-set round; try again.
    #[error("the request is contended; try again")]
    Contended,
    /// A host backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// A handle on one pending request for the approve/deny step: the request's id
/// and its user-code hash. Carry it from the consent page to the decision in the
/// host's session or a hidden field (with CSRF protection); it names exactly the
/// request the person was shown, never a later one with a recycled code.
/// `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct VerificationTicket {
    id: AuthorizationId,
    user_code_hash: UserCodeHash,
}

impl VerificationTicket {
    /// The text form, `id.hash`.
    pub fn encode(&self) -> String {
        format!(
            "{}.{}",
            self.id,
            URL_SAFE_NO_PAD.encode(self.user_code_hash.0)
        )
    }

    /// Parses the text form.
    pub fn decode(text: &str) -> Option<Self> {
        let (id, hash) = text.split_once('.')?;
        let bytes = URL_SAFE_NO_PAD.decode(hash).ok()?;
        Some(Self {
            id: AuthorizationId::parse(id)?,
            user_code_hash: UserCodeHash(bytes.try_into().ok()?),
        })
    }

    /// The request's id.
    pub fn id(&self) -> AuthorizationId {
        self.id
    }
}

impl std::fmt::Debug for VerificationTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerificationTicket({}, [redacted])", self.id)
    }
}

/// The consent-time signals and the policy's decision on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assessment {
    /// Proximity, age, approver address.
    pub signals: ConsentSignals,
    /// What the consent page should do.
    pub decision: ConsentDecision,
}

/// A pending request as the consent page shows it.
#[derive(Debug, Clone)]
pub struct PendingRequest {
    /// The handle for [`DeviceGrant::approve`] and [`DeviceGrant::deny`].
    pub ticket: VerificationTicket,
    /// The requesting client's registration (its name, for the page).
    pub client: Arc<Client>,
    /// The request: scopes, creation and expiry time, the device's context.
    pub request: Arc<RequestDetails>,
    /// How long ago the device asked, at the time of the look-up.
    pub age: Duration,
}

impl DeviceGrant {
    /// Finds the live pending request for what a person typed.
    ///
    /// Input that cannot be a code is refused at once and costs nothing. A
    /// well-formed code spends one attempt of `key`'s budget and of the
    /// deployment-wide budget before the look-up, refunded when the code is right,
    /// so that only wrong codes count; when a budget is spent the answer is
    /// [`VerificationError::TooManyAttempts`] without a look-up.
    pub async fn verify(
        &self,
        typed: &str,
        key: &LimiterKey,
    ) -> Result<PendingRequest, VerificationError> {
        let config = &self.inner.config;
        let code = config.user_code_policy.normalize(typed)?;
        let now = self.now();
        let budgets = &config.budgets;
        let mut layers = vec![Layer {
            key: key.clone(),
            budget: budgets.wrong_codes_per_key,
        }];
        layers.extend(budgets.wrong_codes_global.map(Layer::global_wrong_codes));
        if let Err(retry_after) = self.spend(&layers, now).await? {
            return Err(VerificationError::TooManyAttempts { retry_after });
        }
        let hash = config.user_code_key.hash(&code);
        let found = self.live_by_user_code(&hash, now).await?;
        let Some(record) = found else {
            return Err(VerificationError::NotFound);
        };
        let Some(client) = self.inner.clients.find(&record.request.client_id).await? else {
            return Err(VerificationError::NotFound);
        };
        // A right code costs nothing: only wrong codes count.
        self.refund(&layers, now).await?;
        Ok(PendingRequest {
            ticket: VerificationTicket {
                id: record.id,
                user_code_hash: hash,
            },
            client,
            age: now - record.request.created_at,
            request: record.request,
        })
    }

    /// The consent-time signals for a request found by [`DeviceGrant::verify`]:
    /// how near the approver (at `approver_ip`) is to the device, how old the
    /// request is, and what the configured [`ConsentPolicy`](crate::ConsentPolicy) decides. Show the
    /// signals on the consent page, and honour the decision before calling
    /// [`DeviceGrant::approve`].
    pub fn assess(&self, pending: &PendingRequest, approver_ip: Option<IpAddr>) -> Assessment {
        let signals = ConsentSignals {
            proximity: proximity(pending.request.context.ip, approver_ip),
            age: self.now() - pending.request.created_at,
            approver_ip,
        };
        Assessment {
            decision: self.inner.consent.decide(&signals),
            signals,
        }
    }

    /// Approves the request for `subject` with `scopes` (a subset of those
    /// requested) and optional host `data` handed to the token issuer.
    pub async fn approve(
        &self,
        ticket: &VerificationTicket,
        subject: Subject,
        scopes: ScopeSet,
        data: Option<serde_json::Value>,
    ) -> Result<(), VerificationError> {
        let approval = Approval {
            subject,
            scopes,
            approved_at: self.now(),
            data,
        };
        let record = self
            .transition(ticket, |record, now| record.approve(approval.clone(), now))
            .await?;
        self.release_pending(&record).await?;
        self.emit(Event::Approved {
            id: record.id,
            client_id: record.request.client_id.clone(),
            subject: approval.subject,
        });
        Ok(())
    }

    /// Denies the request.
    pub async fn deny(&self, ticket: &VerificationTicket) -> Result<(), VerificationError> {
        let record = self
            .transition(ticket, |record, now| record.deny(now))
            .await?;
        self.release_pending(&record).await?;
        self.emit(Event::Denied {
            id: record.id,
            client_id: record.request.client_id.clone(),
        });
        Ok(())
    }

    /// Gives back the client's pending-budget unit of a request that left Pending.
    async fn release_pending(&self, record: &DeviceAuthorization) -> Result<(), BackendError> {
        let config = &self.inner.config;
        if let Some(attempts) = config.budgets.pending_per_client {
            let layer = Layer::pending(&record.request.client_id, attempts, config.lifetime);
            self.refund(&[layer], self.now()).await?;
        }
        Ok(())
    }

    async fn live_by_user_code(
        &self,
        hash: &UserCodeHash,
        now: OffsetDateTime,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        let found = self.inner.store.by_user_code(hash, now).await?;
        Ok(found.filter(|r| r.is_live(now) && r.user_code_hash == *hash))
    }

    async fn transition(
        &self,
        ticket: &VerificationTicket,
        step: impl Fn(
            &DeviceAuthorization,
            OffsetDateTime,
        ) -> Result<DeviceAuthorization, TransitionError>,
    ) -> Result<DeviceAuthorization, VerificationError> {
        for _ in 0..CAS_ROUNDS {
            let now = self.now();
            let record = self
                .live_by_user_code(&ticket.user_code_hash, now)
                .await?
                .filter(|r| r.id == ticket.id)
                .ok_or(VerificationError::NotFound)?;
            let next = step(&record, now).map_err(|e| match e {
                TransitionError::ScopeNotRequested => VerificationError::ScopeNotRequested,
                _ => VerificationError::NotFound,
            })?;
            if self
                .inner
                .store
                .compare_and_set(record.version, &next)
                .await?
            {
                return Ok(next);
            }
        }
        Err(VerificationError::Contended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_round_trips_and_redacts() {
        let t = VerificationTicket {
            id: AuthorizationId([3; 16]),
            user_code_hash: UserCodeHash([4; 32]),
        };
        assert_eq!(VerificationTicket::decode(&t.encode()), Some(t.clone()));
        assert!(!format!("{t:?}").contains(&URL_SAFE_NO_PAD.encode([4u8; 32])));
        assert_eq!(VerificationTicket::decode("nodot"), None);
        assert_eq!(VerificationTicket::decode("zz.AAAA"), None);
    }
}
