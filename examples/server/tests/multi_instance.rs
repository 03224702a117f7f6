//! Two instances of the example server on one shared store, for Redis (one
//! server and a cluster) and for PostgreSQL (issue "Many instances, one
//! truth"): the device polls instance A while the person enters the code,
//! signs in and consents on instance B; wrong codes are counted across both;
//! and racing redemptions of one approved code, split over both instances,
//! mint exactly one token.
//!
//! Each test has a store of its own (a Redis key prefix, a PostgreSQL schema),
//! and needs the servers `scripts/test` starts (`DEVICE_GRANT_REDIS_URL`,
//! `DEVICE_GRANT_REDIS_CLUSTER_URL`, `DEVICE_GRANT_POSTGRES_URL`); it fails
//! when they are missing, unless `DEVICE_GRANT_SKIP_SERVICES=1`.

mod services;
mod support;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use device_grant::store::{AttemptLimiter, Store};
use device_grant::{Clock, Event, EventKind, ManualClock, UserCodeKey};
use oauth2::{Scope, StandardDeviceAuthorizationResponse, TokenResponse as _};
use serde_json::Value;
use support::browser::{Browser, Page};
use support::{Server, device_client, device_http};
use time::{Duration, OffsetDateTime};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// One instance's connection to the shared store: each instance opens its own,
/// as separate processes would.
struct Connection {
    store: Arc<dyn Store>,
    limiter: Arc<dyn AttemptLimiter>,
}

/// Two instances on one store, with one user-code key (as every instance
/// sharing a store must have), a 1 s interval, and `clock` when given.
async fn two_instances(
    a: Connection,
    b: Connection,
    clock: Option<Arc<dyn Clock>>,
) -> (Server, Server) {
    let key: [u8; 32] = rand::random();
    let start = |connection: Connection| {
        let clock = clock.clone();
        Server::start(move |o| {
            o.interval = 1;
            o.store = connection.store;
            o.limiter = connection.limiter;
            o.user_code_key = UserCodeKey::new(&key).unwrap();
            if let Some(clock) = clock {
                o.clock = clock;
            }
        })
    };
    (start(a).await, start(b).await)
}

/// A stopped clock at the start of a future ten-minute window: no budget window
/// ends during a test, and the shared stores' expiries (absolute times) lie in
/// the future of the servers' own clocks.
fn stopped_clock() -> Arc<ManualClock> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let start = now - now.rem_euclid(600) + 600;
    Arc::new(ManualClock::new(
        OffsetDateTime::from_unix_timestamp(start).unwrap() + Duration::seconds(1),
    ))
}

/// The person, on `server`, enters `user_code`, signs in as alice, and arrives
/// at the consent page.
async fn reach_consent(browser: &Browser, server: &Server, user_code: &str) -> Page {
    let page = browser
        .get(&server.url(&format!("/device?user_code={user_code}")))
        .await;
    assert_eq!(page.status, 200, "{}", page.html);
    let page = browser.submit(&page, &page.form("/device"), None).await;
    assert_eq!(page.path(), "/login", "{}", page.html);
    let form = page
        .form("/login")
        .fill("username", "alice")
        .fill("password", "wonderland");
    let page = browser.submit(&page, &form, None).await;
    assert_eq!(
        (page.status, page.path()),
        (200, "/consent".to_owned()),
        "{}",
        page.html
    );
    page
}

async fn approve(browser: &Browser, consent: &Page) -> Page {
    let done = browser
        .submit(
            consent,
            &consent.form("/consent"),
            Some(("decision", "approve")),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.html);
    assert!(done.contains("Return to your device"), "{}", done.html);
    done
}

