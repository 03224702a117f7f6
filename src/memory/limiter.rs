use std::collections::HashMap;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

use crate::host::limiter::{Admission, AttemptLimiter, Budget, LimiterKey};
use crate::protocol::error::BackendError;

/// Acquisitions between two sweeps of ended windows.
const SWEEP_EVERY: u32 = 1024;

/// The embedded attempt limiter: one counter per key, window length and
/// window, in memory. It forgets ended windows on its own every 1,024
/// acquisitions, each by its own window's end, so memory follows the live keys.
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    counters: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    /// (key, window length in seconds) → (window start, spent).
    map: HashMap<(LimiterKey, i64), Counter>,
    acquisitions: u32,
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    start: OffsetDateTime,
    ends: OffsetDateTime,
    spent: u32,
}

impl Counters {
    /// Drops every counter whose own window has ended at `now`.
    fn sweep(&mut self, now: OffsetDateTime) -> u64 {
        let before = self.map.len();
        self.map.retain(|_, c| c.ends > now);
        (before - self.map.len()) as u64
    }
}

fn id(key: &LimiterKey, budget: &Budget) -> (LimiterKey, i64) {
    (key.clone(), window_secs(budget))
}

fn window_secs(budget: &Budget) -> i64 {
    budget.window.whole_seconds().max(1)
}

impl MemoryLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many counters are held: for tests and monitoring.
    pub fn len(&self) -> usize {
        self.counters().map.len()
    }

    /// Whether no counter is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait::async_trait]
impl AttemptLimiter for MemoryLimiter {
    async fn acquire(
        &self,
        key: &LimiterKey,
        budget: &Budget,
        now: OffsetDateTime,
    ) -> Result<Admission, BackendError> {
        let start = budget.window_start(now);
        let mut c = self.counters();
        c.acquisitions = c.acquisitions.wrapping_add(1);
        if c.acquisitions % SWEEP_EVERY == 0 {
            c.sweep(now);
        }
        let fresh = Counter {
            start,
            ends: start + Duration::seconds(window_secs(budget)),
            spent: 0,
        };
        let counter = c.map.entry(id(key, budget)).or_insert(fresh);
        if counter.start < start {
            *counter = fresh;
        } else if counter.start > start {
            // A caller whose clock lags a window behind: refused rather than
            // allowed to reset the newer window's count.
            return Ok(Admission::spent(false, budget, now));
        }
        if counter.spent >= budget.attempts {
            return Ok(Admission::spent(false, budget, now));
        }
        counter.spent += 1;
        Ok(Admission::Admitted)
    }

    async fn refund(
        &self,
        key: &LimiterKey,
        budget: &Budget,
        now: OffsetDateTime,
    ) -> Result<(), BackendError> {
        let start = budget.window_start(now);
        if let Some(counter) = self.counters().map.get_mut(&id(key, budget)) {
            if counter.start == start {
                counter.spent = counter.spent.saturating_sub(1);
            }
        }
        Ok(())
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError> {
        Ok(self.counters().sweep(now))
    }
}
