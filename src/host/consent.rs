//! The host's policy at each step of the grant (initiation, approval,
//! redemption), and the consent-time checks against device-code phishing
//! (RFC 8628 §5.4, RFC 10027): how near the approver is to the device, how old
//! the request is.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::protocol::authorization::{RequestContext, Subject};
use crate::protocol::client::{Client, ClientId};
use crate::protocol::proximity::Proximity;
use crate::protocol::scope::ScopeSet;

/// A policy's answer at one step of the grant ([`ConsentPolicy::decide`]).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentDecision {
    /// Go on.
    Allow,
    /// Ask the person for more before approving: re-authentication, a second
    /// factor, or an explicit "I am not being asked to do this by someone
    /// else" confirmation. Only meaningful at [`PolicyStep::Approval`], where a
    /// person is present; at the other steps it counts as [`ConsentDecision::Refuse`].
    StepUp,
    /// Refuse this step: `unauthorized_client` at initiation, no approval at
    /// approval ([`VerificationError::Refused`](crate::VerificationError::Refused)),
    /// `access_denied` at redemption (and the request is denied for good).
    Refuse,
}

impl ConsentDecision {
    /// A stable name for logs: `allow`, `step_up`, `refuse`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::StepUp => "step_up",
            Self::Refuse => "refuse",
        }
    }
}

impl std::fmt::Display for ConsentDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The step of the grant a policy is asked about.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyStep {
    /// The device asks for codes (the device authorization request, RFC 8628
    /// §3.1), after client authentication and the scope checks.
    Initiation,
    /// A person approves ([`DeviceGrant::approve`](crate::DeviceGrant::approve)),
    /// and the consent page asks ([`DeviceGrant::assess`](crate::DeviceGrant::assess)).
    Approval,
    /// The device redeems an approved code (the token request, RFC 8628 §3.4),
    /// before any token is minted.
    Redemption,
}

impl PolicyStep {
    /// A stable name for logs: `initiation`, `approval`, `redemption`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Initiation => "initiation",
            Self::Approval => "approval",
            Self::Redemption => "redemption",
        }
    }
}

impl std::fmt::Display for PolicyStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a policy decides on at one step. Holds no secret.
#[non_exhaustive]
#[derive(Debug, Clone, Copy)]
pub struct PolicyCheck<'a> {
    /// Which step.
    pub step: PolicyStep,
    /// The client's registration, as the registry returns it now.
    pub client: &'a Client,
    /// At initiation, the scopes the device asked for (or its defaults); at
    /// approval, the scopes the person is about to grant; at redemption, the
    /// scopes they granted.
    pub scopes: &'a ScopeSet,
    /// What the host knew of the device's request when it asked (its address,
    /// user agent).
    pub device: &'a RequestContext,
    /// At approval: proximity, age, the approver's address. `None` at the
    /// other steps.
    pub consent: Option<ConsentSignals>,
    /// At approval and redemption: who approves or approved, when known
    /// ([`DeviceGrant::assess`](crate::DeviceGrant::assess) does not know it).
    pub subject: Option<&'a Subject>,
}

/// A policy's decision as the crate applied it, in the audit
/// [`Event`](crate::Event)s of the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicyVerdict {
    /// The step decided on.
    pub step: PolicyStep,
    /// What the policy decided.
    pub decision: ConsentDecision,
    /// Whether the crate acted on it: `false` in [`PolicyMode::ReportOnly`],
    /// where a step the policy refuses goes on all the same.
    pub enforced: bool,
}

/// Whether the crate acts on the policy's decisions.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PolicyMode {
    /// Refuse what the policy refuses, ask for the step-ups it asks for. The
    /// default.
    #[default]
    Enforce,
    /// Compute every decision and report it in the step's audit event
    /// ([`PolicyVerdict::enforced`] `false`), but let every step go on as if
    /// the policy allowed it: for trying a stricter policy on live traffic
    /// before enforcing it. The client's registration
    /// ([`Client::device_grant`], [`Client::device_scopes`]) is enforced in
    /// either mode: it is not the policy's to waive.
    ReportOnly,
}