async fn api_me(server: &Server, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(server.url("/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn count(server: &Server, what: fn(&Event) -> bool) -> usize {
    server.events.events().iter().filter(|e| what(e)).count()
}

/// The device (the `oauth2` crate) polls A; the person answers on B.
async fn device_on_a_person_on_b(a: &Server, b: &Server) {
    let tv = device_client(a, "tv-app", None);
    let codes: StandardDeviceAuthorizationResponse = tv
        .exchange_device_code()
        .add_scope(Scope::new("profile".to_owned()))
        .request_async(&device_http())
        .await
        .unwrap();
    let device = tokio::spawn({
        let (tv, codes) = (tv.clone(), codes.clone());
        async move {
            tv.exchange_device_access_token(&codes)
                .request_async(
                    &device_http(),
                    tokio::time::sleep,
                    Some(StdDuration::from_secs(30)),
                )
                .await
        }
    });

    let browser = Browser::new();
    let consent = reach_consent(&browser, b, codes.user_code().secret()).await;
    // B shows the request A created, from the shared store.
    assert!(consent.contains("Living-room TV"), "{}", consent.html);
    assert!(
        consent.contains("LivingRoomTV/2.1 (e2e test)"),
        "{}",
        consent.html
    );
    approve(&browser, &consent).await;

    let tokens = device
        .await
        .unwrap()
        .expect("the device polling A gets the tokens B's person approved");
    // B approved, A redeemed and minted; nothing was minted twice.
    assert_eq!(count(b, |e| matches!(e.kind, EventKind::Approved)), 1);
    assert_eq!(count(a, |e| matches!(e.kind, EventKind::Redeemed)), 1);
    assert_eq!((a.issued(), b.issued()), (1, 0));
    let me = api_me(a, tokens.access_token().secret()).await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["sub"], "alice");
    // Tokens are each instance's own (the device grant's state is what the
    // store shares): B does not know A's token.
    assert_eq!(
        api_me(b, tokens.access_token().secret()).await.status(),
        401
    );
}

/// Wrong codes typed on A and on B spend one budget (20 per address).
async fn wrong_codes_count_across_instances(a: &Server, b: &Server) {
    let (on_a, on_b) = (Browser::new(), Browser::new());
    let page_a = on_a.get(&a.url("/device")).await;
    let page_b = on_b.get(&b.url("/device")).await;
    // No request is pending in this store: any well-formed code is wrong.
    let wrong = "BCDF-GHJK";
    let budget = device_grant::Budgets::default()
        .wrong_codes_per_key
        .attempts as usize;
    let mut answers = Vec::new();
    for i in 0..budget + 2 {
        let (browser, page) = if i % 2 == 0 {
            (&on_a, &page_a)
        } else {
            (&on_b, &page_b)
        };
        let form = page.form("/device").fill("user_code", wrong);
        answers.push(browser.submit(page, &form, None).await.status);
    }
    let mut expected = vec![400; budget];
    expected.extend([429, 429]);
    assert_eq!(answers, expected);
}

/// Many polls of one approved code, at once, split over A and B: exactly one
/// gets tokens, and exactly one token response is minted across both.
async fn racing_redemptions_mint_one_token(a: &Server, b: &Server) {
    let http = reqwest::Client::new();
    let codes: Value = http
        .post(a.url("/device_authorization"))
        .form(&[("client_id", "tv-app"), ("scope", "profile")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let device_code = codes["device_code"].as_str().unwrap().to_owned();
    let browser = Browser::new();
    let consent = reach_consent(&browser, b, codes["user_code"].as_str().unwrap()).await;
    approve(&browser, &consent).await;
    let (issued_a, issued_b) = (a.issued(), b.issued());

    const POLLS: usize = 24;
    let start = Arc::new(tokio::sync::Barrier::new(POLLS));
    let polls: Vec<_> = (0..POLLS)
        .map(|i| {
            let url = if i % 2 == 0 {
                a.url("/token")
            } else {
                b.url("/token")
            };
            let (start, device_code) = (start.clone(), device_code.clone());
            // A client each: every poll on a connection of its own.
            let http = reqwest::Client::new();
            tokio::spawn(async move {
                start.wait().await;
                let response = http
                    .post(url)
                    .form(&[
                        ("grant_type", GRANT),
                        ("client_id", "tv-app"),
                        ("device_code", device_code.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for poll in polls {
        answers.push(poll.await.unwrap());
    }
    let won: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .collect();
    assert_eq!(won.len(), 1, "exactly one poll gets tokens: {answers:?}");
    assert!(won[0].1["access_token"].is_string(), "{answers:?}");
    for (status, body) in &answers {
        if *status != 200 {
            let error = body["error"].as_str().unwrap_or_default();
            assert!(
                *status == 400
                    && ["invalid_grant", "slow_down", "authorization_pending"].contains(&error),
                "a losing poll is told invalid_grant, slow_down, or (while the winner's \
                 tokens are minted) authorization_pending: {answers:?}"
            );
        }
    }
    let minted = (a.issued() - issued_a) + (b.issued() - issued_b);
    assert_eq!(minted, 1, "one token response minted across both instances");
    let redeemed = count(a, |e| matches!(e.kind, EventKind::Redeemed))
        + count(b, |e| matches!(e.kind, EventKind::Redeemed));
    assert_eq!(redeemed, 1, "one redemption across both instances");
}

/// An instance told to purge (as `main` does on a shared store) deletes
/// records past their retention from the shared store.
async fn the_server_purges_the_shared_store(connection: Connection, look: Connection) {
    let clock = stopped_clock();
    let server = Server::start({
        let clock: Arc<dyn Clock> = clock.clone();
        move |o| {
            o.store = connection.store;
            o.limiter = connection.limiter;
            o.clock = clock;
            o.purge_every = Some(StdDuration::from_millis(50));
        }
    })
    .await;
    let codes: Value = reqwest::Client::new()
        .post(server.url("/device_authorization"))
        .form(&[("client_id", "tv-app")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hash = device_grant::DeviceCode::new(codes["device_code"].as_str().unwrap()).hash();
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    assert!(
        look.store.by_device_code(&hash).await.unwrap().is_some(),
        "a live request is kept"
    );
    // Past its lifetime (10 min) and its retention after expiry (10 min).
    clock.advance(Duration::minutes(21));
    for _ in 0..100 {
        if look.store.by_device_code(&hash).await.unwrap().is_none() {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    panic!("the expired request was never purged");
}

/// Every scenario, on instances that `connect` links to one store.
async fn the_whole_story(connect: impl AsyncFn() -> Connection) {
    // The device polls in real time here.
    let (a, b) = two_instances(connect().await, connect().await, None).await;
    device_on_a_person_on_b(&a, &b).await;

    // A stopped clock where windows matter: the racing polls all come at one
    // instant, and no budget window ends while wrong codes are counted. (The
    // race goes first: the wrong codes then spend this address's budget.)
    let clock: Arc<dyn Clock> = stopped_clock();
    let (a, b) = two_instances(connect().await, connect().await, Some(clock)).await;
    racing_redemptions_mint_one_token(&a, &b).await;
    wrong_codes_count_across_instances(&a, &b).await;

    the_server_purges_the_shared_store(connect().await, connect().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_redis() {
    two_instances_on_redis("DEVICE_GRANT_REDIS_URL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_redis_cluster() {
    two_instances_on_redis("DEVICE_GRANT_REDIS_CLUSTER_URL").await;
}

async fn two_instances_on_redis(var: &str) {
    use device_grant_redis::RedisStore;
    let Some(url) = services::service_url(var) else {
        return;
    };
    let prefix = services::unique("dgmulti");
    the_whole_story(async || {
        let store = RedisStore::connect(&url, prefix.clone())
            .await
            .unwrap_or_else(|e| panic!("cannot reach redis: {e}"));
        Connection {
            limiter: Arc::new(store.limiter()),
            store: Arc::new(store),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_postgres() {
    use device_grant_postgres::{PostgresOptions, PostgresStore};
    let Some(url) = services::service_url("DEVICE_GRANT_POSTGRES_URL") else {
        return;
    };
    let schema = services::unique("dgmulti");
    the_whole_story(async || {
        let options = PostgresOptions {
            schema: schema.clone(),
            pool_size: 8,
            ..PostgresOptions::default()
        };
        let store = PostgresStore::connect_with(&url, options)
            .await
            .unwrap_or_else(|e| panic!("cannot reach postgres: {e}"));
        Connection {
            limiter: Arc::new(store.limiter()),
            store: Arc::new(store),
        }
    })
    .await;
}

/// `--store redis://…`, `--store redis+cluster://…` and `--store postgres://…`
/// open the shared stores
/// through `device_grant::adapters::connect`, limiter included.
#[tokio::test]
async fn the_server_opens_shared_stores_by_url() {
    let nowhere = device_grant::store::DeviceCodeHash::from_bytes([7; 32]);
    for var in [
        "DEVICE_GRANT_REDIS_URL",
        "DEVICE_GRANT_REDIS_CLUSTER_URL",
        "DEVICE_GRANT_POSTGRES_URL",
    ] {
        let Some(url) = services::service_url(var) else {
            return;
        };
        let storage = support::app::open_store(&url)
            .await
            .unwrap_or_else(|e| panic!("{var}: {e}"));
        assert!(storage.shared, "{var}");
        assert_eq!(storage.store.by_device_code(&nowhere).await.unwrap(), None);
    }
    // A server that is not there: a clear error, not a panic, no password.
    {
        let err = support::app::open_store("redis://user:hunter2@127.0.0.1:1/")
            .await
            .expect_err("nothing listens on port 1")
            .to_string();
        assert!(err.contains("cannot open the store"), "{err}");
        assert!(!err.contains("hunter2"), "the password leaked: {err}");
        let err = support::app::open_store("redis+cluster://user:hunter2@127.0.0.1:1,127.0.0.1:2")
            .await
            .expect_err("nothing listens on ports 1 and 2")
            .to_string();
        assert!(err.contains("cannot open the store"), "{err}");
        assert!(!err.contains("hunter2"), "the password leaked: {err}");
    }
}
