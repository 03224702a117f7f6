//! Budgets on guessing user codes.

use time::{Duration, OffsetDateTime};

use crate::protocol::error::BackendError;

/// What a budget is counted against: a source network, an account, a client,
/// the deployment, or a key the host chooses (such as a session).
///
/// It may be personal data (an address) or even a secret (a session id), so
/// `Debug` redacts it and events carry only a [`KeyDigest`] of it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LimiterKey(String);

impl LimiterKey {
    /// Wraps a key. Keys beginning with `device-grant:` are the crate's own
    /// (see [`AttemptLimiter`] for the families); a host's keys must not.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SHA-256 of this key counted under `budget`: what a shared backend
    /// keys its counter by, so that it never holds the key (an address, an
    /// account) itself. The same key under budgets of different window lengths
    /// gives different counters.
    pub fn counter_id(&self, budget: &Budget) -> [u8; 32] {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(budget.window.whole_seconds().to_be_bytes());
        h.update(self.0.as_bytes());
        h.finalize().into()
    }
}

impl std::fmt::Debug for LimiterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LimiterKey([redacted])")
    }
}

/// A keyed, truncated hash of a [`LimiterKey`]: enough to tell in the logs that
/// two events concern the same key, and nothing to recover an address or a
/// session from (unkeyed, an IPv4 address's hash would fall to a table of all
/// 2³² of them).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest([u8; 8]);

impl KeyDigest {
    pub(crate) fn new(bytes: [u8; 8]) -> Self {
        Self(bytes)
    }
}

impl std::fmt::Display for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::protocol::hex(&self.0))
    }
}

impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyDigest({self})")
    }
}

/// Which budget of [`Budgets`] a count belongs to: the family of its key.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetKind {
    /// [`Budgets::wrong_codes_per_key`].
    WrongCodesPerKey,
    /// [`Budgets::wrong_codes_per_account`].
    WrongCodesPerAccount,
    /// [`Budgets::wrong_codes_anonymous`].
    WrongCodesAnonymous,
    /// [`Budgets::authorizations_per_source`].
    AuthorizationsPerSource,
    /// [`Budgets::authorizations_per_wide_source`].
    AuthorizationsPerWideSource,
    /// [`Budgets::authorizations_per_client`].
    AuthorizationsPerClient,
    /// [`Budgets::pending_per_client`].
    PendingPerClient,
    /// [`Budgets::pending_total`].
    PendingTotal,
}

impl BudgetKind {
    /// A stable name for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::WrongCodesPerKey => "wrong_codes_per_key",
            Self::WrongCodesPerAccount => "wrong_codes_per_account",
            Self::WrongCodesAnonymous => "wrong_codes_anonymous",
            Self::AuthorizationsPerSource => "authorizations_per_source",
            Self::AuthorizationsPerWideSource => "authorizations_per_wide_source",
            Self::AuthorizationsPerClient => "authorizations_per_client",
            Self::PendingPerClient => "pending_per_client",
            Self::PendingTotal => "pending_total",
        }
    }
}

impl std::fmt::Display for BudgetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// So many attempts per fixed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Attempts per window.
    pub attempts: u32,
    /// The window.
    pub window: Duration,
}

