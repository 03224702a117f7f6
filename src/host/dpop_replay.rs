//! DPoP proof replay detection (RFC 9449 §11.1): the `jti` of every accepted
//! proof is remembered for as long as the proof would be accepted.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use time::OffsetDateTime;

use crate::protocol::dpop::ProofId;
use crate::protocol::error::BackendError;

/// Remembers the DPoP proofs already used.
///
/// # Contract
///
/// [`ProofReplay::first_use`] is called once per proof that passed every
/// other check, before the request changes anything.
///
/// - **`Ok(true)`**: `id` was not recorded (or its record ended before
///   `now`); it is now recorded until `until`.
/// - **`Ok(false)`**: `id` is recorded until a time after `now`: the proof is
///   a replay, and is refused with `invalid_dpop_proof`.
/// - **`Err`**: the request is refused (`temporarily_unavailable` or
///   `server_error`); nothing else changes. Never answer `Ok(true)` without
///   having recorded the id: that would let a replay through.
/// - **Atomic**: of any number of racing calls with one `id`, at most one
///   gets `Ok(true)` (`SET key NX PX` in Redis, `INSERT … ON CONFLICT DO
///   NOTHING` in SQL).
/// - It may block on I/O. A record may be dropped once `until` has passed.
///
/// Every instance that serves the same token endpoint (or resource) must
/// share one store: a proof replayed to another instance is otherwise
/// accepted there. [`MemoryProofReplay`] serves one process only.
#[async_trait::async_trait]
pub trait ProofReplay: Send + Sync {
    /// Records `id` until `until`, unless it is recorded already.
    async fn first_use(
        &self,
        id: &ProofId,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, BackendError>;
}

/// A [`ProofReplay`] store for one process, bounded in memory.
///
/// Holds at most `capacity` proofs (default 100 000, about 5 MB): when full,
/// it drops the records whose time has passed, and if none has, refuses new
/// proofs with [`BackendError::Unavailable`] until some expire, rather than
/// forget a live one (which would let it be replayed). Entries live at most
/// the verifier's leeway (60 s by default) after the proof's `iat`.
#[derive(Debug)]
pub struct MemoryProofReplay {
    seen: Mutex<HashMap<ProofId, OffsetDateTime>>,
    capacity: usize,
}

impl Default for MemoryProofReplay {
    fn default() -> Self {
        Self::with_capacity(100_000)
    }
}

impl MemoryProofReplay {
    /// An empty store with the default capacity.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that holds at most `capacity` live proofs (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            seen: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    /// How many proofs are held, live or not yet dropped.
    pub fn len(&self) -> usize {
        self.seen().len()
    }

    /// Whether no proof is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn seen(&self) -> MutexGuard<'_, HashMap<ProofId, OffsetDateTime>> {
        // Every write is one insert or a retain: a poisoned lock is still good.
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl ProofReplay for MemoryProofReplay {
    async fn first_use(
        &self,
        id: &ProofId,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, BackendError> {
        let mut seen = self.seen();
        if seen.get(id).is_some_and(|&end| end >= now) {
            return Ok(false);
        }
        if seen.len() >= self.capacity && !seen.contains_key(id) {
            seen.retain(|_, end| *end >= now);
            if seen.len() >= self.capacity {
                return Err(BackendError::Unavailable(
                    "the DPoP replay store is full".into(),
                ));
            }
        }
        seen.insert(*id, until);
        Ok(true)
    }
}
