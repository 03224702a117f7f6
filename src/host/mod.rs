//! The traits a host server implements: storage, client registry, token issuer,
//! attempt limiter, clock and audit events. All are object-safe and used as
//! `Arc<dyn …>`; the crate ships in-memory implementations of each except the
//! token issuer.

pub mod clients;
pub mod clock;
pub mod consent;
pub mod events;
pub mod issuer;
pub mod limiter;
pub mod store;
