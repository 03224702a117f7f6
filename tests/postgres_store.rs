//! The PostgreSQL store end to end through `DeviceGrant`: several instances,
//! no secret in storage, migrations, purge, and engine failures
//! (`DEVICE_GRANT_POSTGRES_URL`).

mod services;

use std::sync::Arc;
use std::time::Duration;

use device_grant::BackendError;
use device_grant::store::{AttemptLimiter, Store};
use device_grant_postgres::{PostgresOptions, PostgresStore, migrate};
use services::{Proxy, scenarios};

fn options(schema: &str) -> PostgresOptions {
    PostgresOptions {
        schema: schema.to_owned(),
        pool_size: 4,
        ..PostgresOptions::default()
    }
}

async fn connect(url: &str, schema: &str) -> PostgresStore {
    PostgresStore::connect_with(url, options(schema))
        .await
        .unwrap_or_else(|e| panic!("cannot reach postgres: {e}"))
}

/// Every row of both tables, as text.
async fn dump(store: &PostgresStore, schema: &str) -> Vec<String> {
    let client = store.pool().get().await.unwrap();
    let mut out = Vec::new();
    for row in client
        .query(
            &format!(
                "SELECT encode(device_code_hash, 'hex'), coalesce(encode(user_code_hash, 'hex'), ''), record
                 FROM {schema}.device_grant_authorizations"
            ),
            &[],
        )
        .await
        .unwrap()
    {
        for i in 0..3 {
            out.push(row.get::<_, String>(i));
        }
    }
    for row in client
        .query(
            &format!("SELECT encode(key_hash, 'hex') FROM {schema}.device_grant_attempts"),
            &[],
        )
        .await
        .unwrap()
    {
        out.push(row.get::<_, String>(0));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_one_database_and_store_no_secret() {
    let Some(url) = services::service_url("DEVICE_GRANT_POSTGRES_URL") else {
        return;
    };
    let schema = services::unique("dge2e");
    // Both instances migrate at start-up, at once: the advisory lock serializes them.
    let (a, b) = tokio::join!(connect(&url, &schema), connect(&url, &schema));
    let inspect = a.clone();
    scenarios::many_instances(
        (
            Arc::new(a.clone()),
            Arc::new(a.limiter()) as Arc<dyn AttemptLimiter>,
        ),
        (
            Arc::new(b.clone()),
            Arc::new(b.limiter()) as Arc<dyn AttemptLimiter>,
        ),
        || async { dump(&inspect, &schema).await },
    )
    .await;
}

#[tokio::test]
async fn migrations_apply_once_and_are_recorded() {
    let Some(url) = services::service_url("DEVICE_GRANT_POSTGRES_URL") else {
        return;
    };
    let schema = services::unique("dgmig");
    let store = connect(&url, &schema).await;
    migrate(store.pool(), &schema)
        .await
        .expect("a second migrate is a no-op");
    let client = store.pool().get().await.unwrap();
    let versions: Vec<i32> = client
        .query(
            &format!("SELECT version FROM {schema}.device_grant_migrations"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, vec![1, 2, 3]);
    let indexes: Vec<String> = client
        .query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'device_grant_authorizations'",
            &[&schema],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for column in ["(device_code_hash)", "(user_code_hash)", "(purge_at)"] {
        assert!(
            indexes.iter().any(|i| i.contains(column)),
            "an index on {column} must exist: {indexes:?}"
        );
    }
    assert!(
        migrate(store.pool(), "Robert'); DROP TABLE x; --")
            .await
            .is_err(),
        "a schema name that is not a plain identifier must be refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_failures_are_typed_errors_and_never_half_applied() {
    let Some(url) = services::service_url("DEVICE_GRANT_POSTGRES_URL") else {
        return;
    };
    let schema = services::unique("dgfail");
    let direct = connect(&url, &schema).await;
    let proxy = Arc::new(Proxy::start(services::host_port(&url)).await);
    let proxied = PostgresStore::connect_with(
        &services::via_proxy(&url, proxy.port),
        PostgresOptions {
            timeout: Duration::from_secs(1),
            // One connection: the approval below runs on the connection the
            // poll before it warmed up (its statements prepared).
            pool_size: 1,
            ..options(&schema)
        },
    )
    .await
    .expect("postgres through the proxy");
    scenarios::failures(Arc::new(proxied), proxy, Arc::new(direct)).await;
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable_and_its_url_password_stays_hidden() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://app:hunter2@127.0.0.1:{port}/db");
    let err = PostgresStore::connect(&url).await.unwrap_err();
    assert!(matches!(err, BackendError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
}

#[tokio::test]
async fn corrupt_postgres_record_is_a_500_server_error() {
    let Some(url) = services::service_url("DEVICE_GRANT_POSTGRES_URL") else {
        return;
    };
    let schema = services::unique("dgcorrupt");
    let store = connect(&url, &schema).await;
    let grant = scenarios::instance(
        Arc::new(store.clone()),
        Arc::new(store.limiter()),
        scenarios::clock(),
    );
    let codes = scenarios::ask(&grant).await;
    let client = store.pool().get().await.unwrap();
    let updated = client
        .execute(
            // The whole record: its JSON, and the pace columns a pending poll
            // is judged by.
            &format!(
                "UPDATE {schema}.device_grant_authorizations \
                 SET record = '{{not json', poll_interval = NULL"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(updated, 1);
    let err = store
        .by_device_code(&codes.device_code.hash())
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Corrupt(_)), "{err:?}");
    let (status, body) = scenarios::poll(&grant, &codes).await;
    assert_eq!(status, 500);
    assert!(body.contains("\"server_error\""), "{body}");
}

#[tokio::test]
async fn a_postgres_url_picks_the_postgres_store() {
    let Some(url) = services::service_url("DEVICE_GRANT_POSTGRES_URL") else {
        return;
    };
    let store = device_grant_postgres::PostgresStore::connect(&url)
        .await
        .expect("postgres");
    let limiter: Arc<dyn device_grant::store::AttemptLimiter> = Arc::new(store.limiter());
    let store: Arc<dyn Store> = Arc::new(store);
    let grant = scenarios::instance(store.clone(), limiter, scenarios::clock());
    let codes = scenarios::ask(&grant).await;
    // Found through a PostgresStore of its own: the record really is in the
    // database (schema public).
    let other = connect(&url, "public").await;
    assert!(
        other
            .by_device_code(&codes.device_code.hash())
            .await
            .unwrap()
            .is_some()
    );
    other
        .purge_expired(time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .await
        .unwrap();
}
