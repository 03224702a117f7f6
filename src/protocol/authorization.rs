//! The state machine of one device authorization.
//!
//! ```text
//!             approve              a poll                  tokens minted
//!   Pending ───────────▶ Approved ─────────▶ Redeeming ─────────────────▶ Redeemed
//!      │                    ▲                  │
//!      │                    └──────────────────┘
//!      │              issuer failed, or the lease ended
//!      └──── deny ─────▶ Denied
//! ```
//!
//! `Redeeming` is a lease: the poll that won the approval holds it while the
//! host's issuer mints tokens. If the issuer fails, the approval is released at
//! once; if the poll is abandoned, the lease runs out and the device's next
//! poll takes the approval again. So an issuer failure never costs the person
//! their approval, and `Redeemed` (hence a replay) means tokens were issued.
//!
//! Every transition is a pure function from one [`DeviceAuthorization`] to the
//! next, which carries `version + 1`; a store writes it only if the stored record
//! still has the old version, so every transition is a compare-and-set. Expiry is
//! not a state: it is derived from the clock (`now >= expires_at`), so an expired
//! request needs no write to become expired. The user code dies when the request
//! leaves `Pending`: stores drop it from their user-code index then.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::host::issuer::ApprovalData;
use crate::protocol::authorization_details::AuthorizationDetails;
use crate::protocol::client::ClientId;
use crate::protocol::device_code::DeviceCodeHash;
use crate::protocol::dpop::JwkThumbprint;
use crate::protocol::pkce::CodeChallenge;
use crate::protocol::polling::{Interval, Pace, PollingRules};
use crate::protocol::scope::ScopeSet;
use crate::protocol::user_code::UserCodeHash;

/// A non-secret identifier of one device authorization, for audit events, for
/// correlating tokens with the grant they came from, and for revocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AuthorizationId(pub(crate) [u8; 16]);

impl AuthorizationId {
    /// The identifier with these bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The identifier's bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// A random identifier.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        Self(bytes)
    }

    /// Parses the 32-character hex form.
    pub fn parse(hex: &str) -> Option<Self> {
        if hex.len() != 32 || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl std::fmt::Display for AuthorizationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::protocol::hex(&self.0))
    }
}

impl std::fmt::Debug for AuthorizationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthorizationId({self})")
    }
}

impl serde::Serialize for AuthorizationId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for AuthorizationId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom("expected 32 hex digits"))
    }
}

/// What the host knows of the device's HTTP request, shown to the person at
/// consent so that they can tell their own device from a phisher's (RFC 8628 §5.4).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestContext {
    /// The device's network address as the host sees it.
    pub ip: Option<IpAddr>,
    /// The device's `User-Agent`.
    pub user_agent: Option<String>,
    /// Anything else the host wants shown at consent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

/// The immutable part of a request, fixed when the device asks for codes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestDetails {
    /// The client that asked.
    pub client_id: ClientId,
    /// The scopes it asked for (or its defaults).
    pub scopes: ScopeSet,
    /// When it asked.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the codes expire.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The device's request context.
    pub context: RequestContext,
    /// The PKCE code challenge the device sent (RFC 7636), if any: every token
    /// request for this request's device code must then carry its
    /// `code_verifier`. Stored only when present, so records without one keep
    /// the exact shape they had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<CodeChallenge>,
    /// The `authorization_details` the device asked for (RFC 9396), if any,
    /// as the host's registered types accepted them. Stored only when
    /// present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<AuthorizationDetails>,
    /// The DPoP key the device code is bound to (RFC 9449), if the device
    /// sent a proof with its request and the host binds device codes
    /// ([`DpopConfig::bind_device_codes`](crate::DpopConfig::bind_device_codes)):
    /// every token request for this device code must then carry a proof of
    /// that key. Stored only when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<JwkThumbprint>,
}

/// The person the request was approved for: the host's stable user identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Subject(String);

