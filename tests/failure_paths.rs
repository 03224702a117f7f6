//! Failure paths that tell the truth: every operation has one commit point;
//! after it, it reports success whatever follows, and before it, nothing has
//! changed. An issuer failure, a cancelled poll or a store that times out
//! after committing never costs the person their approval, never yields two
//! token sets, and never raises a false replay alarm.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use device_grant::store::{
    Admission, AttemptLimiter, DeviceAuthorization, DeviceCodeHash, Inserted, LimiterKey,
    PollAttempt, Polled, Status, Store, UserCodeHash,
};
use device_grant::{
    ApprovedGrant, BackendError, Budget, Budgets, CodeEntry, ConsentDecision, ConsentPolicy,
    DeviceGrant, EndpointRequest, ErrorCode, Event, EventKind, ManualClock, MemoryLimiter,
    MemoryStore, PolicyCheck, PolicyStep, RecordedEvents, RequestContext, Subject, TokenIssuer,
    TokenResponse, VerificationError,
};
use time::{Duration, OffsetDateTime};

/// A store that can be told to fail in the ways real stores do.
#[derive(Default)]
struct Faulty {
    inner: MemoryStore,
    /// The next compare-and-sets commit, then report a timeout (the reply lost).
    commit_then_time_out: AtomicUsize,
    /// The next compare-and-sets time out without committing.
    time_out_before_commit: AtomicUsize,
    /// Reads fail.
    reads_down: AtomicBool,
    /// The next polls are judged and written by the store, then report a
    /// timeout (the reply lost); other polls are left to the crate.
    poll_then_time_out: AtomicUsize,
}

