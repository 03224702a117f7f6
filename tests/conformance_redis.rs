//! The Redis store and limiter pass the storage conformance suite against a
//! real server (`DEVICE_GRANT_REDIS_URL`, started by `scripts/setup/10-services.sh`),
//! on one connection and on two connections sharing one prefix (two instances).
#![cfg(all(feature = "test-util", feature = "redis"))]

mod services;

use std::sync::Arc;

use device_grant::adapters::redis::{RedisLimiter, RedisStore};
use device_grant::{AttemptLimiter, Store};

async fn store(url: &str) -> RedisStore {
    // A fresh prefix per store: the checks run in parallel with other tests on
    // one server, and each expects an empty store.
    RedisStore::connect(url, services::unique("dgtest"))
        .await
        .unwrap_or_else(|e| panic!("cannot reach redis for the conformance suite: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_conforms() {
    let Some(url) = services::service_url("DEVICE_GRANT_REDIS_URL") else {
        return;
    };
    device_grant::conformance::run(|| async { Arc::new(store(&url).await) as Arc<dyn Store> })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_conforms_across_connections() {
    let Some(url) = services::service_url("DEVICE_GRANT_REDIS_URL") else {
        return;
    };
    device_grant::conformance::run_shared(|| async {
        let prefix = services::unique("dgtest");
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
    let Some(url) = services::service_url("DEVICE_GRANT_REDIS_URL") else {
        return;
    };
    device_grant::conformance::run_limiter(|| async {
        Arc::new(
            RedisLimiter::connect(&url, services::unique("dgtest"))
                .await
                .expect("cannot reach redis"),
        ) as Arc<dyn AttemptLimiter>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_limiter_conforms_across_connections() {
    let Some(url) = services::service_url("DEVICE_GRANT_REDIS_URL") else {
        return;
    };
    device_grant::conformance::run_limiter_shared(|| async {
        let prefix = services::unique("dgtest");
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
