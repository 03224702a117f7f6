//! The layered abuse budgets: wrong codes per key, per account and typed
//! anonymously; device authorizations per source network, per IPv6 /48 and per
//! confidential client; pending requests per confidential client and in all.
//! And what the budgets cost when something fails: nothing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{config, harness_with};
use device_grant::store::{
    Admission, AttemptLimiter, DeviceAuthorization, DeviceCodeHash, Inserted, LimiterKey, Store,
    UserCodeHash,
};
use device_grant::{
    BackendError, Budget, BudgetKind, Budgets, CodeEntry, DeviceGrant, EndpointRequest, ErrorCode,
    Event, EventKind, ManualClock, MemoryLimiter, MemoryStore, OAuthError, RecordedEvents,
    RequestContext, Subject, VerificationError,
};
use time::{Duration, OffsetDateTime};

fn only(budgets: Budgets) -> common::Harness {
    harness_with(config().budgets(budgets))
}

fn none() -> Budgets {
    Budgets {
        wrong_codes_per_key: Budget {
            attempts: 1000,
            window: Duration::minutes(5),
        },
        wrong_codes_per_account: Budget {
            attempts: 1000,
            window: Duration::minutes(5),
        },
        wrong_codes_anonymous: None,
        authorizations_per_client: None,
        authorizations_per_source: None,
        authorizations_per_wide_source: None,
        pending_per_client: None,
        pending_total: None,
    }
}

fn from(ip: &str) -> RequestContext {
    RequestContext {
        ip: Some(ip.parse().unwrap()),
        ..RequestContext::default()
    }
}

fn entry(key: &str) -> CodeEntry {
    CodeEntry::from_key(LimiterKey::new(key))
}

async fn start(
    h: &common::Harness,
    ctx: RequestContext,
) -> Result<device_grant::DeviceAuthorizationResponse, OAuthError> {
    h.grant
        .device_authorization(EndpointRequest::form(b"client_id=tv-app"), ctx)
        .await
}

async fn start_printer(
    h: &common::Harness,
    ctx: RequestContext,
) -> Result<device_grant::DeviceAuthorizationResponse, OAuthError> {
    let printer = common::basic("printer", common::PRINTER_SECRET);
    h.grant
        .device_authorization(EndpointRequest::form(b"").with_authorization(&printer), ctx)
        .await
}

fn wrong_code(right: &str) -> &'static str {
    if right.starts_with('B') {
        "CCCC-CCCC"
    } else {
        "BBBB-BBBB"
    }
}