fn take(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

#[async_trait::async_trait]
impl Store for Faulty {
    async fn insert(
        &self,
        record: &DeviceAuthorization,
        now: OffsetDateTime,
    ) -> Result<Inserted, BackendError> {
        self.inner.insert(record, now).await
    }
    async fn by_device_code(
        &self,
        hash: &DeviceCodeHash,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        if self.reads_down.load(Ordering::SeqCst) {
            return Err(BackendError::Timeout);
        }
        self.inner.by_device_code(hash).await
    }
    async fn by_user_code(
        &self,
        hash: &UserCodeHash,
        now: OffsetDateTime,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        self.inner.by_user_code(hash, now).await
    }
    async fn compare_and_set(
        &self,
        expected_version: u64,
        next: &DeviceAuthorization,
    ) -> Result<bool, BackendError> {
        if take(&self.time_out_before_commit) {
            return Err(BackendError::Timeout);
        }
        let done = self.inner.compare_and_set(expected_version, next).await?;
        if take(&self.commit_then_time_out) {
            return Err(BackendError::Timeout);
        }
        Ok(done)
    }
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError> {
        self.inner.purge_expired(now).await
    }
    async fn poll(
        &self,
        hash: &DeviceCodeHash,
        attempt: &PollAttempt<'_>,
    ) -> Result<Polled, BackendError> {
        if take(&self.poll_then_time_out) {
            self.inner.poll(hash, attempt).await?;
            return Err(BackendError::Timeout);
        }
        // Otherwise as a store that leaves polls to the crate (the
        // compare-and-sets above then carry them).
        Ok(Polled::Undecided(self.by_device_code(hash).await?))
    }
}

/// An issuer that fails a number of times, or hangs, then mints; it counts
/// what it minted and keeps one token set per grant id (its idempotency key).
#[derive(Default)]
struct Issuer {
    fail_next: AtomicUsize,
    hang_next: AtomicUsize,
    minted: AtomicUsize,
}

#[async_trait::async_trait]
impl TokenIssuer for Issuer {
    async fn issue(&self, grant: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
        if take(&self.fail_next) {
            return Err(BackendError::Unavailable("token service down".into()));
        }
        if take(&self.hang_next) {
            std::future::pending::<()>().await;
        }
        self.minted.fetch_add(1, Ordering::SeqCst);
        Ok(TokenResponse::bearer(format!("at-{}", grant.id)))
    }
}

/// A limiter whose refunds fail: bookkeeping after a commit point.
struct RefundsFail(MemoryLimiter);

#[async_trait::async_trait]
impl AttemptLimiter for RefundsFail {
    async fn acquire(
        &self,
        key: &LimiterKey,
        budget: &Budget,
        now: OffsetDateTime,
    ) -> Result<Admission, BackendError> {
        self.0.acquire(key, budget, now).await
    }
    async fn refund(
        &self,
        _: &LimiterKey,
        _: &Budget,
        _: OffsetDateTime,
    ) -> Result<(), BackendError> {
        Err(BackendError::Timeout)
    }
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError> {
        self.0.purge_expired(now).await
    }
}

struct World {
    grant: DeviceGrant,
    store: Arc<Faulty>,
    issuer: Arc<Issuer>,
    clock: Arc<ManualClock>,
    events: Arc<RecordedEvents>,
}

/// Refuses every redemption: the host's policy changed after the approval.
struct RefuseRedemption;

impl ConsentPolicy for RefuseRedemption {
    fn decide(&self, check: &PolicyCheck<'_>) -> ConsentDecision {
        match check.step {
            PolicyStep::Redemption => ConsentDecision::Refuse,
            _ => ConsentDecision::Allow,
        }
    }
}

fn world_with(limiter: Arc<dyn AttemptLimiter>) -> World {
    world_with_policy(limiter, Arc::new(device_grant::AllowAll))
}

fn world_with_policy(limiter: Arc<dyn AttemptLimiter>, policy: Arc<dyn ConsentPolicy>) -> World {
    let store = Arc::new(Faulty::default());
    let issuer = Arc::new(Issuer::default());
    let clock = Arc::new(ManualClock::default());
    let events = Arc::new(RecordedEvents::default());
    let budgets = Budgets {
        pending_total: Some(10),
        ..Budgets::default()
    };
    let grant = DeviceGrant::builder(
        common::config().budgets(budgets).build().unwrap(),
        Arc::new(common::clients()),
        issuer.clone(),
    )
    .store(store.clone())
    .limiter(limiter)
    .consent_policy(policy)
    .clock(clock.clone())
    .events(events.clone())
    .build();
    World {
        grant,
        store,
        issuer,
        clock,
        events,
    }
}

fn world() -> World {
    world_with(Arc::new(MemoryLimiter::new()))
}

struct Flow {
    poll: String,
    hash: DeviceCodeHash,
    ticket: device_grant::VerificationTicket,
    scopes: device_grant::ScopeSet,
}

impl World {
    async fn flow(&self) -> Flow {
        let codes = self
            .grant
            .device_authorization(
                EndpointRequest::form(b"client_id=tv-app"),
                RequestContext::default(),
            )
            .await
            .unwrap();
        let found = self
            .grant
            .verify(
                codes.user_code.display(),
                &CodeEntry::from_key(LimiterKey::new("person")),
            )
            .await
            .unwrap();
        Flow {
            poll: common::poll_body("tv-app", codes.device_code.secret()),
            hash: codes.device_code.hash(),
            scopes: found.request.scopes.clone(),
            ticket: found.ticket,
        }
    }

    async fn approve(&self, flow: &Flow) -> Result<(), VerificationError> {
        self.grant
            .approve(
                &flow.ticket,
                device_grant::Approve::scopes(Subject::new("alice"), None, flow.scopes.clone()),
            )
            .await
    }

    async fn poll(&self, flow: &Flow) -> Result<TokenResponse, device_grant::OAuthError> {
        self.grant
            .token(EndpointRequest::form(flow.poll.as_bytes()))
            .await
    }

    async fn status(&self, flow: &Flow) -> Status {
        self.store
            .inner
            .by_device_code(&flow.hash)
            .await
            .unwrap()
            .unwrap()
            .status
    }

    fn count(&self, what: fn(&Event) -> bool) -> usize {
        self.events.events().iter().filter(|e| what(e)).count()
    }
}

fn approved(e: &Event) -> bool {
    matches!(e.kind, EventKind::Approved)
}
fn redeemed(e: &Event) -> bool {
    matches!(e.kind, EventKind::Redeemed)
}
fn refused(e: &Event) -> bool {
    matches!(e.kind, EventKind::Refused)
}
fn replay(e: &Event) -> bool {
    matches!(e.kind, EventKind::Replay)
}

#[tokio::test]
async fn approve_after_its_commit_point_reports_success_when_bookkeeping_fails() {
    let w = world_with(Arc::new(RefundsFail(MemoryLimiter::new())));
    let flow = w.flow().await;
    // The limiter cannot give the pending unit back: the approval stands all
    // the same, and says so, with its audit event.
    w.approve(&flow).await.unwrap();
    assert!(matches!(w.status(&flow).await, Status::Approved { .. }));
    assert_eq!(w.count(approved), 1);
    let other = w.flow().await;
    w.grant.deny(&other.ticket).await.unwrap();
    assert!(matches!(w.status(&other).await, Status::Denied { .. }));
    assert!(w.poll(&flow).await.is_ok());
}

#[tokio::test]
async fn a_store_timeout_that_hid_a_commit_is_settled_as_success() {
    let w = world();
    let flow = w.flow().await;
    w.store.commit_then_time_out.store(1, Ordering::SeqCst);
    w.approve(&flow).await.unwrap();
    assert!(matches!(w.status(&flow).await, Status::Approved { .. }));
    assert_eq!(w.count(approved), 1);
    // The same for deny.
    let other = w.flow().await;
    w.store.commit_then_time_out.store(1, Ordering::SeqCst);
    w.grant.deny(&other.ticket).await.unwrap();
    assert!(matches!(w.status(&other).await, Status::Denied { .. }));
    // And for the poll that takes the approval: the tokens come, once.
    w.store.commit_then_time_out.store(1, Ordering::SeqCst);
    assert!(w.poll(&flow).await.is_ok());
    assert_eq!(w.issuer.minted.load(Ordering::SeqCst), 1);
    assert!(matches!(w.status(&flow).await, Status::Redeemed { .. }));
}

#[tokio::test]
async fn a_refusal_at_redemption_whose_write_reply_was_lost_is_still_a_refusal() {
    let w = world_with_policy(Arc::new(MemoryLimiter::new()), Arc::new(RefuseRedemption));
    let flow = w.flow().await;
    w.approve(&flow).await.unwrap();
    // The poll's policy re-check refuses, and the write that denies the
    // request lands but its reply is lost: the device is told the truth
    // (access_denied, not temporarily_unavailable), and the refusal is
    // audited once.
    w.store.commit_then_time_out.store(1, Ordering::SeqCst);
    let e = w.poll(&flow).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::AccessDenied, "{e:?}");
    assert!(matches!(w.status(&flow).await, Status::Denied { .. }));
    assert_eq!(w.count(refused), 1);
    assert_eq!(w.issuer.minted.load(Ordering::SeqCst), 0);
    // The next poll is the plain denial.
    let e = w.poll(&flow).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::AccessDenied);
    assert_eq!(w.count(refused), 1);
}

