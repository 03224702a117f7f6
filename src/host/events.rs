//! Audit events. An event never carries a secret: no code, no token, no secret.

use std::net::IpAddr;
use std::sync::Mutex;

use time::OffsetDateTime;

use crate::host::consent::{ConsentSignals, PolicyVerdict};
use crate::host::limiter::{BudgetKind, KeyDigest};
use crate::protocol::authorization::{AuthorizationId, RequestDetails, Subject};
use crate::protocol::client::ClientId;
use crate::protocol::pkce::CodeVerifierError;
use crate::protocol::polling::Interval;
use crate::protocol::proximity::Proximity;

/// What happened, and the facts only that kind of event has.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A device asked for codes and got them.
    Created,
    /// A person approved.
    Approved,
    /// A person denied.
    Denied,
    /// The device redeemed its code: the issuer returned tokens and they were
    /// delivered.
    Redeemed,
    /// The crate refused a step on the policy's decision or the client's
    /// registration ([`Event::policy`] says which step and what was decided;
    /// at approval, a step-up asked for and not shown). Nothing was stored at
    /// initiation; nothing changed at approval; at redemption the request is
    /// now denied and no token was minted.
    Refused,
    /// A poll came too early; the interval grew.
    SlowDown {
        /// The interval from now on.
        interval: Interval,
    },
    /// A device code whose tokens were issued was presented again. The host
    /// should revoke the tokens issued for [`Event::id`]: the code may have
    /// been stolen.
    Replay,
    /// A token request presented a device code without the right PKCE
    /// `code_verifier` (missing, wrong, or sent for a request made without a
    /// challenge) and was refused; the request did not change. Someone other
    /// than the device may hold the device code: worth an alert.
    VerifierRefused {
        /// What was wrong with the verifier.
        reason: CodeVerifierError,
    },
    /// A budget was spent out and refused a request. Carries the budget and a
    /// keyed digest of its key, never the key itself (an address, a session).
    /// [`BudgetKind::WrongCodesAnonymous`] means code entry moved to the
    /// signed-in mode until its window ends. Names no request: a wrong code
    /// names none, and a refused device authorization never got one.
    LimiterTripped {
        /// Which budget.
        budget: BudgetKind,
        /// The keyed digest of the key it is counted under.
        key: KeyDigest,
    },
}

impl EventKind {
    /// A stable name for logs: `created`, `approved`, `denied`, `redeemed`,
    /// `refused`, `slow_down`, `replay`, `verifier_refused`, `limiter_tripped`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Redeemed => "redeemed",
            Self::Refused => "refused",
            Self::SlowDown { .. } => "slow_down",
            Self::Replay => "replay",
            Self::VerifierRefused { .. } => "verifier_refused",
            Self::LimiterTripped { .. } => "limiter_tripped",
        }
    }
}

/// Something that happened to a device authorization, with what a security
/// team correlates it by: the request, the client, the device's context, the
/// approver and the policy's decision. An event never carries a secret: no
/// code, no token, no client secret, no verifier.
///
/// # Serialized form
///
/// `Serialize` writes one flat JSON object whose member names are stable, each
/// present on every event (`null` when unknown):
///
/// | member | value |
/// |---|---|
/// | `at` | RFC 3339 time, from the grant's clock |
/// | `event` | [`EventKind::as_str`] |
/// | `id` | the request's [`AuthorizationId`] (32 hex digits) |
/// | `client_id` | the client |
/// | `device_ip`, `device_user_agent` | the device's request, as the host passed it in [`RequestContext`](crate::RequestContext) |
/// | `approver_ip`, `proximity` | at approval: the approver's address and [`Proximity`] (`same_address`, `same_network`, `different_network`, `unknown`) |
/// | `subject` | who approved (approval, redemption, replay of a redeemed code) |
/// | `policy_step`, `policy_decision`, `policy_enforced` | the policy's decision at this step ([`PolicyVerdict`]) |
/// | `interval` | `slow_down`: the new interval, seconds |
/// | `reason` | `verifier_refused`: what was wrong |
/// | `budget`, `key_digest` | `limiter_tripped`: the budget and the keyed digest of its key |
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When, by the grant's clock.
    pub at: OffsetDateTime,
    /// What happened.
    pub kind: EventKind,
    /// The request; `None` only for [`EventKind::LimiterTripped`].
    pub id: Option<AuthorizationId>,
    /// The client; `None` only for [`EventKind::LimiterTripped`].
    pub client_id: Option<ClientId>,
    /// The device's address, as the host saw it when the device asked.
    pub device_ip: Option<IpAddr>,
    /// The device's `User-Agent`, as the host passed it.
    pub device_user_agent: Option<String>,
    /// The approver's address, at approval.
    pub approver_ip: Option<IpAddr>,
    /// How near the approver was to the device, at approval.
    pub proximity: Option<Proximity>,
    /// Who approved, where there is one.
    pub subject: Option<Subject>,
    /// The policy's decision at this step, where one was made.
    pub policy: Option<PolicyVerdict>,
}

