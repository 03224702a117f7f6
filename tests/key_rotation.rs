//! User-code key rotation: a rolling deploy from key K1 to key K2 over one
//! shared store and limiter never drops a live code, costs a wrong code one
//! attempt, and never lets one typed code name two live requests.

use std::sync::{Arc, Mutex};

use device_grant::store::{DeviceAuthorization, DeviceCodeHash, Inserted, Store, UserCodeHash};
use device_grant::{
    ApprovedGrant, AuthMethod, AuthorizationId, BackendError, Budget, Budgets, Client, CodeEntry,
    Config, ConfigBuilder, ConfigError, DeviceAuthorizationResponse, DeviceCode, DeviceGrant,
    EndpointRequest, Interval, ManualClock, MemoryLimiter, MemoryStore, OAuthError, RequestContext,
    RequestDetails, ScopeSet, Subject, TokenIssuer, TokenResponse, UserCode, UserCodeKey,
    UserCodePolicy, VerificationError,
};
use time::{Duration, OffsetDateTime};

const K1: [u8; 32] = [1; 32];
const K2: [u8; 32] = [2; 32];

struct Issuer;
#[async_trait::async_trait]
impl TokenIssuer for Issuer {
    async fn issue(&self, grant: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
        Ok(TokenResponse::bearer(format!(
            "at-{}",
            grant.approval.subject.as_str()
        )))
    }
}

fn key(bytes: &[u8; 32]) -> UserCodeKey {
    UserCodeKey::new(bytes).unwrap()
}

fn config(current: &[u8; 32]) -> ConfigBuilder {
    // Two wrong codes per key and no deployment-wide layer: the attempt count
    // is read off the third wrong code.
    let budgets = Budgets {
        wrong_codes_per_key: Budget {
            attempts: 2,
            window: Duration::minutes(5),
        },
        wrong_codes_anonymous: None,
        ..Budgets::default()
    };
    Config::builder("https://as.example/device", key(current)).budgets(budgets)
}

/// One instance of a deployment: its own configuration, the shared backends.
fn instance(
    config: Config,
    store: Arc<dyn Store>,
    limiter: Arc<MemoryLimiter>,
    clock: Arc<ManualClock>,
) -> DeviceGrant {
    let mut tv = Client::for_device_grant("tv-app", vec![AuthMethod::None]);
    tv.allowed_scopes = ScopeSet::parse("profile").unwrap();
    DeviceGrant::builder(
        config,
        Arc::new(device_grant::StaticClients::new().with_public(tv)),
        Arc::new(Issuer),
    )
    .store(store)
    .limiter(limiter)
    .clock(clock)
    .build()
}

/// Mid-window, so that no budget window ends during a test.
fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        OffsetDateTime::from_unix_timestamp(1_700_000_100).unwrap(),
    ))
}

struct Deploy {
    /// Not yet rolled: K1 only.
    a: DeviceGrant,
    /// Rolled: K2, with K1 still accepted.
    b: DeviceGrant,
}

fn rolling_deploy(store: Arc<dyn Store>) -> Deploy {
    let limiter = Arc::new(MemoryLimiter::new());
    let clock = clock();
    let a = instance(
        config(&K1).build().unwrap(),
        store.clone(),
        limiter.clone(),
        clock.clone(),
    );
    let b = instance(
        config(&K2)
            .previous_user_code_keys(vec![key(&K1)])
            .build()
            .unwrap(),
        store,
        limiter,
        clock,
    );
    Deploy { a, b }
}

async fn start(grant: &DeviceGrant) -> DeviceAuthorizationResponse {
    grant
        .device_authorization(
            EndpointRequest::form(b"client_id=tv-app&scope=profile"),
            RequestContext::default(),
        )
        .await
        .unwrap()
}

async fn poll(
    grant: &DeviceGrant,
    codes: &DeviceAuthorizationResponse,
) -> Result<String, OAuthError> {
    let body = format!(
        "grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=tv-app&device_code={}",
        codes.device_code.secret()
    );
    grant
        .token(EndpointRequest::form(body.as_bytes()))
        .await
        .map(|t| t.access_token.secret().to_owned())
}

fn person() -> CodeEntry {
    CodeEntry::from_address("198.51.100.7".parse().unwrap())
}

async fn approve(grant: &DeviceGrant, user_code: &UserCode) {
    let found = grant.verify(user_code.display(), &person()).await.unwrap();
    grant
        .approve(
            &found.ticket,
            device_grant::Approve::as_requested(Subject::new("alice"), None),
        )
        .await
        .unwrap();
}

