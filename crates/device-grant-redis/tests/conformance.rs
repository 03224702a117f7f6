//! The Redis store and limiter pass the storage conformance suite against a
//! real server (`DEVICE_GRANT_REDIS_URL`) and a Redis Cluster of three
//! primaries and three replicas (`DEVICE_GRANT_REDIS_CLUSTER_URL`), both
//! started by `scripts/setup/10-services.sh`, on one connection and on two
//! connections sharing one prefix (two instances).

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

async fn store_conforms(var: &str) {
    let Some(url) = service_url(var) else {
        return;
    };
    device_grant::store::conformance::run(|| async {
        Arc::new(store(&url).await) as Arc<dyn Store>
    })
    .await;
}

async fn store_conforms_across_connections(var: &str) {
    let Some(url) = service_url(var) else {
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

async fn limiter_conforms(var: &str) {
    let Some(url) = service_url(var) else {
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

async fn limiter_conforms_across_connections(var: &str) {
    let Some(url) = service_url(var) else {
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

const SERVER: &str = "DEVICE_GRANT_REDIS_URL";
const CLUSTER: &str = "DEVICE_GRANT_REDIS_CLUSTER_URL";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_conforms() {
    store_conforms(SERVER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_conforms_across_connections() {
    store_conforms_across_connections(SERVER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_limiter_conforms() {
    limiter_conforms(SERVER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_limiter_conforms_across_connections() {
    limiter_conforms_across_connections(SERVER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_store_conforms() {
    store_conforms(CLUSTER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_store_conforms_across_connections() {
    store_conforms_across_connections(CLUSTER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_limiter_conforms() {
    limiter_conforms(CLUSTER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_limiter_conforms_across_connections() {
    limiter_conforms_across_connections(CLUSTER).await;
}

/// On a cluster, a store's records spread over its primaries: the keys of
/// the test below are not all in one slot, and the suite above ran across
/// nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_records_spread_over_primaries() {
    use device_grant::store::conformance::{base_time, pending_record};
    let Some(url) = service_url(CLUSTER) else {
        return;
    };
    let store = store(&url).await;
    let base = base_time();
    for _ in 0..64 {
        let record = pending_record(base);
        assert_eq!(
            store.insert(&record, base).await.expect("insert"),
            device_grant::store::Inserted::Stored
        );
    }
    let mut conn = device_grant_redis::connect(&url, Default::default())
        .await
        .expect("cannot reach redis");
    let mut primaries_with_keys = 0;
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn)
        .await
        .expect("CLUSTER NODES");
    for line in nodes.lines().filter(|l| l.contains("master")) {
        let addr = line
            .split(' ')
            .nth(1)
            .and_then(|a| a.split('@').next())
            .unwrap();
        let mut node = redis::Client::open(format!("redis://{addr}/"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("cannot reach a primary");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", store.prefix()))
            .query_async(&mut node)
            .await
            .expect("KEYS");
        if !keys.is_empty() {
            primaries_with_keys += 1;
        }
    }
    assert!(
        primaries_with_keys >= 2,
        "64 records must spread over more than one primary of the cluster, found keys on \
         {primaries_with_keys}"
    );
}

async fn judges_pending_polls(var: &str) {
    let Some(url) = service_url(var) else {
        return;
    };
    device_grant::store::conformance::judges_pending_polls(Arc::new(store(&url).await)).await;
}

#[tokio::test]
async fn redis_judges_pending_polls_in_one_script() {
    judges_pending_polls("DEVICE_GRANT_REDIS_URL").await;
}

#[tokio::test]
async fn redis_cluster_judges_pending_polls_in_one_script() {
    judges_pending_polls("DEVICE_GRANT_REDIS_CLUSTER_URL").await;
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