impl Event {
    /// An event about no request (a tripped limiter).
    pub(crate) fn bare(at: OffsetDateTime, kind: EventKind) -> Self {
        Self {
            at,
            kind,
            id: None,
            client_id: None,
            device_ip: None,
            device_user_agent: None,
            approver_ip: None,
            proximity: None,
            subject: None,
            policy: None,
        }
    }

    /// An event about the request `id` of `request`.
    pub(crate) fn about(
        at: OffsetDateTime,
        kind: EventKind,
        id: AuthorizationId,
        request: &RequestDetails,
    ) -> Self {
        Self {
            id: Some(id),
            client_id: Some(request.client_id.clone()),
            device_ip: request.context.ip,
            device_user_agent: request.context.user_agent.clone(),
            ..Self::bare(at, kind)
        }
    }

    pub(crate) fn with_subject(mut self, subject: Option<&Subject>) -> Self {
        self.subject = subject.cloned();
        self
    }

    pub(crate) fn with_policy(mut self, policy: Option<PolicyVerdict>) -> Self {
        self.policy = policy;
        self
    }

    pub(crate) fn with_approver(mut self, signals: &ConsentSignals) -> Self {
        self.approver_ip = signals.approver_ip;
        self.proximity = Some(signals.proximity);
        self
    }
}

impl serde::Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut m = s.serialize_map(None)?;
        let at = self
            .at
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(serde::ser::Error::custom)?;
        m.serialize_entry("at", &at)?;
        m.serialize_entry("event", self.kind.as_str())?;
        m.serialize_entry("id", &self.id.map(|id| id.to_string()))?;
        m.serialize_entry("client_id", &self.client_id)?;
        m.serialize_entry("device_ip", &self.device_ip)?;
        m.serialize_entry("device_user_agent", &self.device_user_agent)?;
        m.serialize_entry("approver_ip", &self.approver_ip)?;
        m.serialize_entry("proximity", &self.proximity)?;
        m.serialize_entry("subject", &self.subject)?;
        m.serialize_entry("policy_step", &self.policy.map(|p| p.step.as_str()))?;
        m.serialize_entry("policy_decision", &self.policy.map(|p| p.decision.as_str()))?;
        m.serialize_entry("policy_enforced", &self.policy.map(|p| p.enforced))?;
        match &self.kind {
            EventKind::SlowDown { interval } => m.serialize_entry("interval", interval)?,
            EventKind::VerifierRefused { reason } => {
                m.serialize_entry("reason", &reason.to_string())?
            }
            EventKind::LimiterTripped { budget, key } => {
                m.serialize_entry("budget", budget.as_str())?;
                m.serialize_entry("key_digest", &key.to_string())?;
            }
            _ => {}
        }
        m.end()
    }
}

/// Receives audit events. Called inline: keep it fast (hand off to a channel for
/// slow sinks).
pub trait EventSink: Send + Sync {
    /// Records an event.
    fn record(&self, event: &Event);
}

/// Drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn record(&self, _: &Event) {}
}

/// Keeps every event in memory, for tests.
#[derive(Debug, Default)]
pub struct RecordedEvents(Mutex<Vec<Event>>);

impl RecordedEvents {
    /// The events so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl EventSink for RecordedEvents {
    fn record(&self, event: &Event) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}

/// Writes events to `tracing` at `info` (replays, refused code verifiers and
/// tripped limiters at `warn`), under the target `device_grant`.
#[cfg(feature = "tracing")]
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingEvents;

#[cfg(feature = "tracing")]
impl EventSink for TracingEvents {
    fn record(&self, event: &Event) {
        let id = event.id.map(|id| id.to_string());
        let client_id = event.client_id.as_ref().map(ClientId::as_str);
        let kind = event.kind.as_str();
        match &event.kind {
            EventKind::Replay => {
                tracing::warn!(target: "device_grant", event = kind, ?id, ?client_id, "device code replayed")
            }
            EventKind::VerifierRefused { reason } => {
                tracing::warn!(target: "device_grant", event = kind, ?id, ?client_id, %reason, "code verifier refused")
            }
            EventKind::LimiterTripped { budget, key } => {
                tracing::warn!(target: "device_grant", event = kind, %budget, key_digest = %key, "budget spent out")
            }
            EventKind::Refused => {
                tracing::warn!(target: "device_grant", event = kind, ?id, ?client_id, policy = ?event.policy, "step refused")
            }
            _ => {
                tracing::info!(target: "device_grant", event = kind, details = ?event, "device grant event")
            }
        }
    }
}