#[tokio::test]
async fn a_poll_whose_pace_write_reply_was_lost_gets_its_real_answer() {
    let w = world();
    let flow = w.flow().await;
    // The first poll records its time; the reply of that write is lost, and
    // reading the record back shows it landed: authorization_pending, as if
    // nothing had failed.
    w.store.commit_then_time_out.store(1, Ordering::SeqCst);
    let e = w.poll(&flow).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::AuthorizationPending, "{e:?}");
    let stored = w
        .store
        .inner
        .by_device_code(&flow.hash)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.last_poll.is_some());
    // Too early: the slow_down's write lands and its reply is lost. The device
    // still learns the longer interval that now applies to it.
    w.store.commit_then_time_out.store(1, Ordering::SeqCst);
    let e = w.poll(&flow).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::SlowDown, "{e:?}");
    let slowed = w
        .store
        .inner
        .by_device_code(&flow.hash)
        .await
        .unwrap()
        .unwrap();
    assert!(slowed.interval > stored.interval);
    // A write that timed out without landing is found not to have landed,
    // and is made again: the poll is answered, and its time recorded.
    w.clock.advance(Duration::minutes(1));
    w.store.time_out_before_commit.store(1, Ordering::SeqCst);
    let e = w.poll(&flow).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::AuthorizationPending, "{e:?}");
    let later = w
        .store
        .inner
        .by_device_code(&flow.hash)
        .await
        .unwrap()
        .unwrap();
    assert!(later.last_poll > slowed.last_poll);
}

#[tokio::test]
async fn a_poll_the_store_judged_and_wrote_before_its_reply_was_lost_gets_its_real_answer() {
    let w = world();
    let flow = w.flow().await;
    // On time: the store records the poll, and its reply is lost. Reading
    // the record back shows this poll's time: authorization_pending.
    w.store.poll_then_time_out.store(1, Ordering::SeqCst);
    let e = w.poll(&flow).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::AuthorizationPending, "{e:?}");
    let stored = w
        .store
        .inner
        .by_device_code(&flow.hash)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.last_poll.is_some());
    // Too early: the store grows the interval, and its reply is lost. The
    // device learns the interval that now applies, and it grows only once.
    w.clock.advance(Duration::seconds(1));
    w.store.poll_then_time_out.store(1, Ordering::SeqCst);
    let e = w.poll(&flow).await.unwrap_err();
    let slowed = w
        .store
        .inner
        .by_device_code(&flow.hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(slowed.interval.secs(), stored.interval.secs() + 5);
    assert!(
        matches!(e, device_grant::OAuthError::SlowDown { interval } if interval == slowed.interval),
        "{e:?}"
    );
    // A reply lost and the record unreadable: unknown, and said so.
    w.clock.advance(Duration::minutes(1));
    w.store.poll_then_time_out.store(1, Ordering::SeqCst);
    w.store.reads_down.store(true, Ordering::SeqCst);
    let e = w.poll(&flow).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::TemporarilyUnavailable, "{e:?}");
}

