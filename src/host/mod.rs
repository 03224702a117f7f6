//! The traits a host server implements: storage, client registry, token issuer,
//! attempt limiter, clock and audit events. All are object-safe and used as
//! `Arc<dyn …>`; the crate ships in-memory implementations of each except the
//! token issuer.

pub(crate) mod clients;
pub(crate) mod clock;
pub(crate) mod consent;
#[cfg(feature = "dpop")]
pub(crate) mod dpop_replay;
pub(crate) mod events;
pub(crate) mod issuer;
pub(crate) mod limiter;
pub(crate) mod store;