impl Subject {
    /// Wraps an identifier.
    pub fn new(sub: impl Into<String>) -> Self {
        Self(sub.into())
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A person's approval of a request. `Debug` redacts the host's `data`.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Approval {
    /// Who approved.
    pub subject: Subject,
    /// The scopes granted: a subset of those requested.
    pub scopes: ScopeSet,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub approved_at: OffsetDateTime,
    /// Anything the host attaches for its token issuer (authentication time, ACR…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<ApprovalData>,
    /// The `authorization_details` granted (RFC 9396): within those
    /// requested. Stored only when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<AuthorizationDetails>,
}

impl std::fmt::Debug for Approval {
    // `data` is the host's, for its token issuer: it may hold secrets the crate
    // cannot recognize (an upstream token, a session id).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        struct Redacted;
        impl std::fmt::Debug for Redacted {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("[redacted]")
            }
        }
        f.debug_struct("Approval")
            .field("subject", &self.subject)
            .field("scopes", &self.scopes)
            .field("approved_at", &self.approved_at)
            .field("data", &self.data.as_ref().map(|_| Redacted))
            .field("authorization_details", &self.authorization_details)
            .finish()
    }
}

/// Where a request stands.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Waiting for the person.
    Pending,
    /// Approved; the next poll redeems it.
    Approved {
        /// The approval.
        approval: Arc<Approval>,
    },
    /// Denied; polls get `access_denied` until expiry.
    Denied {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// A poll won the approval and the host's issuer is minting its tokens,
    /// until `lease_until`; then the approval is free again.
    Redeeming {
        /// The approval being redeemed.
        approval: Arc<Approval>,
        /// When a poll that never finished stops holding the approval.
        #[serde(with = "time::serde::rfc3339")]
        lease_until: OffsetDateTime,
    },
    /// Tokens were issued; any later poll is a replay.
    Redeemed {
        /// The approval the tokens were minted from.
        approval: Arc<Approval>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

impl Status {
    /// Whether the request is still waiting for the person.
    pub fn is_pending(&self) -> bool {
        matches!(self, Self::Pending)
    }

    /// The approval, once approved (also while and after it is redeemed).
    pub fn approval(&self) -> Option<&Arc<Approval>> {
        match self {
            Self::Approved { approval }
            | Self::Redeeming { approval, .. }
            | Self::Redeemed { approval, .. } => Some(approval),
            Self::Pending | Self::Denied { .. } => None,
        }
    }
}

/// One device authorization as stored: hashes of its codes, the request, its
/// status and its polling state. Holds no secret.
///
/// # Serialized format
///
/// A store may keep the record as its serde serialization (the crate's Redis
/// and PostgreSQL adapters keep its JSON). That format is versioned: the
/// record carries `"v": 1` ([`DeviceAuthorization::FORMAT_VERSION`]), and
/// format 1 is stable across every 1.x release of the crate:
///
/// - every 1.x reads every record any 1.x wrote, so records survive upgrades
///   and instances of different 1.x releases can share one store;
/// - a record without `v` (written before the field existed) reads as format 1;
/// - a 1.x release may add fields only if they are optional, and readers
///   ignore fields they do not know; a change that an older 1.x could misread
///   (a new status, a field changing meaning) needs a new format version;
/// - a record of a format this release does not know (`v` other than 1) is
///   refused as a deserialization error (from the adapters,
///   [`BackendError::Corrupt`](crate::BackendError::Corrupt)) rather than
///   misread.
///
/// In JSON, an approved record with request context and approval data reads:
///
/// ```json
/// {
///   "v": 1,
///   "id": "0102030405060708090a0b0c0d0e0f10",
///   "device_code_hash": "<SHA-256 of the device code: 43 characters of unpadded base64url>",
///   "user_code_hash": "<HMAC-SHA-256 of the user code: 43 characters of unpadded base64url>",
///   "request": {
///     "client_id": "tv-app",
///     "scopes": "openid profile",
///     "created_at": "2025-01-02T03:04:05Z",
///     "expires_at": "2025-01-02T03:14:05Z",
///     "context": {"ip": "192.0.2.7", "user_agent": "TV/1.0", "extra": {"room": "den"}}
///   },
///   "status": "approved",
///   "approval": {
///     "subject": "alice",
///     "scopes": "openid",
///     "approved_at": "2025-01-02T03:05:00.25Z",
///     "data": {"acr": "mfa"}
///   },
///   "interval": 5,
///   "last_poll": "2025-01-02T03:04:30Z",
///   "purge_at": "2025-01-02T03:19:05Z",
///   "version": 3
/// }
/// ```
///
/// `status` is one of `pending`, `approved` (with `approval`), `denied` (with
/// `at`), `redeeming` (with `approval` and `lease_until`) and `redeemed` (with
/// `approval` and `at`); times are RFC 3339; `last_poll` is `null` before the
/// first poll; `extra` and `data` are left out when empty. A request made with
/// a PKCE code challenge (RFC 7636) also has `"code_challenge": {"method":
/// "S256", "value": "<43 characters of unpadded base64url>"}` in `request`;
/// the member is absent otherwise, so records without one are unchanged. A
/// challenge of a method a release does not know is refused, never read as a
/// request without PKCE. Likewise, a request with `authorization_details`
/// (RFC 9396) has them in `request` (and the granted ones in `approval`), and
/// a device code bound to a DPoP key has `"dpop_jkt": "<43 characters of
/// unpadded base64url>"` in `request`; both are absent otherwise. The files
/// `tests/fixtures/record-v1-*.json` of the crate's repository hold one
/// record of each status and one with each optional member, and every 1.x
/// release is tested to read them exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceAuthorization {
    /// The non-secret identifier.
    pub id: AuthorizationId,
    /// SHA-256 of the device code: the primary key.
    pub device_code_hash: DeviceCodeHash,
    /// Keyed hash of the user code: the key of the user-code index while pending.
    pub user_code_hash: UserCodeHash,
    /// The immutable request.
    pub request: Arc<RequestDetails>,
    /// The status.
    pub status: Status,
    /// The current polling interval (grows on `slow_down`).
    pub interval: Interval,
    /// The time of the last poll answered normally.
    pub last_poll: Option<OffsetDateTime>,
    /// A store may delete the record from this time on. Later than `expires_at`,
    /// so that late polls still get `expired_token` and replays are recognized.
    pub purge_at: OffsetDateTime,
    /// Incremented by every transition; the compare-and-set token.
    pub version: u64,
}

/// The serialized form of [`DeviceAuthorization`]: its fields borrowed, after
/// the format version.
#[derive(serde::Serialize)]
struct RecordOut<'a> {
    v: u32,
    id: &'a AuthorizationId,
    device_code_hash: &'a DeviceCodeHash,
    user_code_hash: &'a UserCodeHash,
    request: &'a RequestDetails,
    #[serde(flatten)]
    status: &'a Status,
    interval: Interval,
    #[serde(with = "time::serde::rfc3339::option")]
    last_poll: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    purge_at: OffsetDateTime,
    version: u64,
}

