//! The cost of a pending poll on each store: `token()` through `DeviceGrant`,
//! answered `authorization_pending`, side by side in one run: judged by the
//! store in one step (`Store::poll`: Redis's poll script, PostgreSQL's poll
//! statement) and judged by the crate (a read, then a compare-and-set: what
//! a store that keeps `Store::poll`'s default does).
//!
//! ```text
//! source scripts/setup/10-services.sh
//! cargo run --release --example store_load
//! ```
//!
//! Reads `DEVICE_GRANT_REDIS_URL`, `DEVICE_GRANT_REDIS_CLUSTER_URL` and
//! `DEVICE_GRANT_POSTGRES_URL`; a store
//! whose variable is unset (or whose feature is off) is left out. Prints the
//! median and 99th-percentile latency of sequential polls and the throughput
//! of 32 concurrent pollers, as a Markdown table. Bounded: a few seconds per
//! store, loopback only.

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use device_grant::store::Store;
use device_grant::{
    ApprovedGrant, AuthMethod, BackendError, Client, Config, DeviceAuthorizationResponse,
    DeviceGrant, EndpointRequest, ManualClock, RequestContext, ScopeSet, StaticClients,
    TokenIssuer, TokenResponse, UserCodeKey,
};
use time::{Duration, OffsetDateTime};

/// Codes polled one after another, per round, for latency.
const LATENCY_CODES: usize = 256;
/// Codes polled by the concurrent pollers, per round, for throughput.
const THROUGHPUT_CODES: usize = 4096;
const ROUNDS: usize = 8;
const POLLERS: usize = 32;

/// A store with `Store::poll`'s default: every poll is a read, then a
/// compare-and-set.
struct ReadThenWrite(Arc<dyn Store>);

#[async_trait::async_trait]
impl Store for ReadThenWrite {
    async fn insert(
        &self,
        record: &device_grant::store::DeviceAuthorization,
        now: OffsetDateTime,
    ) -> Result<device_grant::store::Inserted, BackendError> {
        self.0.insert(record, now).await
    }

    async fn by_device_code(
        &self,
        hash: &device_grant::store::DeviceCodeHash,
    ) -> Result<Option<device_grant::store::DeviceAuthorization>, BackendError> {
        self.0.by_device_code(hash).await
    }

    async fn by_user_code(
        &self,
        hash: &device_grant::store::UserCodeHash,
        now: OffsetDateTime,
    ) -> Result<Option<device_grant::store::DeviceAuthorization>, BackendError> {
        self.0.by_user_code(hash, now).await
    }