/// The host's policy at every step of the grant: initiation, approval and
/// redemption, per client.
///
/// # Contract
///
/// - [`ConsentPolicy::decide`] is called inline, on every device authorization
///   request, on every [`DeviceGrant::assess`](crate::DeviceGrant::assess) and
///   [`DeviceGrant::approve`](crate::DeviceGrant::approve) (once per
///   compare-and-set round), and on every token request that would redeem an
///   approved code. It must not block or do I/O: decide on what the check
///   holds and on what the policy holds in memory.
/// - It is called after the crate's own checks of the step (client
///   authentication, [`Client::device_grant`], the scope ceiling
///   [`Client::device_scopes`], PKCE): it can refuse more, never allow more.
/// - Per step: [`ConsentDecision::Refuse`] at [`PolicyStep::Initiation`] is
///   `unauthorized_client`, and nothing is stored; at [`PolicyStep::Approval`]
///   it is [`VerificationError::Refused`](crate::VerificationError::Refused)
///   and nothing changes (the person can still deny); at
///   [`PolicyStep::Redemption`] it is `access_denied`, the request is marked
///   denied so that every later poll gets `access_denied` too, and no token
///   is minted. [`ConsentDecision::StepUp`] asks for a [`StepUpProof`] at
///   approval and counts as `Refuse` at the other steps.
/// - In [`PolicyMode::ReportOnly`] the decision is reported in the step's
///   audit event and not acted upon.
///
/// The default methods' answers are [`AllowAll`]'s. The ready policies are
/// [`AllowAll`], [`NetworkPolicy`] (proximity and age, at approval) and
/// [`PerClient`] (a policy per client).
pub trait ConsentPolicy: Send + Sync {
    /// Decides one step.
    fn decide(&self, check: &PolicyCheck<'_>) -> ConsentDecision;
}

/// Proof that the person re-authenticated for a step-up: who, and when. Pass
/// it to [`Approve::stepped_up`](crate::Approve::stepped_up) when the consent
/// policy asks for a step-up ([`ConsentDecision::StepUp`]).
///
/// Build it only in the host's re-authentication code, right after the
/// person proved who they are (their password again, a second factor), with
/// the time they did. It cannot be parsed or deserialized, so no form field
/// can stand in for it:
///
/// ```compile_fail
/// // A proof from the request's form: does not compile.
/// let proof: device_grant::StepUpProof = serde_json::from_str(r#"{"subject":"alice"}"#).unwrap();
/// ```
///
/// [`DeviceGrant::approve`](crate::DeviceGrant::approve) accepts it only for the
/// approving subject and only if the re-authentication happened after the
/// device asked (and not in the future): an earlier sign-in says nothing about
/// this request.
#[derive(Debug)]
pub struct StepUpProof {
    subject: Subject,
    at: OffsetDateTime,
}

impl StepUpProof {
    /// `subject` re-authenticated at `at`.
    pub fn reauthenticated(subject: &Subject, at: OffsetDateTime) -> Self {
        Self {
            subject: subject.clone(),
            at,
        }
    }

    /// Who re-authenticated.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// When.
    pub fn at(&self) -> OffsetDateTime {
        self.at
    }

    /// Whether this proves a step-up by `subject` for a request made at
    /// `asked_at`, at `now`.
    pub(crate) fn covers(
        &self,
        subject: &Subject,
        asked_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> bool {
        self.subject == *subject && asked_at <= self.at && self.at <= now
    }
}

/// The signals a consent page shows and a policy decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentSignals {
    /// The approver's network compared with the device's.
    pub proximity: Proximity,
    /// How long ago the device asked. Phishing links are often opened long after
    /// the attacker started the flow; a person at their own device acts within
    /// a minute or two.
    pub age: Duration,
    /// The approver's address, as the host sees it.
    pub approver_ip: Option<IpAddr>,
}

/// Allows every approval; the signals are still computed for the page to show.
/// The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl ConsentPolicy for AllowAll {
    fn decide(&self, _: &PolicyCheck<'_>) -> ConsentDecision {
        ConsentDecision::Allow
    }
}

/// A ready policy on network conditions at approval: a decision for approvals
/// from a different network, from an unknown one, and for requests older than
/// `max_age`; the strictest applies. Allows initiation and redemption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// For [`Proximity::DifferentNetwork`]. Default `StepUp`.
    pub different_network: ConsentDecision,
    /// For [`Proximity::Unknown`]. Default `Allow`.
    pub unknown_network: ConsentDecision,
    /// Requests older than this get `StepUp`. Default 5 minutes.
    pub max_age: Option<Duration>,
}

impl Default for NetworkPolicy {
    fn default() -> Self {
        Self {
            different_network: ConsentDecision::StepUp,
            unknown_network: ConsentDecision::Allow,
            max_age: Some(Duration::minutes(5)),
        }
    }
}

fn strictest(a: ConsentDecision, b: ConsentDecision) -> ConsentDecision {
    use ConsentDecision::*;
    match (a, b) {
        (Refuse, _) | (_, Refuse) => Refuse,
        (StepUp, _) | (_, StepUp) => StepUp,
        _ => Allow,
    }
}

