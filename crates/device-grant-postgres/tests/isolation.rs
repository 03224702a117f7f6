//! The store and limiter conform whatever the session's default isolation
//! level: the conformance suite (one pool and two pools on one schema) with
//! `default_transaction_isolation` set, per connection, to each of READ
//! COMMITTED, REPEATABLE READ and SERIALIZABLE — as a server, database or role
//! default would set it. Racing compare-and-sets, inserts and limiter updates
//! must still answer "lost the race" (or win), never a serialization failure;
//! and instances migrating one schema at once must all start.

mod common;

use std::sync::Arc;

use device_grant::store::{AttemptLimiter, Store};
use device_grant_postgres::{PostgresOptions, PostgresStore};

/// `url` with every connection's `default_transaction_isolation` set to
/// `level` (the server's `-c` option; a space in a value is escaped with a
/// backslash, and the whole is percent-encoded for the URL).
fn url_at(url: &str, level: &str) -> String {
    // `-c default_transaction_isolation=repeatable\ read`, percent-encoded
    // (tokio-postgres decodes `%XX`, not `+`).
    let level = level.replace(' ', "%5C%20");
    let option = format!("-c%20default_transaction_isolation%3D{level}");
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options={option}")
}

async fn store_in(url: &str, schema: &str, level: &str) -> PostgresStore {
    let store = PostgresStore::connect_with(
        url,
        PostgresOptions {
            schema: schema.to_owned(),
            pool_size: 8,
            ..PostgresOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("cannot reach postgres at {level}: {e}"));
    // The setting took: otherwise this test would prove nothing.
    let client = store.pool().get().await.unwrap();
    let shown: String = client
        .query_one("SHOW default_transaction_isolation", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(shown, level, "the connection's default isolation level");
    store
}

fn base_url() -> Option<String> {
    common::service_url("DEVICE_GRANT_POSTGRES_URL")
}

async fn store_conforms_at(level: &'static str) {
    let Some(base) = base_url() else { return };
    let url = &url_at(&base, level);
    device_grant::store::conformance::run(|| async move {
        Arc::new(store_in(url, &common::unique("dgiso"), level).await) as Arc<dyn Store>
    })
    .await;
}

async fn store_conforms_across_pools_at(level: &'static str) {
    let Some(base) = base_url() else { return };
    let url = &url_at(&base, level);
    device_grant::store::conformance::run_shared(|| async move {
        let schema = common::unique("dgiso");
        (
            Arc::new(store_in(url, &schema, level).await) as Arc<dyn Store>,
            Arc::new(store_in(url, &schema, level).await) as Arc<dyn Store>,
        )
    })
    .await;
}

async fn limiter_conforms_at(level: &'static str) {
    let Some(base) = base_url() else { return };
    let url = &url_at(&base, level);
    device_grant::store::conformance::run_limiter(|| async move {
        Arc::new(
            store_in(url, &common::unique("dgiso"), level)
                .await
                .limiter(),
        ) as Arc<dyn AttemptLimiter>
    })
    .await;
}

async fn limiter_conforms_across_pools_at(level: &'static str) {
    let Some(base) = base_url() else { return };
    let url = &url_at(&base, level);
    device_grant::store::conformance::run_limiter_shared(|| async move {
        let schema = common::unique("dgiso");
        (
            Arc::new(store_in(url, &schema, level).await.limiter()) as Arc<dyn AttemptLimiter>,
            Arc::new(store_in(url, &schema, level).await.limiter()) as Arc<dyn AttemptLimiter>,
        )
    })
    .await;
}

/// Instances starting at once on a fresh schema: each migrates; the advisory
/// lock serializes them, and the later ones must see what the first applied.
async fn concurrent_migrations_at(level: &'static str) {
    let Some(base) = base_url() else { return };
    let url = url_at(&base, level);
    let schema = common::unique("dgiso");
    let starts = (0..4).map(|_| {
        let (url, schema) = (url.clone(), schema.clone());
        tokio::spawn(async move {
            PostgresStore::connect_with(
                &url,
                PostgresOptions {
                    schema,
                    pool_size: 1,
                    ..PostgresOptions::default()
                },
            )
            .await
        })
    });
    for start in starts.collect::<Vec<_>>() {
        if let Err(e) = start.await.unwrap() {
            panic!("an instance failed to start (migrate) at {level}: {e}");
        }
    }
}

/// Racers released at once by a barrier, round after round, on two pools
/// of one schema: compare-and-sets from one version, inserts of one user
/// code, and limiter attempts on one key. The conformance races start their
/// tasks one by one and rarely overlap this tightly; here the losers' statements
/// wait on the winner's row lock, which at REPEATABLE READ or SERIALIZABLE is
/// where a serialization failure would surface. Every answer must be `Ok`, with
/// exactly one winner (or exactly the budget admitted).
async fn racing_writes_never_fail_at(level: &'static str) {
    use device_grant::Budget;
    use device_grant::store::conformance::{base_time, pending_record};
    use device_grant::store::{Admission, Inserted, LimiterKey};
    use tokio::sync::Barrier;

    const RACERS: usize = 12;
    const ROUNDS: u64 = 15;
    let Some(base) = base_url() else { return };
    let url = url_at(&base, level);
    let schema = common::unique("dgiso");
    let connect = || {
        PostgresStore::connect_with(
            &url,
            PostgresOptions {
                schema: schema.clone(),
                pool_size: RACERS,
                ..PostgresOptions::default()
            },
        )
    };
    let stores = [connect().await.unwrap(), connect().await.unwrap()];
    let now = base_time();
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut failures = Vec::new();

    // Compare-and-sets of one record, all from the same version, each round.
    let record = pending_record(now);
    assert!(matches!(
        stores[0].insert(&record, now).await,
        Ok(Inserted::Stored)
    ));
    for round in 0..ROUNDS {
        let mut next = record.clone();
        next.version = round + 1;
        let tasks: Vec<_> = (0..RACERS)
            .map(|i| {
                let (store, next, barrier) = (stores[i % 2].clone(), next.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.compare_and_set(round, &next).await
                })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(true) => won += 1,
                Ok(false) => {}
                Err(e) => failures.push(format!("compare_and_set: {e:?}")),
            }
        }
        assert!(won <= 1, "{won} compare-and-sets from version {round} won");
        if won == 0 {
            break; // All failed: the failures say why.
        }
    }

    // Inserts of one user code under different device codes.
    for _ in 0..ROUNDS {
        let user_code = pending_record(now).user_code_hash;
        let tasks: Vec<_> = (0..RACERS)
            .map(|i| {
                let mut record = pending_record(now);
                record.user_code_hash = user_code;
                let (store, barrier) = (stores[i % 2].clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.insert(&record, now).await
                })
            })
            .collect();
        let mut stored = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(Inserted::Stored) => stored += 1,
                Ok(Inserted::UserCodeTaken) => {}
                Err(e) => failures.push(format!("insert: {e:?}")),
            }
        }
        assert!(stored <= 1, "{stored} inserts of one user code were stored");
    }

    // Limiter attempts on one key.
    let budget = Budget {
        attempts: 5,
        window: time::Duration::minutes(5),
    };
    for round in 0..ROUNDS {
        let key = LimiterKey::new(format!("racing-{round}-{}", common::unique("k")));
        let tasks: Vec<_> = (0..RACERS)
            .map(|i| {
                let (limiter, key, barrier) =
                    (stores[i % 2].limiter(), key.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    limiter.acquire(&key, &budget, now).await
                })
            })
            .collect();
        let mut admitted = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(Admission::Admitted) => admitted += 1,
                Ok(_) => {}
                Err(e) => failures.push(format!("acquire: {e:?}")),
            }
        }
        assert!(
            admitted <= 5,
            "{admitted} attempts admitted on a budget of 5"
        );
    }

    let shown: Vec<_> = failures.iter().take(5).collect();
    assert!(
        failures.is_empty(),
        "{} racing writes failed at {level} instead of winning or losing the race, e.g. {shown:#?}",
        failures.len()
    );
}

/// One test per check and level: `$mod::$check` runs `$fn(level)`.
macro_rules! at_every_level {
    ($($check:ident => $fn:ident;)*) => {
        mod read_committed {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    super::$fn("read committed").await;
                }
            )*
        }
        mod repeatable_read {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    super::$fn("repeatable read").await;
                }
            )*
        }
        mod serializable {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    super::$fn("serializable").await;
                }
            )*
        }
    };
}

at_every_level! {
    store_conforms => store_conforms_at;
    store_conforms_across_pools => store_conforms_across_pools_at;
    limiter_conforms => limiter_conforms_at;
    limiter_conforms_across_pools => limiter_conforms_across_pools_at;
    instances_migrate_at_once => concurrent_migrations_at;
    racing_writes_never_fail => racing_writes_never_fail_at;
}
