//! Shared set-up for the bench targets: a grant on the memory store, a cheap
//! clock the benches can move, a pool of live requests, and a poller for futures
//! that never wait (every embedded backend answers at once).
// Each bench target uses a different subset of these helpers.
#![allow(dead_code)]
// Shared by several test binaries: `pub` for them, not for a public API.
#![allow(unreachable_pub)]

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use device_grant::{
    ApprovedGrant, AuthMethod, BackendError, Budget, Budgets, Client, Clock, Config, DeviceGrant,
    EndpointRequest, Interval, MemoryStore, PollingRules, RequestContext, ScopeSet, StaticClients,
    TokenIssuer, TokenResponse, UserCodeKey,
};
use time::{Duration, OffsetDateTime};

/// Runs a future that completes without waiting (the memory backends never wait).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// 2026-01-01T00:00:00Z in Unix nanoseconds.
pub const T0_NS: i64 = 1_767_225_600 * 1_000_000_000;

static START: OnceLock<Instant> = OnceLock::new();

/// A clock the benchmarks can jump (a shared base, read without a lock) that
/// otherwise runs with real monotonic time. Costs about what `SystemClock` does
/// and, unlike `ManualClock`, takes no lock: a shared mutex in the clock would be
/// the bottleneck of the two-thread benchmark.
#[derive(Debug)]
pub struct BenchClock {
    base_ns: AtomicI64,
}

impl BenchClock {
    pub fn new() -> Self {
        START.get_or_init(Instant::now);
        Self {
            base_ns: AtomicI64::new(T0_NS),
        }
    }

    pub fn set(&self, at: Duration) {
        self.base_ns
            .store(T0_NS + at.whole_nanoseconds() as i64, Ordering::Relaxed);
    }
}

impl Clock for BenchClock {
    fn now(&self) -> OffsetDateTime {
        let elapsed = START.get_or_init(Instant::now).elapsed().as_nanos() as i64;
        let ns = self.base_ns.load(Ordering::Relaxed) + elapsed;
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)).expect("in range")
    }
}

struct Issuer;

#[async_trait::async_trait]
impl TokenIssuer for Issuer {
    async fn issue(&self, _grant: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
        Ok(TokenResponse::bearer("bench-access-token"))
    }
}

pub const CLIENT: &str = "tv-app";
pub const SCOPE: &str = "openid profile";
pub const POLL_PREFIX: &str =
    "grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=tv-app&device_code=";
pub const DEVICE_AUTHORIZATION_BODY: &[u8] = b"client_id=tv-app&scope=openid+profile";
/// Base records are created here, so that records made by the benchmarks (at
/// offset 0) expire and can be purged first while the base stays live.
pub const BASE_AT: Duration = Duration::hours(2);
/// After every benchmark-made record's `purge_at`, before any base record expires.
pub const PURGE_AT: Duration = Duration::minutes(100);

pub struct World {
    pub clock: Arc<BenchClock>,
    pub store: Arc<MemoryStore>,
    /// Default polling rules: a second poll within the interval is `slow_down`.
    pub strict: DeviceGrant,
    /// The same store and clock, with a leeway of all but 1 ns of the interval:
    /// every poll after the last is on time, so each one takes the
    /// `authorization_pending` path (read, pace check, compare-and-set write).
    pub lenient: DeviceGrant,
    /// `POLL_PREFIX` + device code, each `poll_len` bytes.
    pub polls: Vec<u8>,
    pub poll_len: usize,
    /// Each base request's user code as a person might type it: lower case,
    /// a space for the dash.
    pub typed: Vec<u8>,
    pub typed_len: usize,
    pub count: usize,
}

fn grant(
    clock: Arc<BenchClock>,
    store: Arc<MemoryStore>,
    clients: Arc<StaticClients>,
    rules: PollingRules,
) -> DeviceGrant {
    let config = Config::builder(
        "https://as.example/device",
        UserCodeKey::new(&[7; 32]).expect("32 bytes"),
    )
    .lifetime(Duration::minutes(30))
    .polling(rules)
    .budgets(unreachable_budgets())
    .build()
    .expect("valid config");
    DeviceGrant::builder(config, clients, Arc::new(Issuer))
        .store(store)
        .clock(clock)
        .build()
}

/// Every budget layer on, as in a deployment, so that their cost is measured,
/// but with limits no benchmark reaches (one client makes a million requests).
fn unreachable_budgets() -> Budgets {
    let huge = Budget {
        attempts: u32::MAX,
        window: Duration::minutes(1),
    };
    Budgets {
        wrong_codes_per_key: huge,
        wrong_codes_per_account: huge,
        wrong_codes_anonymous: Some(huge),
        authorizations_per_client: Some(huge),
        authorizations_per_source: Some(huge),
        authorizations_per_wide_source: Some(huge),
        pending_per_client: Some(u32::MAX),
        pending_total: Some(u32::MAX),
    }
}