/// What a reader accepts: format 1, with `v` optional because records written
/// before it existed lack it.
#[derive(serde::Deserialize)]
struct RecordIn {
    #[serde(default = "format_one")]
    v: u32,
    id: AuthorizationId,
    device_code_hash: DeviceCodeHash,
    user_code_hash: UserCodeHash,
    request: Arc<RequestDetails>,
    #[serde(flatten)]
    status: Status,
    interval: Interval,
    #[serde(with = "time::serde::rfc3339::option")]
    last_poll: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    purge_at: OffsetDateTime,
    version: u64,
}

fn format_one() -> u32 {
    1
}

impl serde::Serialize for DeviceAuthorization {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let out = RecordOut {
            v: Self::FORMAT_VERSION,
            id: &self.id,
            device_code_hash: &self.device_code_hash,
            user_code_hash: &self.user_code_hash,
            request: &self.request,
            status: &self.status,
            interval: self.interval,
            last_poll: self.last_poll,
            purge_at: self.purge_at,
            version: self.version,
        };
        serde::Serialize::serialize(&out, s)
    }
}

impl<'de> serde::Deserialize<'de> for DeviceAuthorization {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = <RecordIn as serde::Deserialize>::deserialize(d)?;
        if r.v != Self::FORMAT_VERSION {
            // Misreading a record of another format could resurrect a spent
            // approval; refusing it is an error the host sees.
            return Err(serde::de::Error::custom(format_args!(
                "record format version {} is not {} (the one this release reads)",
                r.v,
                Self::FORMAT_VERSION
            )));
        }
        Ok(Self {
            id: r.id,
            device_code_hash: r.device_code_hash,
            user_code_hash: r.user_code_hash,
            request: r.request,
            status: r.status,
            interval: r.interval,
            last_poll: r.last_poll,
            purge_at: r.purge_at,
            version: r.version,
        })
    }
}

