//! The memory store and limiter pass the storage conformance suite, on one
//! handle and on two (clones of one `Arc`, as tasks of one server share it).
#![cfg(feature = "test-util")]

use std::sync::Arc;

use device_grant::store::{AttemptLimiter, Store};
use device_grant::{MemoryLimiter, MemoryStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    device_grant::store::conformance::run(|| async {
        Arc::new(MemoryStore::new()) as Arc<dyn Store>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms_across_handles() {
    device_grant::store::conformance::run_shared(|| async {
        let store = Arc::new(MemoryStore::new());
        (store.clone() as Arc<dyn Store>, store as Arc<dyn Store>)
    })
    .await;
}

#[tokio::test]
async fn memory_store_judges_pending_polls_under_one_lock() {
    device_grant::store::conformance::judges_pending_polls(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_limiter_conforms() {
    device_grant::store::conformance::run_limiter(|| async {
        Arc::new(MemoryLimiter::new()) as Arc<dyn AttemptLimiter>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_limiter_conforms_across_handles() {
    device_grant::store::conformance::run_limiter_shared(|| async {
        let limiter = Arc::new(MemoryLimiter::new());
        (
            limiter.clone() as Arc<dyn AttemptLimiter>,
            limiter as Arc<dyn AttemptLimiter>,
        )
    })
    .await;
}