/// A well-formed code that names no request.
fn wrong_code(live: &[&UserCode]) -> UserCode {
    let policy = UserCodePolicy::default();
    loop {
        let code = policy.generate();
        if live.iter().all(|l| l.canonical() != code.canonical()) {
            return code;
        }
    }
}

#[tokio::test]
async fn a_code_issued_before_the_roll_is_approved_after_it() {
    let d = rolling_deploy(Arc::new(MemoryStore::new()));
    let codes = start(&d.a).await;
    assert!(matches!(
        poll(&d.a, &codes).await,
        Err(OAuthError::AuthorizationPending)
    ));
    // Entered and approved on the rolled instance, under the previous key…
    approve(&d.b, &codes.user_code).await;
    // …and redeemed on the instance that issued it.
    assert_eq!(poll(&d.a, &codes).await.unwrap(), "at-alice");
}

#[tokio::test]
async fn a_denial_on_the_rolled_instance_holds_an_old_key_code() {
    let d = rolling_deploy(Arc::new(MemoryStore::new()));
    let codes = start(&d.a).await;
    let found =
        d.b.verify(codes.user_code.display(), &person())
            .await
            .unwrap();
    d.b.deny(&found.ticket).await.unwrap();
    assert!(matches!(
        poll(&d.a, &codes).await,
        Err(OAuthError::AccessDenied)
    ));
}

#[tokio::test]
async fn new_codes_are_hashed_with_the_current_key() {
    let d = rolling_deploy(Arc::new(MemoryStore::new()));
    let codes = start(&d.b).await;
    // The instance that does not know K2 cannot find it: it was stored under K2.
    let e =
        d.a.verify(codes.user_code.display(), &person())
            .await
            .unwrap_err();
    assert!(matches!(e, VerificationError::NotFound), "{e:?}");
    approve(&d.b, &codes.user_code).await;
    assert_eq!(poll(&d.b, &codes).await.unwrap(), "at-alice");
}

#[tokio::test]
async fn a_wrong_code_costs_one_attempt_whatever_the_number_of_keys() {
    let d = rolling_deploy(Arc::new(MemoryStore::new()));
    let old = start(&d.a).await;
    let wrong = wrong_code(&[&old.user_code]);
    // Budget 2: one wrong code…
    let e = d.b.verify(wrong.display(), &person()).await.unwrap_err();
    assert!(matches!(e, VerificationError::NotFound), "{e:?}");
    // …a right one under the previous key, refunded…
    d.b.verify(old.user_code.display(), &person())
        .await
        .unwrap();
    // …a second wrong code, still admitted: each look-up spent one attempt…
    let e = d.b.verify(wrong.display(), &person()).await.unwrap_err();
    assert!(matches!(e, VerificationError::NotFound), "{e:?}");
    // …and the budget is now spent, on both instances (the limiter is shared).
    for grant in [&d.b, &d.a] {
        let e = grant.verify(wrong.display(), &person()).await.unwrap_err();
        assert!(
            matches!(e, VerificationError::TooManyAttempts { .. }),
            "{e:?}"
        );
    }
}

/// A memory store that records the user-code hashes it is asked about and
/// inserts, and can pretend that the first hash it is asked about before an
/// insert belongs to a live request.
struct Recording {
    inner: MemoryStore,
    probed: Mutex<Vec<UserCodeHash>>,
    inserted: Mutex<Vec<UserCodeHash>>,
    pretend_first_probe_live: bool,
}

impl Recording {
    fn new(pretend_first_probe_live: bool) -> Self {
        Self {
            inner: MemoryStore::new(),
            probed: Mutex::default(),
            inserted: Mutex::default(),
            pretend_first_probe_live,
        }
    }
}

fn pending_under(hash: UserCodeHash, now: OffsetDateTime) -> DeviceAuthorization {
    DeviceAuthorization::new(
        AuthorizationId::generate(),
        DeviceCode::generate().hash(),
        hash,
        RequestDetails {
            client_id: device_grant::ClientId::new("tv-app"),
            scopes: ScopeSet::parse("profile").unwrap(),
            created_at: now,
            expires_at: now + Duration::minutes(10),
            context: RequestContext::default(),
            code_challenge: None,
            authorization_details: None,
            dpop_jkt: None,
        },
        Interval::DEFAULT,
        Duration::minutes(10),
    )
}

