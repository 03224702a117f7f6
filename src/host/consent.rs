//! Consent-time checks against device-code phishing (RFC 8628 §5.4, the
//! cross-device flow security draft): how near the approver is to the device,
//! how old the request is, and the host's policy on both.

use std::net::IpAddr;

use time::{Duration, OffsetDateTime};

use crate::protocol::authorization::Subject;
use crate::protocol::proximity::Proximity;

/// What the consent page should do.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentDecision {
    /// Show the consent page as usual.
    Allow,
    /// Ask for more before approving: re-authentication, a second factor, or an
    /// explicit "I am not being asked to do this by someone else" confirmation.
    StepUp,
    /// Do not let the person approve.
    Refuse,
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

/// The host's consent policy.
pub trait ConsentPolicy: Send + Sync {
    /// Decides what the consent page does for these signals.
    fn decide(&self, signals: &ConsentSignals) -> ConsentDecision;
}

/// Allows every approval; the signals are still computed for the page to show.
/// The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl ConsentPolicy for AllowAll {
    fn decide(&self, _: &ConsentSignals) -> ConsentDecision {
        ConsentDecision::Allow
    }
}

/// A ready policy: a decision for approvals from a different network, from an
/// unknown one, and for requests older than `max_age`; the strictest applies.
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

impl ConsentPolicy for NetworkPolicy {
    fn decide(&self, signals: &ConsentSignals) -> ConsentDecision {
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
            p.decide(&signals(Proximity::SameAddress, 30)),
            ConsentDecision::Allow
        );
        assert_eq!(
            p.decide(&signals(Proximity::SameNetwork, 30)),
            ConsentDecision::Allow
        );
        assert_eq!(
            p.decide(&signals(Proximity::DifferentNetwork, 30)),
            ConsentDecision::StepUp
        );
        assert_eq!(
            p.decide(&signals(Proximity::SameAddress, 301)),
            ConsentDecision::StepUp
        );
        let strict = NetworkPolicy {
            different_network: ConsentDecision::Refuse,
            ..p
        };
        assert_eq!(
            strict.decide(&signals(Proximity::DifferentNetwork, 400)),
            ConsentDecision::Refuse
        );
        assert_eq!(
            AllowAll.decide(&signals(Proximity::DifferentNetwork, 4000)),
            ConsentDecision::Allow
        );
    }
}
