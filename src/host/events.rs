//! Audit events. An event never carries a secret: no code, no token, no secret.

use std::sync::Mutex;

use crate::host::limiter::{BudgetKind, KeyDigest};
use crate::protocol::authorization::{AuthorizationId, Subject};
use crate::protocol::client::ClientId;
use crate::protocol::pkce::CodeVerifierError;
use crate::protocol::polling::Interval;

/// Something that happened to a device authorization.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A device asked for codes.
    Created {
        /// The authorization.
        id: AuthorizationId,
        /// The client.
        client_id: ClientId,
    },
    /// A person approved.
    Approved {
        /// The authorization.
        id: AuthorizationId,
        /// The client.
        client_id: ClientId,
        /// Who approved.
        subject: Subject,
    },
    /// A person denied.
    Denied {
        /// The authorization.
        id: AuthorizationId,
        /// The client.
        client_id: ClientId,
    },
    /// The device redeemed its code: the issuer returned tokens and they were
    /// delivered.
    Redeemed {
        /// The authorization.
        id: AuthorizationId,
        /// The client.
        client_id: ClientId,
        /// Whose tokens.
        subject: Subject,
    },
    /// A poll came too early; the interval grew.
    SlowDown {
        /// The authorization.
        id: AuthorizationId,
        /// The client.
        client_id: ClientId,
        /// The interval from now on.
        interval: Interval,
    },
    /// A device code whose tokens were issued was presented again. The host
    /// should revoke the tokens issued for `id`: the code may have been stolen.
    Replay {
        /// The authorization.
        id: AuthorizationId,
        /// The client.
        client_id: ClientId,
    },
    /// A token request presented a device code without the right PKCE
    /// `code_verifier` (missing, wrong, or sent for a request made without a
    /// challenge) and was refused; the request did not change. Someone other
    /// than the device may hold the device code: worth an alert.
    VerifierRefused {
        /// The authorization.
        id: AuthorizationId,
        /// The client.
        client_id: ClientId,
        /// What was wrong with the verifier.
        reason: CodeVerifierError,
    },
    /// A budget was spent out and refused a request. Carries the budget and a
    /// keyed digest of its key, never the key itself (an address, a session).
    /// [`BudgetKind::WrongCodesAnonymous`] means code entry moved to the
    /// signed-in mode until its window ends.
    LimiterTripped {
        /// Which budget.
        budget: BudgetKind,
        /// The keyed digest of the key it is counted under.
        key: KeyDigest,
    },
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
        match event {
            Event::Replay { id, client_id } => {
                tracing::warn!(target: "device_grant", %id, %client_id, "device code replayed")
            }
            Event::VerifierRefused {
                id,
                client_id,
                reason,
            } => {
                tracing::warn!(target: "device_grant", %id, %client_id, %reason, "code verifier refused")
            }
            Event::LimiterTripped { budget, key } => {
                tracing::warn!(target: "device_grant", %budget, key_digest = %key, "budget spent out")
            }
            other => tracing::info!(target: "device_grant", event = ?other, "device grant event"),
        }
    }
}