#[tokio::test]
async fn a_store_timeout_before_the_commit_is_never_reported_as_success() {
    let w = world();
    let flow = w.flow().await;
    // The write times out without landing, and the record cannot be read
    // back: the answer says the outcome is unknown, not success.
    w.store.time_out_before_commit.store(1, Ordering::SeqCst);
    w.store.reads_down.store(true, Ordering::SeqCst);
    let e = w.approve(&flow).await.unwrap_err();
    assert!(matches!(e, VerificationError::Unsettled(_)), "{e:?}");
    w.store.reads_down.store(false, Ordering::SeqCst);
    assert_eq!(w.status(&flow).await, Status::Pending);
    assert_eq!(w.count(approved), 0);
    // Read back fine, a write that did not land is retried: success, once.
    w.store.time_out_before_commit.store(1, Ordering::SeqCst);
    w.approve(&flow).await.unwrap();
    assert!(matches!(w.status(&flow).await, Status::Approved { .. }));
    assert_eq!(w.count(approved), 1);
}

#[tokio::test]
async fn a_transient_issuer_failure_keeps_the_approval_for_the_next_poll() {
    let w = world();
    let flow = w.flow().await;
    w.approve(&flow).await.unwrap();
    w.issuer.fail_next.store(1, Ordering::SeqCst);
    let e = w.poll(&flow).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::TemporarilyUnavailable);
    assert_eq!(e.to_http().status, 503);
    // The approval is free again at once: the next poll gets the tokens.
    assert!(matches!(w.status(&flow).await, Status::Approved { .. }));
    w.clock.advance(Duration::seconds(5));
    let tokens = w.poll(&flow).await.unwrap();
    assert!(tokens.access_token.secret().starts_with("at-"));
    assert_eq!(w.issuer.minted.load(Ordering::SeqCst), 1);
    assert_eq!(w.count(redeemed), 1);
    assert_eq!(
        w.count(replay),
        0,
        "no tokens had been issued before: no replay"
    );
    // Then, and only then, a replay.
    assert_eq!(
        w.poll(&flow).await.unwrap_err().code(),
        ErrorCode::InvalidGrant
    );
    assert_eq!(w.count(replay), 1);
}

#[tokio::test]
async fn a_poll_cancelled_while_the_issuer_runs_frees_the_approval_when_its_lease_ends() {
    let w = world();
    let flow = w.flow().await;
    w.approve(&flow).await.unwrap();
    w.issuer.hang_next.store(1, Ordering::SeqCst);
    // The device's connection drops while the issuer works: the request's
    // future is dropped mid-issue.
    let cut = tokio::time::timeout(std::time::Duration::from_millis(50), w.poll(&flow)).await;
    assert!(
        cut.is_err(),
        "the hanging issuer must keep the poll waiting"
    );
    assert!(matches!(w.status(&flow).await, Status::Redeeming { .. }));
    // Within the lease, other polls wait: no second issue, no alarm.
    w.clock.advance(Duration::seconds(5));
    assert_eq!(
        w.poll(&flow).await.unwrap_err().code(),
        ErrorCode::AuthorizationPending
    );
    assert_eq!(w.issuer.minted.load(Ordering::SeqCst), 0);
    // After the lease (30 s by default), the next poll gets the tokens.
    w.clock.advance(Duration::seconds(26));
    assert!(w.poll(&flow).await.is_ok());
    assert_eq!(w.issuer.minted.load(Ordering::SeqCst), 1);
    assert_eq!(w.count(replay), 0);
    assert_eq!(
        w.poll(&flow).await.unwrap_err().code(),
        ErrorCode::InvalidGrant
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_polls_through_issuer_failures_yield_one_token_set() {
    for round in 0..50 {
        let w = world();
        let flow = w.flow().await;
        w.approve(&flow).await.unwrap();
        w.issuer.fail_next.store(round % 3, Ordering::SeqCst);
        let w = Arc::new(w);
        let mut tokens = 0;
        for _ in 0..4 {
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let w = w.clone();
                let poll = flow.poll.clone();
                tasks.push(tokio::spawn(async move {
                    w.grant.token(EndpointRequest::form(poll.as_bytes())).await
                }));
            }
            for t in tasks {
                if t.await.unwrap().is_ok() {
                    tokens += 1;
                }
            }
        }
        assert_eq!(tokens, 1, "round {round}: exactly one token response");
        assert_eq!(w.issuer.minted.load(Ordering::SeqCst), 1, "round {round}");
    }
}
