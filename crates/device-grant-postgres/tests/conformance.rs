//! The PostgreSQL store and limiter pass the storage conformance suite against
//! a real server (`DEVICE_GRANT_POSTGRES_URL`, started by
//! `scripts/setup/10-services.sh`), on one pool and on two pools sharing one
//! schema (two instances).

use std::sync::Arc;

use device_grant::store::{AttemptLimiter, Store};
use device_grant_postgres::{PostgresOptions, PostgresStore};

/// A store in a schema of its own: the checks run in parallel with other
/// tests on one database, and each expects an empty store.
async fn store(url: &str) -> PostgresStore {
    store_in(url, &unique("dgtest")).await
}

async fn store_in(url: &str, schema: &str) -> PostgresStore {
    PostgresStore::connect_with(
        url,
        PostgresOptions {
            schema: schema.to_owned(),
            pool_size: 8,
            ..PostgresOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("cannot reach postgres for the conformance suite: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_conforms() {
    let Some(url) = service_url("DEVICE_GRANT_POSTGRES_URL") else {
        return;
    };
    device_grant::store::conformance::run(|| async {
        Arc::new(store(&url).await) as Arc<dyn Store>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_conforms_across_pools() {
    let Some(url) = service_url("DEVICE_GRANT_POSTGRES_URL") else {
        return;
    };
    device_grant::store::conformance::run_shared(|| async {
        let schema = unique("dgtest");
        (
            Arc::new(store_in(&url, &schema).await) as Arc<dyn Store>,
            Arc::new(store_in(&url, &schema).await) as Arc<dyn Store>,
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_limiter_conforms() {
    let Some(url) = service_url("DEVICE_GRANT_POSTGRES_URL") else {
        return;
    };
    device_grant::store::conformance::run_limiter(|| async {
        Arc::new(store(&url).await.limiter()) as Arc<dyn AttemptLimiter>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_limiter_conforms_across_pools() {
    let Some(url) = service_url("DEVICE_GRANT_POSTGRES_URL") else {
        return;
    };
    device_grant::store::conformance::run_limiter_shared(|| async {
        let schema = unique("dgtest");
        (
            Arc::new(store_in(&url, &schema).await.limiter()) as Arc<dyn AttemptLimiter>,
            Arc::new(store_in(&url, &schema).await.limiter()) as Arc<dyn AttemptLimiter>,
        )
    })
    .await;
}

/// The server's URL from `var`, or `None` when the developer asked to skip
/// tests that need servers (`DEVICE_GRANT_SKIP_SERVICES=1`). A missing
/// variable otherwise fails the test: CI must never skip these silently.
fn service_url(var: &str) -> Option<String> {
    if std::env::var("DEVICE_GRANT_SKIP_SERVICES").as_deref() == Ok("1") {
        eprintln!("DEVICE_GRANT_SKIP_SERVICES=1: skipping a test that needs {var}");
        return None;
    }
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => panic!(
            "{var} is not set: run the tests through `bash scripts/test` (which starts the \
             servers), or set DEVICE_GRANT_SKIP_SERVICES=1 to skip tests that need them"
        ),
    }
}

/// A name no other test (or earlier run) uses.
fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}_{}_{:x}_{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
