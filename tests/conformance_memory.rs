//! The memory store and limiter pass the storage conformance suite.
#![cfg(feature = "test-util")]

use std::sync::Arc;

use device_grant::{AttemptLimiter, MemoryLimiter, MemoryStore, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    device_grant::conformance::run(|| async { Arc::new(MemoryStore::new()) as Arc<dyn Store> })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_limiter_conforms() {
    device_grant::conformance::run_limiter(|| async {
        Arc::new(MemoryLimiter::new()) as Arc<dyn AttemptLimiter>
    })
    .await;
}