impl World {
    /// A grant whose store holds `count` live pending requests.
    pub fn new(count: usize) -> Self {
        let clock = Arc::new(BenchClock::new());
        let store = Arc::new(MemoryStore::new());
        let mut tv = Client::for_device_grant(CLIENT, vec![AuthMethod::None]);
        tv.allowed_scopes = ScopeSet::parse(SCOPE).expect("valid");
        let clients = Arc::new(StaticClients::new().with_public(tv));
        let strict = grant(
            clock.clone(),
            store.clone(),
            clients.clone(),
            PollingRules::default(),
        );
        let lenient = grant(
            clock.clone(),
            store.clone(),
            clients,
            PollingRules {
                leeway: Interval::DEFAULT.duration() - Duration::nanoseconds(1),
                ..PollingRules::default()
            },
        );
        let mut world = Self {
            clock,
            store,
            strict,
            lenient,
            polls: Vec::new(),
            poll_len: POLL_PREFIX.len() + 43,
            typed: Vec::new(),
            typed_len: 9,
            count,
        };
        world.clock.set(BASE_AT);
        world.polls.reserve(count * world.poll_len);
        world.typed.reserve(count * world.typed_len);
        for _ in 0..count {
            let r = world.authorize();
            world.polls.extend_from_slice(POLL_PREFIX.as_bytes());
            world
                .polls
                .extend_from_slice(r.device_code.secret().as_bytes());
            let typed = r.user_code.display().to_ascii_lowercase().replace('-', " ");
            assert_eq!(typed.len(), world.typed_len);
            world.typed.extend_from_slice(typed.as_bytes());
        }
        world.clock.set(Duration::ZERO);
        world
    }

    pub fn authorize(&self) -> device_grant::DeviceAuthorizationResponse {
        block_on(self.strict.device_authorization(
            EndpointRequest::form(DEVICE_AUTHORIZATION_BODY),
            RequestContext::default(),
        ))
        .expect("device authorization")
    }

    pub fn poll_body(&self, i: usize) -> &[u8] {
        let i = i % self.count;
        &self.polls[i * self.poll_len..(i + 1) * self.poll_len]
    }

    pub fn typed_code(&self, i: usize) -> &str {
        let i = i % self.count;
        std::str::from_utf8(&self.typed[i * self.typed_len..(i + 1) * self.typed_len])
            .expect("ascii")
    }

    /// Polls every base request once (out of timing), so that the strict grant's
    /// next poll of each is too early: `slow_down`.
    pub fn prime(&self) {
        for i in 0..self.count {
            let _ = block_on(self.lenient.token(EndpointRequest::form(self.poll_body(i))));
        }
    }

    /// Deletes the records the benchmarks made (not the base), out of timing.
    pub fn purge_bench_records(&self) {
        self.clock.set(PURGE_AT);
        block_on(self.strict.purge_expired()).expect("purge");
        self.clock.set(Duration::ZERO);
    }

    /// A fresh pending request and its verification ticket, out of timing.
    pub fn pending_with_ticket(
        &self,
        key: &device_grant::CodeEntry,
    ) -> (String, device_grant::VerificationTicket) {
        let r = self.authorize();
        let found = block_on(self.strict.verify(r.user_code.display(), key)).expect("verify");
        (
            format!("{POLL_PREFIX}{}", r.device_code.secret()),
            found.ticket,
        )
    }
}

/// The live-record counts to measure at: `DG_BENCH_SIZES` (comma-separated) or
/// 1,000 / 100,000 / 1,000,000; only 1,000 when run as a test
/// (`cargo test --benches`), which runs each benchmark once to see it works.
pub fn sizes() -> Vec<usize> {
    if std::env::var_os("DG_BENCH_SIZES").is_none() && std::env::args().any(|a| a == "--test") {
        return vec![1_000];
    }
    std::env::var("DG_BENCH_SIZES")
        .ok()
        .map(|s| {
            s.split(',')
                .filter_map(|n| n.trim().replace('_', "").parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![1_000, 100_000, 1_000_000])
}

/// Resident set size in bytes, from /proc (Linux).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// CPU time of the calling thread (Linux `CLOCK_THREAD_CPUTIME_ID`).
///
/// The benchmarks measure this instead of wall time because the machine they
/// ran on was shared: time spent preempted by other processes is not ours.
pub fn thread_cpu_time() -> std::time::Duration {
    cpu_time::ThreadTime::now().as_duration()
}

/// Criterion measurement of the benchmarking thread's CPU time.
pub struct CpuTime;

static WALL: criterion::measurement::WallTime = criterion::measurement::WallTime;

impl criterion::measurement::Measurement for CpuTime {
    type Intermediate = std::time::Duration;
    type Value = std::time::Duration;

    fn start(&self) -> Self::Intermediate {
        thread_cpu_time()
    }
    fn end(&self, start: Self::Intermediate) -> Self::Value {
        thread_cpu_time() - start
    }
    fn add(&self, a: &Self::Value, b: &Self::Value) -> Self::Value {
        *a + *b
    }
    fn zero(&self) -> Self::Value {
        std::time::Duration::ZERO
    }
    fn to_f64(&self, v: &Self::Value) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn criterion::measurement::ValueFormatter {
        WALL.formatter()
    }
}