/// Why a transition was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TransitionError {
    /// The request is no longer pending.
    #[error("the request is no longer pending")]
    NotPending,
    /// The request is not being redeemed.
    #[error("the request is not being redeemed")]
    NotRedeeming,
    /// The request has expired.
    #[error("the request has expired")]
    Expired,
    /// The approval grants a scope that was not requested.
    #[error("the approval grants a scope that was not requested")]
    ScopeNotRequested,
}

/// What a poll of the token endpoint comes to.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PollOutcome {
    /// `authorization_pending`.
    Pending,
    /// `slow_down`; the interval grew to the value given.
    SlowDown(Interval),
    /// `access_denied`.
    Denied,
    /// `expired_token`.
    Expired,
    /// This poll takes the approval (the record moves to `Redeeming`): mint
    /// tokens from it, then write [`DeviceAuthorization::redeemed`], or
    /// [`DeviceAuthorization::release_redemption`] if nothing was minted.
    Redeem(Arc<Approval>),
    /// `invalid_grant`: the code was redeemed before; a replay.
    Replay,
}

/// The result of [`DeviceAuthorization::poll`]: the outcome, and the record to
/// write (compare-and-set) before answering, if the poll changes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Poll {
    /// The outcome.
    pub outcome: PollOutcome,
    /// The next record, if the poll changes state.
    pub next: Option<DeviceAuthorization>,
}

impl DeviceAuthorization {
    /// The serialized format this release writes (as `"v"`) and reads; see
    /// [the format](DeviceAuthorization#serialized-format).
    pub const FORMAT_VERSION: u32 = 1;

    /// A fresh pending request, version 0. It may be purged `retention` after it expires.
    pub fn new(
        id: AuthorizationId,
        device_code_hash: DeviceCodeHash,
        user_code_hash: UserCodeHash,
        request: RequestDetails,
        interval: Interval,
        retention: Duration,
    ) -> Self {
        Self {
            id,
            device_code_hash,
            user_code_hash,
            purge_at: request.expires_at + retention,
            request: Arc::new(request),
            status: Status::Pending,
            interval,
            last_poll: None,
            version: 0,
        }
    }