impl Default for Budget {
    /// 5 per 5 minutes: the default for wrong user codes per account.
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
/// across instances when the limiter is). An `Option` layer is off when `None`.
///
/// The defaults come from the abuse model in `SECURITY.md`: no default budget is
/// keyed on something an attacker can name for someone else (a public client's
/// id, the deployment), so none can be spent to lock out the innocent; NAT
/// gateways and CI pipelines fit within the per-source budgets; and the
/// deployment-wide layers either move code entry to a signed-in mode
/// ([`Budgets::wrong_codes_anonymous`]) or protect storage with a plain 503
/// ([`Budgets::pending_total`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Wrong user codes per [`CodeEntry`](crate::CodeEntry) key (the person's
    /// IPv4 address or IPv6 /64, or a key the host chooses). Default 20 per 5
    /// min: 500 people behind one NAT address share it, and their typos with it.
    pub wrong_codes_per_key: Budget,
    /// Wrong user codes per signed-in account, when the host says who is signed
    /// in ([`CodeEntry::signed_in`](crate::CodeEntry::signed_in)). Default 5 per
    /// 5 min.
    pub wrong_codes_per_account: Budget,
    /// Wrong user codes typed by people who are not signed in, deployment-wide:
    /// the bound on guessing spread over many addresses. When it is spent, code
    /// entry is not closed: it moves to a signed-in mode until the window ends,
    /// in which [`DeviceGrant::verify`](crate::DeviceGrant::verify) answers
    /// [`VerificationError::SignInRequired`](crate::VerificationError::SignInRequired)
    /// to anyone not signed in, and signed-in people go on under their
    /// per-account budget. Default 1,000 per 5 min.
    pub wrong_codes_anonymous: Option<Budget>,
    /// Device authorizations per source network (an IPv4 address, an IPv6 /64),
    /// from [`RequestContext::ip`](crate::RequestContext::ip). Default 120 per
    /// 10 min: a CI pipeline's 100 flows in 10 minutes, or 50 people behind one
    /// NAT address starting a flow within 5 minutes, with room to spare.
    pub authorizations_per_source: Option<Budget>,
    /// Device authorizations per IPv6 /48 (a site's usual allocation, 65,536
    /// /64s), so that one site cannot multiply the per-source budget by the
    /// number of its /64s. Default 1,200 per 10 min.
    pub authorizations_per_wide_source: Option<Budget>,
    /// Device authorizations per confidential client. Counted only for clients
    /// that authenticate with a secret: a public client's id is known to every
    /// attacker, who could spend its budget to refuse all its devices. Default
    /// off.
    pub authorizations_per_client: Option<Budget>,
    /// Pending requests per confidential client, counted per code-lifetime
    /// window: a request spends one when created and gives it back when approved
    /// or denied, so a client never has more than twice this many pending at
    /// once. Counted only for confidential clients, as above. Default off.
    pub pending_per_client: Option<u32>,
    /// Pending requests deployment-wide, counted like `pending_per_client`: the
    /// ceiling that protects storage. Past it a device authorization gets
    /// `503 temporarily_unavailable` with `Retry-After`
    /// ([`OAuthError::Overloaded`](crate::OAuthError::Overloaded)). Default
    /// 1,000,000 per lifetime window, so at most 2,000,000 pending records.
    pub pending_total: Option<u32>,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            wrong_codes_per_key: Budget {
                attempts: 20,
                window: Duration::minutes(5),
            },
            wrong_codes_per_account: Budget::default(),
            wrong_codes_anonymous: Some(Budget {
                attempts: 1_000,
                window: Duration::minutes(5),
            }),
            authorizations_per_source: Some(Budget {
                attempts: 120,
                window: Duration::minutes(10),
            }),
            authorizations_per_wide_source: Some(Budget {
                attempts: 1_200,
                window: Duration::minutes(10),
            }),
            authorizations_per_client: None,
            pending_per_client: None,
            pending_total: Some(1_000_000),
        }
    }
}

