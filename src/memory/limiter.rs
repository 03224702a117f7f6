use std::sync::Mutex;

use time::OffsetDateTime;

use crate::host::limiter::{Admission, AttemptLimiter, Budget, LimiterKey};
use crate::protocol::error::BackendError;

/// The embedded attempt limiter: one counter per key and window, in memory.
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    counters: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    map: std::collections::HashMap<LimiterKey, (OffsetDateTime, u32)>,
    ops: u32,
}

impl MemoryLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
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
        let window = budget.window_start(now);
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        c.ops = c.ops.wrapping_add(1);
        if c.ops % 1024 == 0 {
            // Forget keys whose window has passed, so memory follows active keys.
            c.map.retain(|_, (start, _)| *start >= window);
        }
        let entry = c.map.entry(key.clone()).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        if entry.1 >= budget.attempts {
            return Ok(Admission::spent(false, budget, now));
        }
        entry.1 += 1;
        Ok(Admission::Admitted)
    }

    async fn refund(
        &self,
        key: &LimiterKey,
        budget: &Budget,
        now: OffsetDateTime,
    ) -> Result<(), BackendError> {
        let window = budget.window_start(now);
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((start, count)) = c.map.get_mut(key) {
            if *start == window {
                *count = count.saturating_sub(1);
            }
        }
        Ok(())
    }
}
