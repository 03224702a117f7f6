//! The Redis store end to end through `DeviceGrant`: several instances, no
//! secret in storage, and engine failures (`DEVICE_GRANT_REDIS_URL`).

mod services;

use std::sync::Arc;
use std::time::Duration;

use device_grant::BackendError;
use device_grant::store::{AttemptLimiter, Store};
use device_grant_redis::{RedisOptions, RedisStore};
use redis::AsyncCommands as _;
use services::{Proxy, scenarios};

async fn connect(url: &str, prefix: &str) -> RedisStore {
    RedisStore::connect(url, prefix)
        .await
        .unwrap_or_else(|e| panic!("cannot reach redis: {e}"))
}

/// Every key under `prefix` and every value it holds, as text.
async fn dump(url: &str, prefix: &str) -> Vec<String> {
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = conn.keys(format!("{prefix}:*")).await.unwrap();
    let mut out = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let values: Vec<String> = match kind.as_str() {
            "string" => vec![conn.get(&key).await.unwrap()],
            "hash" => conn.hvals(&key).await.unwrap(),
            "zset" => conn.zrange(&key, 0, -1).await.unwrap(),
            other => panic!("unexpected key type {other} at {key}"),
        };
        out.push(key);
        out.extend(values);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_one_redis_and_store_no_secret() {
    let Some(url) = services::service_url("DEVICE_GRANT_REDIS_URL") else {
        return;
    };
    let prefix = services::unique("dge2e");
    let (a, b) = (connect(&url, &prefix).await, connect(&url, &prefix).await);
    scenarios::many_instances(
        (
            Arc::new(a.clone()),
            Arc::new(a.limiter()) as Arc<dyn AttemptLimiter>,
        ),
        (
            Arc::new(b.clone()),
            Arc::new(b.limiter()) as Arc<dyn AttemptLimiter>,
        ),
        || dump(&url, &prefix),
    )
    .await;
    // Every key carries a TTL: nothing outlives its request.
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = conn.keys(format!("{prefix}:*")).await.unwrap();
    assert!(
        keys.len() >= 3,
        "records, index and counters are stored: {keys:?}"
    );
    for key in keys {
        let ttl: i64 = conn.pttl(&key).await.unwrap();
        assert!(
            ttl > 0,
            "key {key} must expire with its request (PTTL {ttl})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_failures_are_typed_errors_and_never_half_applied() {
    let Some(url) = services::service_url("DEVICE_GRANT_REDIS_URL") else {
        return;
    };
    let proxy = Arc::new(Proxy::start(services::host_port(&url)).await);
    let prefix = services::unique("dgfail");
    let proxied = RedisStore::connect_with(
        &services::via_proxy(&url, proxy.port),
        prefix.clone(),
        RedisOptions {
            connection_timeout: Duration::from_millis(500),
            response_timeout: Duration::from_millis(500),
        },
    )
    .await
    .expect("redis through the proxy");
    let direct = connect(&url, &prefix).await;
    scenarios::failures(Arc::new(proxied), proxy, Arc::new(direct)).await;
}

#[tokio::test]
async fn unreachable_redis_is_unavailable_and_its_url_password_stays_hidden() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://user:hunter2@127.0.0.1:{port}/");
    let err = RedisStore::connect(&url, "x").await.unwrap_err();
    assert!(matches!(err, BackendError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
}

#[tokio::test]
async fn corrupt_redis_record_is_a_500_server_error() {
    let Some(url) = services::service_url("DEVICE_GRANT_REDIS_URL") else {
        return;
    };
    let prefix = services::unique("dgcorrupt");
    let store = connect(&url, &prefix).await;
    let grant = scenarios::instance(
        Arc::new(store.clone()),
        Arc::new(store.limiter()),
        scenarios::clock(),
    );
    let codes = scenarios::ask(&grant).await;
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("{prefix}:dc:{}", hex(codes.device_code.hash().as_bytes()));
    // The whole record: its JSON, and the pace fields a pending poll is
    // judged by.
    let _: () = conn.hset(&key, "r", "{not json").await.unwrap();
    let _: () = conn.hset(&key, "i", "not a number").await.unwrap();
    let err = store
        .by_device_code(&codes.device_code.hash())
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Corrupt(_)), "{err:?}");
    let (status, body) = scenarios::poll(&grant, &codes).await;
    assert_eq!(status, 500);
    assert!(body.contains("\"server_error\""), "{body}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
