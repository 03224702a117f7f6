//! The PostgreSQL store and limiter pass the storage conformance suite against
//! a real server (`DEVICE_GRANT_POSTGRES_URL`, started by
//! `scripts/setup/10-services.sh`), on one pool and on two pools sharing one
//! schema (two instances).

mod common;

use std::sync::Arc;

use device_grant::store::{AttemptLimiter, Store};
use device_grant_postgres::{PostgresOptions, PostgresStore};

/// A store in a schema of its own: the checks run in parallel with other
/// tests on one database, and each expects an empty store.
async fn store(url: &str) -> PostgresStore {
    store_in(url, &common::unique("dgtest")).await
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
    let Some(url) = common::service_url("DEVICE_GRANT_POSTGRES_URL") else {
        return;
    };
    device_grant::store::conformance::run(|| async {
        Arc::new(store(&url).await) as Arc<dyn Store>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_conforms_across_pools() {
    let Some(url) = common::service_url("DEVICE_GRANT_POSTGRES_URL") else {
        return;
    };
    device_grant::store::conformance::run_shared(|| async {
        let schema = common::unique("dgtest");
        (
            Arc::new(store_in(&url, &schema).await) as Arc<dyn Store>,
            Arc::new(store_in(&url, &schema).await) as Arc<dyn Store>,
        )
    })
    .await;
}

#[tokio::test]
async fn postgres_judges_pending_polls_in_one_statement() {
    let Some(url) = common::service_url("DEVICE_GRANT_POSTGRES_URL") else {
        return;
    };
    device_grant::store::conformance::judges_pending_polls(Arc::new(store(&url).await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_limiter_conforms() {
    let Some(url) = common::service_url("DEVICE_GRANT_POSTGRES_URL") else {
        return;
    };
    device_grant::store::conformance::run_limiter(|| async {
        Arc::new(store(&url).await.limiter()) as Arc<dyn AttemptLimiter>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_limiter_conforms_across_pools() {
    let Some(url) = common::service_url("DEVICE_GRANT_POSTGRES_URL") else {
        return;
    };
    device_grant::store::conformance::run_limiter_shared(|| async {
        let schema = common::unique("dgtest");
        (
            Arc::new(store_in(&url, &schema).await.limiter()) as Arc<dyn AttemptLimiter>,
            Arc::new(store_in(&url, &schema).await.limiter()) as Arc<dyn AttemptLimiter>,
        )
    })
    .await;
}
