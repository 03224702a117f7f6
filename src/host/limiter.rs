//! Budgets on guessing user codes.

use time::{Duration, OffsetDateTime};

use crate::protocol::error::BackendError;

/// What the attempt budget is counted against; the host chooses (a session, an
/// IP address, an account, or several keys in turn). Not a secret, but it may be
/// personal data: keep it coarse.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LimiterKey(String);

impl LimiterKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for LimiterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How many wrong user codes a key may enter per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Attempts per window. Default 5.
    pub attempts: u32,
    /// The window. Default 5 minutes.
    pub window: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            attempts: 5,
            window: Duration::minutes(5),
        }
    }
}

impl Budget {
    /// The start of the fixed window that holds `now`.
    pub fn window_start(&self, now: OffsetDateTime) -> OffsetDateTime {
        let w = self.window.whole_seconds().max(1);
        let t = now.unix_timestamp();
        OffsetDateTime::from_unix_timestamp(t - t.rem_euclid(w)).unwrap_or(now)
    }

    /// How long until the window that holds `now` ends.
    pub fn retry_after(&self, now: OffsetDateTime) -> Duration {
        self.window_start(now) + self.window - now
    }
}

/// The layered abuse budgets, each counted by the [`AttemptLimiter`] (so shared
/// across instances when the limiter is). Each `Option` layer is off when `None`.
/// Keys the crate counts under begin with `device-grant:`; host keys must not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Wrong user codes per host-chosen key (session, IP, account). Default 5 per 5 min.
    pub wrong_codes_per_key: Budget,
    /// Wrong user codes across the whole deployment, so that guesses spread over
    /// many addresses are bounded too. Default 1,000 per 5 min. When spent, every
    /// person is refused until the window ends: size it above the deployment's
    /// normal rate of typos.
    pub wrong_codes_global: Option<Budget>,
    /// Device authorizations per client. Default 600 per minute.
    pub authorizations_per_client: Option<Budget>,
    /// Device authorizations per source network (an IPv4 address, an IPv6 /64),
    /// from [`crate::RequestContext::ip`]. Default 20 per 10 min.
    pub authorizations_per_source: Option<Budget>,
    /// Pending requests per client, counted per code-lifetime window: a request
    /// spends one when created and gives it back when approved or denied, so a
    /// client never has more than twice this many requests pending at once (fixed
    /// windows). Default 10,000.
    pub pending_per_client: Option<u32>,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            wrong_codes_per_key: Budget::default(),
            wrong_codes_global: Some(Budget {
                attempts: 1_000,
                window: Duration::minutes(5),
            }),
            authorizations_per_client: Some(Budget {
                attempts: 600,
                window: Duration::minutes(1),
            }),
            authorizations_per_source: Some(Budget {
                attempts: 20,
                window: Duration::minutes(10),
            }),
            pending_per_client: Some(10_000),
        }
    }
}

impl Budgets {
    /// Every layer checked: at least one attempt, a window of at least 1 s.
    pub(crate) fn is_valid(&self) -> bool {
        let ok = |b: &Budget| b.attempts > 0 && b.window >= Duration::seconds(1);
        ok(&self.wrong_codes_per_key)
            && self.wrong_codes_global.as_ref().is_none_or(ok)
            && self.authorizations_per_client.as_ref().is_none_or(ok)
            && self.authorizations_per_source.as_ref().is_none_or(ok)
            && self.pending_per_client != Some(0)
    }
}

/// Whether an attempt may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead; one attempt was spent.
    Admitted,
    /// The budget is spent; nothing was spent.
    Exhausted {
        /// When the next window starts.
        retry_after: Duration,
    },
}

impl Admission {
    /// `Admitted` when an attempt was spent, else `Exhausted` until the window
    /// holding `now` ends: how every limiter turns its count into an answer.
    pub fn spent(spent: bool, budget: &Budget, now: OffsetDateTime) -> Self {
        if spent {
            Self::Admitted
        } else {
            Self::Exhausted {
                retry_after: budget.retry_after(now),
            }
        }
    }
}

/// Counts attempts per key in fixed windows.
///
/// # Contract
///
/// [`AttemptLimiter::acquire`] checks and spends in one atomic step across every
/// instance sharing the limiter, so that concurrent guesses cannot overspend.
/// The crate spends an attempt before each look-up of a well-formed user code and
/// refunds it when the code was right, so that only wrong codes count.
#[async_trait::async_trait]
pub trait AttemptLimiter: Send + Sync {
    /// Spends one attempt of `key` in the window holding `now`, if any are left.
    async fn acquire(
        &self,
        key: &LimiterKey,
        budget: &Budget,
        now: OffsetDateTime,
    ) -> Result<Admission, BackendError>;

    /// Gives back one attempt spent in the window holding `now`.
    async fn refund(
        &self,
        key: &LimiterKey,
        budget: &Budget,
        now: OffsetDateTime,
    ) -> Result<(), BackendError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryLimiter;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    #[test]
    fn fixed_windows() {
        let b = Budget {
            attempts: 3,
            window: Duration::seconds(300),
        };
        assert_eq!(b.window_start(at(1_000_000_299)), at(1_000_000_200));
        assert_eq!(b.window_start(at(1_000_000_200)), at(1_000_000_200));
        assert_eq!(b.retry_after(at(1_000_000_299)), Duration::seconds(201));
    }

    #[tokio::test]
    async fn memory_limiter_spends_refunds_and_resets() {
        let l = MemoryLimiter::new();
        let b = Budget {
            attempts: 2,
            window: Duration::seconds(60),
        };
        let k = LimiterKey::new("k");
        let t = at(6_000);
        assert_eq!(l.acquire(&k, &b, t).await.unwrap(), Admission::Admitted);
        assert_eq!(l.acquire(&k, &b, t).await.unwrap(), Admission::Admitted);
        assert_eq!(
            l.acquire(&k, &b, t + Duration::seconds(10)).await.unwrap(),
            Admission::Exhausted {
                retry_after: Duration::seconds(50)
            }
        );
        l.refund(&k, &b, t).await.unwrap();
        assert_eq!(l.acquire(&k, &b, t).await.unwrap(), Admission::Admitted);
        // Other keys are independent; a new window starts afresh.
        assert_eq!(
            l.acquire(&LimiterKey::new("j"), &b, t).await.unwrap(),
            Admission::Admitted
        );
        assert_eq!(
            l.acquire(&k, &b, t + Duration::seconds(60)).await.unwrap(),
            Admission::Admitted
        );
        // A refund for a past window does not credit the current one.
        l.refund(&k, &b, t).await.unwrap();
        assert_eq!(
            l.acquire(&k, &b, t + Duration::seconds(60)).await.unwrap(),
            Admission::Admitted
        );
        assert!(matches!(
            l.acquire(&k, &b, t + Duration::seconds(60)).await.unwrap(),
            Admission::Exhausted { .. }
        ));
    }
}