impl NetworkPolicy {
    /// The decision on consent-time signals.
    pub fn decide_signals(&self, signals: &ConsentSignals) -> ConsentDecision {
        let by_network = match signals.proximity {
            Proximity::DifferentNetwork => self.different_network,
            Proximity::Unknown => self.unknown_network,
            _ => ConsentDecision::Allow,
        };
        let by_age = match self.max_age {
            Some(max) if signals.age > max => ConsentDecision::StepUp,
            _ => ConsentDecision::Allow,
        };
        strictest(by_network, by_age)
    }
}

impl ConsentPolicy for NetworkPolicy {
    fn decide(&self, check: &PolicyCheck<'_>) -> ConsentDecision {
        match (check.step, &check.consent) {
            (PolicyStep::Approval, Some(signals)) => self.decide_signals(signals),
            _ => ConsentDecision::Allow,
        }
    }
}

/// A ready policy per client: the policy registered for the check's client,
/// else the fallback.
///
/// ```
/// use std::sync::Arc;
/// use device_grant::{AllowAll, ConsentDecision, NetworkPolicy, PerClient};
///
/// // Refuse approvals from another network for the printer; step-ups for the rest.
/// let policy = PerClient::new(Arc::new(NetworkPolicy::default())).with(
///     "printer",
///     Arc::new(NetworkPolicy { different_network: ConsentDecision::Refuse, ..NetworkPolicy::default() }),
/// );
/// ```
pub struct PerClient {
    fallback: Arc<dyn ConsentPolicy>,
    by_client: HashMap<ClientId, Arc<dyn ConsentPolicy>>,
}

impl std::fmt::Debug for PerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerClient")
            .field("clients", &self.by_client.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl PerClient {
    /// `fallback` for every client not given a policy of its own.
    pub fn new(fallback: Arc<dyn ConsentPolicy>) -> Self {
        Self {
            fallback,
            by_client: HashMap::new(),
        }
    }

    /// `policy` for the client `id`.
    pub fn with(mut self, id: impl Into<String>, policy: Arc<dyn ConsentPolicy>) -> Self {
        self.by_client.insert(ClientId::new(id), policy);
        self
    }
}

impl ConsentPolicy for PerClient {
    fn decide(&self, check: &PolicyCheck<'_>) -> ConsentDecision {
        self.by_client
            .get(&check.client.id)
            .unwrap_or(&self.fallback)
            .decide(check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals(proximity: Proximity, age_secs: i64) -> ConsentSignals {
        ConsentSignals {
            proximity,
            age: Duration::seconds(age_secs),
            approver_ip: None,
        }
    }

    #[test]
    fn network_policy_takes_the_strictest() {
        let p = NetworkPolicy::default();
        assert_eq!(
            p.decide_signals(&signals(Proximity::SameAddress, 30)),
            ConsentDecision::Allow
        );
        assert_eq!(
            p.decide_signals(&signals(Proximity::SameNetwork, 30)),
            ConsentDecision::Allow
        );
        assert_eq!(
            p.decide_signals(&signals(Proximity::DifferentNetwork, 30)),
            ConsentDecision::StepUp
        );
        assert_eq!(
            p.decide_signals(&signals(Proximity::SameAddress, 301)),
            ConsentDecision::StepUp
        );
        let strict = NetworkPolicy {
            different_network: ConsentDecision::Refuse,
            ..p
        };
        assert_eq!(
            strict.decide_signals(&signals(Proximity::DifferentNetwork, 400)),
            ConsentDecision::Refuse
        );
        let client = Client::new("tv", vec![]);
        let device = RequestContext::default();
        let scopes = ScopeSet::new();
        let mut check = PolicyCheck {
            step: PolicyStep::Approval,
            client: &client,
            scopes: &scopes,
            device: &device,
            consent: Some(signals(Proximity::DifferentNetwork, 4000)),
            subject: None,
        };
        assert_eq!(AllowAll.decide(&check), ConsentDecision::Allow);
        assert_eq!(strict.decide(&check), ConsentDecision::Refuse);
        // Network conditions are an approval-time signal only.
        check.step = PolicyStep::Redemption;
        assert_eq!(strict.decide(&check), ConsentDecision::Allow);
        let per_client = PerClient::new(Arc::new(AllowAll)).with("tv", Arc::new(strict));
        check.step = PolicyStep::Approval;
        assert_eq!(per_client.decide(&check), ConsentDecision::Refuse);
        let other = Client::new("radio", vec![]);
        check.client = &other;
        assert_eq!(per_client.decide(&check), ConsentDecision::Allow);
    }
}