    /// Whether the codes have expired: `now >= expires_at`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.request.expires_at
    }

    /// Whether the request is pending and unexpired: the only state in which the
    /// user code is alive and the person can act on it.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.status.is_pending() && !self.is_expired(now)
    }

    fn successor(&self) -> Self {
        let mut next = self.clone();
        next.version = self.version + 1;
        next
    }

    fn check_live(&self, now: OffsetDateTime) -> Result<(), TransitionError> {
        if !self.status.is_pending() {
            Err(TransitionError::NotPending)
        } else if self.is_expired(now) {
            Err(TransitionError::Expired)
        } else {
            Ok(())
        }
    }

    /// Pending → Approved, for a live request and scopes within those requested.
    pub(crate) fn approve(
        &self,
        approval: Approval,
        now: OffsetDateTime,
    ) -> Result<Self, TransitionError> {
        self.check_live(now)?;
        if !approval.scopes.is_subset(&self.request.scopes) {
            return Err(TransitionError::ScopeNotRequested);
        }
        let mut next = self.successor();
        next.status = Status::Approved {
            approval: Arc::new(approval),
        };
        Ok(next)
    }

    /// Pending → Denied, for a live request.
    pub(crate) fn deny(&self, now: OffsetDateTime) -> Result<Self, TransitionError> {
        self.check_live(now)?;
        let mut next = self.successor();
        next.status = Status::Denied { at: now };
        Ok(next)
    }

    /// Pending, Approved or Redeeming → Denied, for a live request: the
    /// client was withdrawn from the grant, or the host's policy refused at
    /// redemption. Every later poll gets `access_denied`, with no path to
    /// tokens.
    pub(crate) fn withdraw(&self, now: OffsetDateTime) -> Result<Self, TransitionError> {
        if self.is_expired(now) {
            return Err(TransitionError::Expired);
        }
        match self.status {
            Status::Pending | Status::Approved { .. } | Status::Redeeming { .. } => {
                let mut next = self.successor();
                next.status = Status::Denied { at: now };
                Ok(next)
            }
            _ => Err(TransitionError::NotPending),
        }
    }

    /// Redeeming → Redeemed: the issuer minted the tokens. Expiry does not
    /// matter any more: the tokens exist.
    pub(crate) fn redeemed(&self, now: OffsetDateTime) -> Result<Self, TransitionError> {
        let Status::Redeeming { approval, .. } = &self.status else {
            return Err(TransitionError::NotRedeeming);
        };
        let mut next = self.successor();
        next.status = Status::Redeemed {
            approval: approval.clone(),
            at: now,
        };
        Ok(next)
    }

    /// Redeeming → Approved: the issuer minted nothing, so the approval is free
    /// for the device's next poll.
    pub(crate) fn release_redemption(&self) -> Result<Self, TransitionError> {
        let Status::Redeeming { approval, .. } = &self.status else {
            return Err(TransitionError::NotRedeeming);
        };
        let mut next = self.successor();
        next.status = Status::Approved {
            approval: approval.clone(),
        };
        Ok(next)
    }

    /// A poll of the token endpoint at `now`.
    ///
    /// Order matters: a replay is recognized even after expiry; expiry beats every
    /// other state; an approved request is redeemed whatever the pace (it moves
    /// to `Redeeming`, leased for [`PollingRules::redeem_lease`]); a request
    /// being redeemed answers `authorization_pending` until its lease ends, and
    /// is redeemed again after; only a pending request is subject to the pace
    /// rules.
    pub(crate) fn poll(&self, now: OffsetDateTime, rules: &PollingRules) -> Poll {
        let outcome_only = |outcome| Poll {
            outcome,
            next: None,
        };
        match &self.status {
            Status::Redeemed { .. } => outcome_only(PollOutcome::Replay),
            _ if self.is_expired(now) => outcome_only(PollOutcome::Expired),
            Status::Denied { .. } => outcome_only(PollOutcome::Denied),
            Status::Redeeming { lease_until, .. } if now < *lease_until => {
                outcome_only(PollOutcome::Pending)
            }
            Status::Approved { approval } | Status::Redeeming { approval, .. } => {
                let mut next = self.successor();
                next.status = Status::Redeeming {
                    approval: approval.clone(),
                    lease_until: now + rules.redeem_lease,
                };
                Poll {
                    outcome: PollOutcome::Redeem(approval.clone()),
                    next: Some(next),
                }
            }
            Status::Pending => match rules.pace(self.interval, self.last_poll, now) {
                Pace::OnTime => {
                    let mut next = self.successor();
                    next.last_poll = Some(now);
                    Poll {
                        outcome: PollOutcome::Pending,
                        next: Some(next),
                    }
                }
                // At the cap the interval no longer grows: nothing to write.
                Pace::TooEarly { slowed } if slowed == self.interval => {
                    outcome_only(PollOutcome::SlowDown(slowed))
                }
                Pace::TooEarly { slowed } => {
                    let mut next = self.successor();
                    next.interval = slowed;
                    Poll {
                        outcome: PollOutcome::SlowDown(slowed),
                        next: Some(next),
                    }
                }
            },
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(secs)
    }

    pub(crate) fn pending(scopes: &str) -> DeviceAuthorization {
        DeviceAuthorization::new(
            AuthorizationId([7; 16]),
            DeviceCodeHash([1; 32]),
            UserCodeHash([2; 32]),
            RequestDetails {
                client_id: ClientId::new("tv"),
                scopes: ScopeSet::parse(scopes).unwrap(),
                created_at: at(0),
                expires_at: at(600),
                context: RequestContext::default(),
                code_challenge: None,
                authorization_details: None,
                dpop_jkt: None,
            },
            Interval::DEFAULT,
            Duration::seconds(300),
        )
    }

    pub(crate) fn approval(scopes: &str) -> Approval {
        Approval {
            subject: Subject::new("alice"),
            scopes: ScopeSet::parse(scopes).unwrap(),
            approved_at: at(10),
            data: None,
            authorization_details: None,
        }
    }

    #[test]
    fn approve_only_live_pending_and_within_scopes() {
        let p = pending("openid profile");
        let a = p.approve(approval("openid"), at(10)).unwrap();
        assert_eq!(a.version, 1);
        assert!(matches!(a.status, Status::Approved { .. }));
        assert_eq!(
            p.approve(approval("email"), at(10)),
            Err(TransitionError::ScopeNotRequested)
        );
        assert_eq!(
            p.approve(approval(""), at(600)),
            Err(TransitionError::Expired)
        );
        assert!(p.approve(approval(""), at(599)).is_ok());
        assert_eq!(
            a.approve(approval(""), at(11)),
            Err(TransitionError::NotPending)
        );
        assert_eq!(a.deny(at(11)), Err(TransitionError::NotPending));
        let d = p.deny(at(10)).unwrap();
        assert_eq!(d.deny(at(11)), Err(TransitionError::NotPending));
        assert_eq!(
            d.approve(approval(""), at(11)),
            Err(TransitionError::NotPending)
        );
        assert_eq!(p.deny(at(600)), Err(TransitionError::Expired));
    }

    #[test]
    fn every_poll_outcome() {
        let rules = PollingRules::default();
        let p = pending("");
        // First poll: pending, remembered.
        let first = p.poll(at(0), &rules);
        assert_eq!(first.outcome, PollOutcome::Pending);
        let p1 = first.next.unwrap();
        assert_eq!(p1.last_poll, Some(at(0)));
        // Too early: slow_down, interval persisted, last normal poll unchanged.
        let slow = p1.poll(at(2), &rules);
        assert_eq!(
            slow.outcome,
            PollOutcome::SlowDown(Interval::from_secs(10).unwrap())
        );
        let p2 = slow.next.unwrap();
        assert_eq!(p2.last_poll, Some(at(0)));
        // After the old interval but before old + 5 s: still slow_down.
        assert!(matches!(
            p2.poll(at(7), &rules).outcome,
            PollOutcome::SlowDown(_)
        ));
        assert_eq!(p2.poll(at(10), &rules).outcome, PollOutcome::Pending);
        // Approved: taken for redemption whatever the pace, under a lease.
        let a = p2.approve(approval(""), at(3)).unwrap();
        let r = a.poll(at(3), &rules);
        assert!(matches!(r.outcome, PollOutcome::Redeem(_)));
        let redeeming = r.next.unwrap();
        assert!(matches!(
            redeeming.status,
            Status::Redeeming { lease_until, .. } if lease_until == at(33)
        ));
        // While leased, other polls wait; once the lease ends, the approval is
        // taken again (the first poll was abandoned).
        assert_eq!(redeeming.poll(at(32), &rules).outcome, PollOutcome::Pending);
        assert!(redeeming.poll(at(32), &rules).next.is_none());
        let retaken = redeeming.poll(at(33), &rules);
        assert!(matches!(retaken.outcome, PollOutcome::Redeem(_)));
        assert_eq!(retaken.next.unwrap().version, redeeming.version + 1);
        // The issuer failed: the approval is free again for the next poll.
        let released = redeeming.release_redemption().unwrap();
        assert_eq!(released.status, a.status);
        assert!(matches!(
            released.poll(at(5), &rules).outcome,
            PollOutcome::Redeem(_)
        ));
        assert_eq!(a.redeemed(at(5)), Err(TransitionError::NotRedeeming));
        assert_eq!(a.release_redemption(), Err(TransitionError::NotRedeeming));
        // Tokens minted: every later poll is a replay, even past expiry.
        let redeemed = redeeming.redeemed(at(4)).unwrap();
        assert_eq!(redeemed.poll(at(4), &rules).outcome, PollOutcome::Replay);
        assert_eq!(redeemed.poll(at(4000), &rules).outcome, PollOutcome::Replay);
        assert!(redeemed.poll(at(4), &rules).next.is_none());
        // Denied: sticky until expiry, then expired.
        let d = p.deny(at(5)).unwrap();
        assert_eq!(d.poll(at(6), &rules).outcome, PollOutcome::Denied);
        assert_eq!(d.poll(at(599), &rules).outcome, PollOutcome::Denied);
        assert_eq!(d.poll(at(600), &rules).outcome, PollOutcome::Expired);
        // Expiry at the exact boundary, even when approved.
        assert_eq!(p.poll(at(599), &rules).outcome, PollOutcome::Pending);
        assert_eq!(p.poll(at(600), &rules).outcome, PollOutcome::Expired);
        assert_eq!(a.poll(at(600), &rules).outcome, PollOutcome::Expired);
    }

    #[test]
    fn records_round_trip_through_json_without_secrets() {
        let a = pending("openid")
            .approve(approval("openid"), at(1))
            .unwrap();
        let json = serde_json::to_string(&a).unwrap();
        let back: DeviceAuthorization = serde_json::from_str(&json).unwrap();
        assert_eq!(a, back);
        assert_eq!(AuthorizationId::parse(&a.id.to_string()), Some(a.id));
        assert_eq!(AuthorizationId::parse("zz"), None);
    }
}