    async fn compare_and_set(
        &self,
        expected_version: u64,
        next: &device_grant::store::DeviceAuthorization,
    ) -> Result<bool, BackendError> {
        self.0.compare_and_set(expected_version, next).await
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError> {
        self.0.purge_expired(now).await
    }
}

/// Both ways of polling one store, alternated twice so that drift in the
/// machine's load touches both alike; each row keeps the better run.
async fn compare(name: &str, store: Arc<dyn Store>) {
    let mut judged = Vec::new();
    let mut read_write = Vec::new();
    for _ in 0..2 {
        judged.push(measure(store.clone()).await);
        read_write.push(measure(Arc::new(ReadThenWrite(store.clone()))).await);
    }
    let best = |runs: Vec<Measured>| {
        runs.into_iter()
            .min_by(|a, b| a.median.cmp(&b.median))
            .expect("two runs")
    };
    let (judged, read_write) = (best(judged), best(read_write));
    row(&format!("{name}, read + compare-and-set"), &read_write);
    row(&format!("{name}, judged by the store"), &judged);
    println!(
        "| {name}: ratio | {:.2}× | {:.2}× | {:.2}× |",
        read_write.median.as_secs_f64() / judged.median.as_secs_f64(),
        read_write.p99.as_secs_f64() / judged.p99.as_secs_f64(),
        judged.per_second / read_write.per_second
    );
}

struct NoTokens;

#[async_trait::async_trait]
impl TokenIssuer for NoTokens {
    async fn issue(&self, _: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
        Err(BackendError::other("the load only polls pending codes"))
    }
}

fn grant(store: Arc<dyn Store>, clock: Arc<ManualClock>) -> DeviceGrant {
    let mut tv = Client::for_device_grant("tv-app", vec![AuthMethod::None]);
    tv.allowed_scopes = ScopeSet::parse("profile").unwrap();
    let config = Config::builder(
        "https://as.example/device",
        UserCodeKey::new(&[7; 32]).unwrap(),
    )
    .lifetime(Duration::hours(1))
    .build()
    .unwrap();
    DeviceGrant::builder(
        config,
        Arc::new(StaticClients::new().with_public(tv)),
        Arc::new(NoTokens),
    )
    .store(store)
    .clock(clock)
    .build()
}

async fn ask(grant: &DeviceGrant, n: usize) -> Vec<String> {
    let mut bodies = Vec::with_capacity(n);
    for _ in 0..n {
        let codes: DeviceAuthorizationResponse = grant
            .device_authorization(
                EndpointRequest::form(b"client_id=tv-app"),
                RequestContext::default(),
            )
            .await
            .expect("device authorization");
        bodies.push(format!(
            "grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=tv-app&device_code={}",
            codes.device_code.secret()
        ));
    }
    bodies
}

async fn poll(grant: &DeviceGrant, body: &str) {
    match grant.token(EndpointRequest::form(body.as_bytes())).await {
        Err(device_grant::OAuthError::AuthorizationPending) => {}
        other => panic!("expected authorization_pending, got {:?}", other.err()),
    }
}

struct Measured {
    median: StdDuration,
    p99: StdDuration,
    per_second: f64,
}

async fn measure(store: Arc<dyn Store>) -> Measured {
    // A clock at the real time (Redis TTLs follow the server's clock), moved
    // past the 5 s interval between rounds so that every poll is on time.
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let grant = grant(store, clock.clone());

    let codes = ask(&grant, LATENCY_CODES).await;
    for body in &codes {
        poll(&grant, body).await; // warm-up: connections, prepared statements
    }
    let mut latencies = Vec::with_capacity(ROUNDS * LATENCY_CODES);
    for _ in 0..ROUNDS {
        clock.advance(Duration::seconds(6));
        for body in &codes {
            let start = Instant::now();
            poll(&grant, body).await;
            latencies.push(start.elapsed());
        }
    }
    latencies.sort();

    let codes = Arc::new(ask(&grant, THROUGHPUT_CODES).await);
    let mut elapsed = StdDuration::ZERO;
    for round in 0..=ROUNDS {
        clock.advance(Duration::seconds(6));
        let start = Instant::now();
        let tasks: Vec<_> = (0..POLLERS)
            .map(|p| {
                let (grant, codes) = (grant.clone(), codes.clone());
                tokio::spawn(async move {
                    for body in codes.iter().skip(p).step_by(POLLERS) {
                        poll(&grant, body).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("a poller panicked");
        }
        if round > 0 {
            elapsed += start.elapsed(); // round 0 warms up
        }
    }
    Measured {
        median: latencies[latencies.len() / 2],
        p99: latencies[latencies.len() * 99 / 100],
        per_second: (ROUNDS * THROUGHPUT_CODES) as f64 / elapsed.as_secs_f64(),
    }
}

fn row(name: &str, m: &Measured) {
    println!(
        "| {name} | {:.1} µs | {:.1} µs | {:.0} |",
        m.median.as_secs_f64() * 1e6,
        m.p99.as_secs_f64() * 1e6,
        m.per_second
    );
}

#[tokio::main]
async fn main() {
    println!(
        "pending polls through DeviceGrant::token: {ROUNDS}×{LATENCY_CODES} sequential, \
         {ROUNDS}×{THROUGHPUT_CODES} by {POLLERS} concurrent pollers\n"
    );
    println!("| store | median latency | p99 latency | polls/s ({POLLERS} pollers) |");
    println!("| --- | --- | --- | --- |");
    row(
        "memory",
        &measure(Arc::new(device_grant::MemoryStore::new())).await,
    );

    if let Ok(url) = std::env::var("DEVICE_GRANT_REDIS_URL") {
        let prefix = format!("dgload:{}", std::process::id());
        let store = device_grant_redis::RedisStore::connect(&url, prefix)
            .await
            .expect("redis");
        compare("redis", Arc::new(store)).await;
        // Its keys expire by themselves (TTL); nothing to clean up.
    }

    if let Ok(url) = std::env::var("DEVICE_GRANT_REDIS_CLUSTER_URL") {
        let prefix = format!("dgload:{}", std::process::id());
        let store = device_grant_redis::RedisStore::connect(&url, prefix)
            .await
            .expect("redis cluster");
        compare("redis cluster", Arc::new(store)).await;
    }

    if let Ok(url) = std::env::var("DEVICE_GRANT_POSTGRES_URL") {
        use device_grant_postgres::{PostgresOptions, PostgresStore};
        let schema = format!("dgload_{}", std::process::id());
        let store = PostgresStore::connect_with(
            &url,
            PostgresOptions {
                schema: schema.clone(),
                ..PostgresOptions::default()
            },
        )
        .await
        .expect("postgres");
        compare("postgres", Arc::new(store.clone())).await;
        let client = store.pool().get().await.expect("postgres");
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .expect("drop the load's schema");
    }
}