fn e_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_spent_anonymous_budget_moves_code_entry_to_signed_in_mode() {
    let h = only(Budgets {
        wrong_codes_anonymous: Some(Budget {
            attempts: 10,
            window: Duration::minutes(5),
        }),
        wrong_codes_per_account: Budget {
            attempts: 3,
            window: Duration::minutes(5),
        },
        ..none()
    });
    let c = h.start("client_id=tv-app").await;
    let wrong = wrong_code(c.user_code.canonical());
    // Ten different addresses, one guess each: all looked up.
    for i in 0..10 {
        let r = h.grant.verify(wrong, &entry(&format!("ip:{i}"))).await;
        assert!(matches!(r, Err(VerificationError::NotFound)), "{i}");
    }
    // The eleventh person, not signed in, is asked to sign in: a distinct,
    // typed outcome, not a refusal of code entry.
    let r = h
        .grant
        .verify(c.user_code.display(), &entry("ip:fresh"))
        .await;
    let Err(VerificationError::SignInRequired { retry_after }) = r else {
        panic!("{r:?}")
    };
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::minutes(5));
    assert!(h.events.events().iter().any(|e| matches!(
        e.kind,
        EventKind::LimiterTripped {
            budget: BudgetKind::WrongCodesAnonymous,
            ..
        }
    )));
    // Signed in, the same person enters the code.
    let alice = Subject::new("alice");
    let signed_in = entry("ip:fresh").signed_in(&alice);
    assert!(
        h.grant
            .verify(c.user_code.display(), &signed_in)
            .await
            .is_ok()
    );
    // Signed-in guessing is bounded by the account's own budget.
    for _ in 0..3 {
        assert!(matches!(
            h.grant.verify(wrong, &signed_in).await,
            Err(VerificationError::NotFound)
        ));
    }
    assert!(matches!(
        h.grant.verify(wrong, &signed_in).await,
        Err(VerificationError::TooManyAttempts { .. })
    ));
    // Bob, signed in on the same address, is not touched by Alice's budget.
    let bob = entry("ip:other").signed_in(&Subject::new("bob"));
    assert!(h.grant.verify(c.user_code.display(), &bob).await.is_ok());
    // When the window ends, anonymous entry is back.
    h.advance(300);
    assert!(
        h.grant
            .verify(c.user_code.display(), &entry("ip:fresh"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn right_codes_do_not_spend_the_anonymous_budget() {
    let h = only(Budgets {
        wrong_codes_anonymous: Some(Budget {
            attempts: 2,
            window: Duration::minutes(5),
        }),
        ..none()
    });
    let c = h.start("client_id=tv-app").await;
    for i in 0..20 {
        assert!(
            h.grant
                .verify(c.user_code.display(), &entry(&format!("k{i}")))
                .await
                .is_ok()
        );
    }
}

#[tokio::test]
async fn code_entry_from_an_address_is_keyed_by_its_ipv6_64() {
    let h = only(Budgets {
        wrong_codes_per_key: Budget {
            attempts: 2,
            window: Duration::minutes(5),
        },
        ..none()
    });
    let c = h.start("client_id=tv-app").await;
    let wrong = wrong_code(c.user_code.canonical());
    let at = |ip: &str| CodeEntry::from_address(ip.parse().unwrap());
    // Two addresses in one /64 share a budget: a subscriber cannot multiply
    // it by its 2^64 addresses.
    assert!(matches!(
        h.grant.verify(wrong, &at("2001:db8:5:6::1")).await,
        Err(VerificationError::NotFound)
    ));
    assert!(matches!(
        h.grant.verify(wrong, &at("2001:db8:5:6::2")).await,
        Err(VerificationError::NotFound)
    ));
    assert!(matches!(
        h.grant.verify(wrong, &at("2001:db8:5:6:ffff::3")).await,
        Err(VerificationError::TooManyAttempts { .. })
    ));
    // Another /64 is another budget.
    assert!(matches!(
        h.grant.verify(wrong, &at("2001:db8:5:7::1")).await,
        Err(VerificationError::NotFound)
    ));
}

#[tokio::test]
async fn device_authorizations_per_source_network() {
    let h = only(Budgets {
        authorizations_per_source: Some(Budget {
            attempts: 3,
            window: Duration::minutes(10),
        }),
        ..none()
    });
    for _ in 0..3 {
        start(&h, from("2001:db8:1:2::10")).await.unwrap();
    }
    // Another address in the same /64 shares the budget.
    let e = start(&h, from("2001:db8:1:2::99")).await.unwrap_err();
    let OAuthError::RateLimited { retry_after } = e else {
        panic!("{e:?}")
    };
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::minutes(10));
    let http = OAuthError::RateLimited { retry_after }.to_http();
    assert_eq!(http.status, 429);
    assert!(http.header("retry-after").is_some());
    assert_eq!(e_code(&http.body), "temporarily_unavailable");
    // Another network, and a request with no known address, are unaffected.
    start(&h, from("2001:db8:1:3::10")).await.unwrap();
    start(&h, RequestContext::default()).await.unwrap();
    h.advance(600);
    start(&h, from("2001:db8:1:2::10")).await.unwrap();
}

#[tokio::test]
async fn an_ipv6_48_cannot_multiply_the_source_budget_by_its_64s() {
    let h = only(Budgets {
        authorizations_per_source: Some(Budget {
            attempts: 2,
            window: Duration::minutes(10),
        }),
        authorizations_per_wide_source: Some(Budget {
            attempts: 5,
            window: Duration::minutes(10),
        }),
        ..none()
    });
    // Five /64s of one /48, one request each: within both budgets.
    for i in 0..5 {
        start(&h, from(&format!("2001:db8:9:{i}::1")))
            .await
            .unwrap();
    }
    // A sixth /64 of the same /48 is refused; another /48 is not, nor IPv4.
    assert!(matches!(
        start(&h, from("2001:db8:9:77::1")).await,
        Err(OAuthError::RateLimited { .. })
    ));
    start(&h, from("2001:db8:a:77::1")).await.unwrap();
    start(&h, from("192.0.2.50")).await.unwrap();
    assert!(h.events.events().iter().any(|e| matches!(
        e.kind,
        EventKind::LimiterTripped {
            budget: BudgetKind::AuthorizationsPerWideSource,
            ..
        }
    )));
}

#[tokio::test]
async fn client_budgets_count_confidential_clients_only() {
    let h = only(Budgets {
        authorizations_per_client: Some(Budget {
            attempts: 4,
            window: Duration::minutes(1),
        }),
        pending_per_client: Some(4),
        ..none()
    });
    for i in 0..4 {
        start_printer(&h, from(&format!("198.51.100.{i}")))
            .await
            .unwrap();
    }
    let e = start_printer(&h, from("198.51.100.200")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::TemporarilyUnavailable);
    // A public client's id is everyone's to name: no one can spend its budget
    // and refuse all its devices. Fifty flows from fifty homes all pass.
    for i in 0..50 {
        start(&h, from(&format!("203.0.113.{i}"))).await.unwrap();
    }
}

#[tokio::test]
async fn pending_requests_per_client_are_given_back_on_decision() {
    let h = only(Budgets {
        pending_per_client: Some(2),
        ..none()
    });
    let a = start_printer(&h, RequestContext::default()).await.unwrap();
    let b = start_printer(&h, RequestContext::default()).await.unwrap();
    assert!(matches!(
        start_printer(&h, RequestContext::default()).await,
        Err(OAuthError::RateLimited { .. })
    ));
    // Approving one and denying the other frees both places.
    h.approve(&a, "alice").await;
    let t = h
        .grant
        .verify(b.user_code.display(), &entry("k"))
        .await
        .unwrap()
        .ticket;
    h.grant.deny(&t).await.unwrap();
    start_printer(&h, RequestContext::default()).await.unwrap();
    let r = start_printer(&h, RequestContext::default()).await;
    assert!(r.is_ok(), "{:?}", r.err());
    assert!(start_printer(&h, RequestContext::default()).await.is_err());
}

#[tokio::test]
async fn the_pending_ceiling_answers_503_and_is_given_back_on_decision() {
    let h = only(Budgets {
        pending_total: Some(3),
        ..none()
    });
    let a = start(&h, from("192.0.2.1")).await.unwrap();
    start(&h, from("192.0.2.2")).await.unwrap();
    start_printer(&h, from("192.0.2.3")).await.unwrap();
    let e = start(&h, from("192.0.2.4")).await.unwrap_err();
    let OAuthError::Overloaded { retry_after } = e else {
        panic!("{e:?}")
    };
    let http = OAuthError::Overloaded { retry_after }.to_http();
    assert_eq!(http.status, 503);
    assert!(http.header("retry-after").is_some());
    assert_eq!(e_code(&http.body), "temporarily_unavailable");
    // A decision gives its place back, even in a later clock second.
    h.advance(30);
    h.approve(&a, "alice").await;
    start(&h, from("192.0.2.4")).await.unwrap();
}

#[tokio::test]
async fn a_refused_request_is_not_charged_to_earlier_layers() {
    // Source budget 5, client budget 1: after the client budget is spent, the
    // source's refused attempts must not spend the source budget.
    let h = only(Budgets {
        authorizations_per_source: Some(Budget {
            attempts: 5,
            window: Duration::minutes(10),
        }),
        authorizations_per_client: Some(Budget {
            attempts: 1,
            window: Duration::minutes(1),
        }),
        ..none()
    });
    start_printer(&h, from("192.0.2.1")).await.unwrap();
    for _ in 0..10 {
        assert!(start_printer(&h, from("192.0.2.1")).await.is_err());
    }
    h.advance(60);
    // The source has spent only 1 of 5: four more pass, one per minute.
    for _ in 0..4 {
        start_printer(&h, from("192.0.2.1")).await.unwrap();
        h.advance(60);
    }
    assert!(start_printer(&h, from("192.0.2.1")).await.is_err());
}

#[tokio::test]
async fn default_budgets_tolerate_nat_and_ci_and_name_no_public_identifier() {
    let b = Budgets::default();
    assert_eq!(b.wrong_codes_per_key.attempts, 20);
    assert_eq!(b.wrong_codes_per_account.attempts, 5);
    assert!(b.wrong_codes_anonymous.is_some());
    assert!(b.authorizations_per_source.is_some());
    assert!(b.authorizations_per_wide_source.is_some());
    assert!(b.pending_total.is_some());
    // Nothing keyed on a client id by default.
    assert!(b.authorizations_per_client.is_none());
    assert!(b.pending_per_client.is_none());
    // A CI pipeline's 100 flows from one address, and then some: 120 pass in
    // one window, the 121st is refused.
    let h = harness_with(config());
    for i in 0..120 {
        let r = start(&h, from("203.0.113.9")).await;
        assert!(r.is_ok(), "flow {i}: {:?}", r.err());
    }
    assert!(matches!(
        start(&h, from("203.0.113.9")).await,
        Err(OAuthError::RateLimited { .. })
    ));
}

#[tokio::test]
async fn tripped_events_carry_a_keyed_digest_never_the_key() {
    let h = only(Budgets {
        wrong_codes_per_key: Budget {
            attempts: 1,
            window: Duration::minutes(5),
        },
        ..none()
    });
    let c = h.start("client_id=tv-app").await;
    let wrong = wrong_code(c.user_code.canonical());
    let session = entry("session-4f1c9b7e2d");
    let _ = h.grant.verify(wrong, &session).await;
    let _ = h.grant.verify(wrong, &session).await;
    let tripped: Vec<_> = h
        .events
        .events()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::LimiterTripped { .. }))
        .collect();
    assert_eq!(tripped.len(), 1);
    let shown = format!("{tripped:?} {session:?}");
    assert!(!shown.contains("4f1c9b7e2d"), "{shown}");
    assert!(shown.contains("WrongCodesPerKey"), "{shown}");
    // The digest is keyed: another deployment's key gives another digest, so a
    // table of addresses' hashes does not reverse it.
    let other = harness_with(
        device_grant::Config::builder(
            "https://as.example/device",
            device_grant::UserCodeKey::new(&[7; 32]).unwrap(),
        )
        .budgets(Budgets {
            wrong_codes_per_key: Budget {
                attempts: 1,
                window: Duration::minutes(5),
            },
            ..none()
        }),
    );
    let c2 = other.start("client_id=tv-app").await;
    let wrong2 = wrong_code(c2.user_code.canonical());
    let _ = other.grant.verify(wrong2, &session).await;
    let _ = other.grant.verify(wrong2, &session).await;
    let digest = |events: Vec<Event>| {
        events.into_iter().find_map(|e| match e.kind {
            EventKind::LimiterTripped { key, .. } => Some(key),
            _ => None,
        })
    };
    assert_ne!(digest(h.events.events()), digest(other.events.events()));
}