impl Budgets {
    /// Every layer checked: at least one attempt, a window of at least 1 s.
    pub(crate) fn is_valid(&self) -> bool {
        let ok = |b: &Budget| b.attempts > 0 && b.window >= Duration::seconds(1);
        ok(&self.wrong_codes_per_key)
            && ok(&self.wrong_codes_per_account)
            && self.wrong_codes_anonymous.as_ref().is_none_or(ok)
            && self.authorizations_per_client.as_ref().is_none_or(ok)
            && self.authorizations_per_source.as_ref().is_none_or(ok)
            && self.authorizations_per_wide_source.as_ref().is_none_or(ok)
            && self.pending_per_client != Some(0)
            && self.pending_total != Some(0)
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
/// A *counter* is one [`LimiterKey`] under one window length
/// ([`Budget::window`]) in one fixed window ([`Budget::window_start`]). Counters
/// are independent: the same key counted under a 60 s and a 600 s budget is two
/// counters, and nothing one budget does (its calls, its roll-overs, a purge)
/// may change another's count. Two budgets with the same key and the same
/// window length share a counter.
///
/// - [`acquire`](AttemptLimiter::acquire) reads and spends in one atomic step
///   across every instance sharing the limiter, so that concurrent attempts can
///   never overspend: it returns `Admitted` and adds one when the counter is
///   below [`Budget::attempts`], else `Exhausted` (with
///   [`Admission::spent`]`(false, …)`) and changes nothing. A counter of a
///   window that has not been seen starts at zero.
/// - [`refund`](AttemptLimiter::refund) subtracts one from the counter of the
///   window holding `now` (the time the attempt was acquired at), never below
///   zero. A refund for a window that has rolled over changes no other
///   window's counter; it may be dropped.
/// - [`purge_expired`](AttemptLimiter::purge_expired) deletes counters whose
///   window has ended at `now`, and only those. A limiter whose counters expire
///   on their own (TTLs) returns `Ok(0)`. [`DeviceGrant::purge_expired`](crate::DeviceGrant::purge_expired)
///   calls it, so memory and tables follow the live keys.
/// - **Blocking.** Every method is `async` and may wait on I/O (a network
///   round trip, a pool); it must not block the executor's thread for longer
///   than a short critical section, and none may panic.
/// - **Failures.** A failure is a [`BackendError`] and changes nothing, or,
///   where the backend cannot tell (a timeout), at most the one counter
///   named, by at most one.
///
/// | method | outcome | returns |
/// | --- | --- | --- |
/// | [`acquire`](AttemptLimiter::acquire) | the counter is below `budget.attempts` | `Ok(Admitted)`: the counter grew by one |
/// | | the counter is at `budget.attempts` | `Ok(Exhausted { retry_after })` with `retry_after == budget.retry_after(now)` (what [`Admission::spent`]`(false, budget, now)` builds): nothing changed |
/// | [`refund`](AttemptLimiter::refund) | the counter of the window holding `now` is above zero | `Ok(())`: it shrank by one |
/// | | it is at zero, or gone (rolled over, purged) | `Ok(())`: nothing changed |
/// | [`purge_expired`](AttemptLimiter::purge_expired) | | `Ok(n)`: deleted the `n` counters whose window ended at or before `now` (`0` for a limiter whose counters expire on their own) |
/// | any | the backend failed | `Err(_)`: see *Failures* |
///
/// The crate passes only valid budgets (at least one attempt, a window of at
/// least one second: [`Config`](crate::Config) refuses others), and `now` from
/// its [`Clock`](crate::Clock); instances sharing a limiter must keep their
/// clocks in sync (NTP), since a window is named by its start time.
///
/// The crate spends before the work a budget guards and refunds what a request
/// turned out not to cost (a right code, a refused request, a backend failure);
/// refunds are best effort and never mask the request's own answer.
///
/// # Key families
///
/// The crate counts under these keys (`{…}` is filled in); a host's own keys
/// must not begin with `device-grant:`. Size a limiter for about one live
/// counter per active key of each family.
///
/// | key | budget |
/// | --- | --- |
/// | `device-grant:entry:{IPv4 address or IPv6 /64}`, or the host's key | [`Budgets::wrong_codes_per_key`] |
/// | `device-grant:account:{subject}` | [`Budgets::wrong_codes_per_account`] |
/// | `device-grant:wrong-codes` | [`Budgets::wrong_codes_anonymous`] |
/// | `device-grant:source:{IPv4 address or IPv6 /64}` | [`Budgets::authorizations_per_source`] |
/// | `device-grant:wide-source:{IPv6 /48}` | [`Budgets::authorizations_per_wide_source`] |
/// | `device-grant:client:{client id}` | [`Budgets::authorizations_per_client`] |
/// | `device-grant:pending:{client id}` | [`Budgets::pending_per_client`] |
/// | `device-grant:pending` | [`Budgets::pending_total`] |
///
/// The conformance suite (feature `test-util`: `conformance::run_limiter` on
/// one handle, `conformance::run_limiter_shared` on two handles on one
/// backing limiter) checks all of this for an adapter.
#[async_trait::async_trait]
pub trait AttemptLimiter: Send + Sync {
    /// Spends one attempt of `key`'s counter under `budget` in the window
    /// holding `now`, if any are left: `Ok(Admitted)` having added one, or
    /// `Ok(Exhausted { retry_after: budget.retry_after(now) })` having changed
    /// nothing. Reading and spending are one atomic step across every handle
    /// on the limiter: of concurrent attempts, exactly as many as are left are
    /// admitted.
    async fn acquire(
        &self,
        key: &LimiterKey,
        budget: &Budget,
        now: OffsetDateTime,
    ) -> Result<Admission, BackendError>;

    /// Gives back one attempt of `key`'s counter under `budget` in the window
    /// holding `now` (the time it was acquired at), never below zero; `Ok(())`
    /// whether or not there was one to give back. Atomic like
    /// [`acquire`](AttemptLimiter::acquire); it never touches another window's
    /// counter, so a late refund cannot refill the current window.
    async fn refund(
        &self,
        key: &LimiterKey,
        budget: &Budget,
        now: OffsetDateTime,
    ) -> Result<(), BackendError>;

    /// Deletes the counters whose window has ended at `now` (window start +
    /// window length `<= now`), and no other; returns how many. May take long
    /// on a large backlog; concurrent purges from several instances are safe.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError>;
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