#[async_trait::async_trait]
impl Store for Recording {
    async fn insert(
        &self,
        record: &DeviceAuthorization,
        now: OffsetDateTime,
    ) -> Result<Inserted, BackendError> {
        self.inserted.lock().unwrap().push(record.user_code_hash);
        self.inner.insert(record, now).await
    }
    async fn by_device_code(
        &self,
        hash: &DeviceCodeHash,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        self.inner.by_device_code(hash).await
    }
    async fn by_user_code(
        &self,
        hash: &UserCodeHash,
        now: OffsetDateTime,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        let first = {
            let mut probed = self.probed.lock().unwrap();
            probed.push(*hash);
            probed.len() == 1 && self.inserted.lock().unwrap().is_empty()
        };
        if first && self.pretend_first_probe_live {
            return Ok(Some(pending_under(*hash, now)));
        }
        self.inner.by_user_code(hash, now).await
    }
    async fn compare_and_set(
        &self,
        expected_version: u64,
        next: &DeviceAuthorization,
    ) -> Result<bool, BackendError> {
        self.inner.compare_and_set(expected_version, next).await
    }
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError> {
        self.inner.purge_expired(now).await
    }
}

#[tokio::test]
async fn a_new_code_is_checked_free_under_every_previous_key() {
    let store = Arc::new(Recording::new(false));
    let d = rolling_deploy(store.clone());
    let codes = start(&d.b).await;
    let under_k1 = key(&K1).hash(&codes.user_code);
    let under_k2 = key(&K2).hash(&codes.user_code);
    assert_eq!(*store.probed.lock().unwrap(), vec![under_k1]);
    assert_eq!(*store.inserted.lock().unwrap(), vec![under_k2]);
    // An instance without previous keys reads nothing before its insert.
    store.probed.lock().unwrap().clear();
    start(&d.a).await;
    assert!(store.probed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_code_live_under_a_previous_key_is_drawn_again() {
    let store = Arc::new(Recording::new(true));
    let d = rolling_deploy(store.clone());
    let codes = start(&d.b).await;
    let probed = store.probed.lock().unwrap().clone();
    assert_eq!(probed.len(), 2, "{probed:?}");
    // The first draw was live under K1: it was never stored; the second was.
    assert_ne!(probed[0], probed[1]);
    assert_eq!(probed[1], key(&K1).hash(&codes.user_code));
    assert_eq!(
        *store.inserted.lock().unwrap(),
        vec![key(&K2).hash(&codes.user_code)]
    );
}

#[tokio::test]
async fn a_code_live_under_two_keys_names_no_request() {
    // Only an instance that does not know the other key can make this: an
    // old instance that drew, under K1, a code live under K2.
    let store = Arc::new(MemoryStore::new());
    let d = rolling_deploy(store.clone());
    let now = OffsetDateTime::from_unix_timestamp(1_700_000_100).unwrap();
    let code = UserCodePolicy::default().generate();
    for k in [&K1, &K2] {
        let inserted = store
            .insert(&pending_under(key(k).hash(&code), now), now)
            .await
            .unwrap();
        assert_eq!(inserted, Inserted::Stored);
    }
    // The rolled instance cannot tell which request the person means: it
    // shows neither.
    let e = d.b.verify(code.display(), &person()).await.unwrap_err();
    assert!(matches!(e, VerificationError::NotFound), "{e:?}");
    // The old instance knows one of them only.
    assert!(d.a.verify(code.display(), &person()).await.is_ok());
}

#[test]
fn previous_keys_are_validated() {
    let too_many = (3..8).map(|b| key(&[b; 32])).collect();
    assert_eq!(
        config(&K2).previous_user_code_keys(too_many).build().err(),
        Some(ConfigError::PreviousUserCodeKeys)
    );
    // The current key again, or one key twice, is a configuration mistake.
    assert_eq!(
        config(&K2)
            .previous_user_code_keys(vec![key(&K2)])
            .build()
            .err(),
        Some(ConfigError::PreviousUserCodeKeys)
    );
    assert_eq!(
        config(&K2)
            .previous_user_code_keys(vec![key(&K1), key(&K1)])
            .build()
            .err(),
        Some(ConfigError::PreviousUserCodeKeys)
    );
    let four = (3..7).map(|b| key(&[b; 32])).collect();
    assert!(config(&K2).previous_user_code_keys(four).build().is_ok());
}