/// A limiter that fails every acquire of one key family, and counts the
/// units outstanding.
struct Flaky {
    inner: MemoryLimiter,
    fail_on: &'static str,
    fail_refunds: AtomicBool,
}

#[async_trait::async_trait]
impl AttemptLimiter for Flaky {
    async fn acquire(
        &self,
        key: &LimiterKey,
        budget: &Budget,
        now: OffsetDateTime,
    ) -> Result<Admission, BackendError> {
        if key.as_str().starts_with(self.fail_on) {
            return Err(BackendError::Timeout);
        }
        self.inner.acquire(key, budget, now).await
    }
    async fn refund(
        &self,
        key: &LimiterKey,
        budget: &Budget,
        now: OffsetDateTime,
    ) -> Result<(), BackendError> {
        if self.fail_refunds.load(Ordering::SeqCst) {
            return Err(BackendError::Timeout);
        }
        self.inner.refund(key, budget, now).await
    }
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError> {
        self.inner.purge_expired(now).await
    }
}

/// A store whose look-ups and inserts fail while `down` is set.
#[derive(Default)]
struct Outage {
    inner: MemoryStore,
    down: AtomicBool,
    inserts: AtomicUsize,
}

impl Outage {
    fn check(&self) -> Result<(), BackendError> {
        if self.down.load(Ordering::SeqCst) {
            Err(BackendError::Unavailable("down".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl Store for Outage {
    async fn insert(
        &self,
        record: &DeviceAuthorization,
        now: OffsetDateTime,
    ) -> Result<Inserted, BackendError> {
        self.check()?;
        self.inserts.fetch_add(1, Ordering::SeqCst);
        self.inner.insert(record, now).await
    }
    async fn by_device_code(
        &self,
        hash: &DeviceCodeHash,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        self.check()?;
        self.inner.by_device_code(hash).await
    }
    async fn by_user_code(
        &self,
        hash: &UserCodeHash,
        now: OffsetDateTime,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        self.check()?;
        self.inner.by_user_code(hash, now).await
    }
    async fn compare_and_set(
        &self,
        expected_version: u64,
        next: &DeviceAuthorization,
    ) -> Result<bool, BackendError> {
        self.check()?;
        self.inner.compare_and_set(expected_version, next).await
    }
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError> {
        self.inner.purge_expired(now).await
    }
}

fn grant_on(
    budgets: Budgets,
    store: Arc<dyn Store>,
    limiter: Arc<dyn AttemptLimiter>,
) -> (DeviceGrant, Arc<RecordedEvents>) {
    let events = Arc::new(RecordedEvents::default());
    let grant = DeviceGrant::builder(
        config().budgets(budgets).build().unwrap(),
        Arc::new(common::clients()),
        Arc::new(common::CountingIssuer(AtomicUsize::new(0))),
    )
    .store(store)
    .limiter(limiter)
    .clock(Arc::new(ManualClock::default()))
    .events(events.clone())
    .build();
    (grant, events)
}

#[tokio::test]
async fn a_limiter_error_on_a_later_layer_refunds_the_earlier_ones() {
    let budgets = Budgets {
        authorizations_per_source: Some(Budget {
            attempts: 2,
            window: Duration::minutes(10),
        }),
        pending_total: Some(100),
        ..none()
    };
    let limiter = Arc::new(Flaky {
        inner: MemoryLimiter::new(),
        fail_on: "device-grant:pending",
        fail_refunds: AtomicBool::new(false),
    });
    let (grant, _) = grant_on(budgets, Arc::new(MemoryStore::new()), limiter.clone());
    let ask = || {
        grant.device_authorization(
            EndpointRequest::form(b"client_id=tv-app"),
            from("192.0.2.7"),
        )
    };
    // The ceiling's counter times out five times: each is an error…
    for _ in 0..5 {
        assert!(matches!(ask().await, Err(OAuthError::Backend(_))));
    }
    // …and none of them spent the source's budget of 2.
    let source = LimiterKey::new("device-grant:source:192.0.2.7");
    let budget = budgets.authorizations_per_source.unwrap();
    // The grant's clock: a fresh manual clock, which starts where this one does.
    let at = device_grant::Clock::now(&ManualClock::default());
    assert_eq!(
        limiter.inner.acquire(&source, &budget, at).await.unwrap(),
        Admission::Admitted
    );
    assert_eq!(
        limiter.inner.acquire(&source, &budget, at).await.unwrap(),
        Admission::Admitted
    );
}

#[tokio::test]
async fn a_store_error_after_spending_charges_no_wrong_code() {
    let budgets = Budgets {
        wrong_codes_per_key: Budget {
            attempts: 2,
            window: Duration::minutes(5),
        },
        authorizations_per_source: Some(Budget {
            attempts: 2,
            window: Duration::minutes(10),
        }),
        ..none()
    };
    let store = Arc::new(Outage::default());
    let (grant, _) = grant_on(budgets, store.clone(), Arc::new(MemoryLimiter::new()));
    let codes = grant
        .device_authorization(
            EndpointRequest::form(b"client_id=tv-app"),
            from("192.0.2.8"),
        )
        .await
        .unwrap();
    let person = entry("ip:192.0.2.99");
    store.down.store(true, Ordering::SeqCst);
    // Ten look-ups fail on the store: an error each, and no wrong code charged.
    for _ in 0..10 {
        assert!(matches!(
            grant.verify(codes.user_code.display(), &person).await,
            Err(VerificationError::Backend(_))
        ));
        assert!(matches!(
            grant
                .device_authorization(
                    EndpointRequest::form(b"client_id=tv-app"),
                    from("192.0.2.8")
                )
                .await,
            Err(OAuthError::Backend(_))
        ));
    }
    store.down.store(false, Ordering::SeqCst);
    // The person's budget of 2 is whole: two wrong codes are still looked up.
    let wrong = wrong_code(codes.user_code.canonical());
    for _ in 0..2 {
        assert!(matches!(
            grant.verify(wrong, &person).await,
            Err(VerificationError::NotFound)
        ));
    }
    // The source's budget of 2 lost nothing to the failed inserts: one more
    // device authorization passes (1 spent before the outage).
    grant
        .device_authorization(
            EndpointRequest::form(b"client_id=tv-app"),
            from("192.0.2.8"),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failing_refund_never_fails_a_right_code() {
    let budgets = Budgets {
        wrong_codes_per_key: Budget {
            attempts: 5,
            window: Duration::minutes(5),
        },
        ..none()
    };
    let limiter = Arc::new(Flaky {
        inner: MemoryLimiter::new(),
        fail_on: "nothing-fails-on-acquire",
        fail_refunds: AtomicBool::new(true),
    });
    let (grant, _) = grant_on(budgets, Arc::new(MemoryStore::new()), limiter);
    let codes = grant
        .device_authorization(
            EndpointRequest::form(b"client_id=tv-app"),
            from("192.0.2.9"),
        )
        .await
        .unwrap();
    let found = grant.verify(codes.user_code.display(), &entry("k")).await;
    assert!(found.is_ok(), "{:?}", found.err());
}
