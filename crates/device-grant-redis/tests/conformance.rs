//! The Redis store and limiter pass the storage conformance suite against a
//! real server (`DEVICE_GRANT_REDIS_URL`, started by `scripts/setup/10-services.sh`),
//! on one connection and on two connections sharing one prefix (two instances).

use std::sync::Arc;

use device_grant::store::{AttemptLimiter, Store};
use device_grant_redis::{RedisLimiter, RedisStore};

async fn store(url: &str) -> RedisStore {
    // A fresh prefix per store: the checks run in parallel with other tests on
    // one server, and each expects an empty store.
    RedisStore::connect(url, unique("dgtest"))
        .await
        .unwrap_or_else(|e| panic!("cannot reach redis for the conformance suite: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_conforms() {
    let Some(url) = service_url("DEVICE_GRANT_REDIS_URL") else {
        return;
    };
    device_grant::store::conformance::run(|| async {
        Arc::new(store(&url).await) as Arc<dyn Store>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_conforms_across_connections() {
    let Some(url) = service_url("DEVICE_GRANT_REDIS_URL") else {
        return;
    };
    device_grant::store::conformance::run_shared(|| async {
        let prefix = unique("dgtest");
        let connect = || async {
            Arc::new(
                RedisStore::connect(&url, prefix.clone())
                    .await
                    .expect("cannot reach redis"),
            ) as Arc<dyn Store>
        };
        (connect().await, connect().await)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_limiter_conforms() {
    let Some(url) = service_url("DEVICE_GRANT_REDIS_URL") else {
        return;
    };
    device_grant::store::conformance::run_limiter(|| async {
        Arc::new(
            RedisLimiter::connect(&url, unique("dgtest"))
                .await
                .expect("cannot reach redis"),
        ) as Arc<dyn AttemptLimiter>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_limiter_conforms_across_connections() {
    let Some(url) = service_url("DEVICE_GRANT_REDIS_URL") else {
        return;
    };
    device_grant::store::conformance::run_limiter_shared(|| async {
        let prefix = unique("dgtest");
        let connect = || async {
            Arc::new(
                RedisLimiter::connect(&url, prefix.clone())
                    .await
                    .expect("cannot reach redis"),
            ) as Arc<dyn AttemptLimiter>
        };
        (connect().await, connect().await)
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
