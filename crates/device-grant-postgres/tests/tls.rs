//! TLS (feature `tls`) against the local server, whose certificate comes from
//! a throwaway CA (`DEVICE_GRANT_POSTGRES_CA`, made by
//! `scripts/setup/10-services.sh`): with that CA the store conforms over TLS;
//! with no CA or another one the connection is refused, saying why, without
//! the password.

#![cfg(feature = "tls")]

mod common;

use std::sync::Arc;

use device_grant::BackendError;
use device_grant::store::{AttemptLimiter, Store};
use device_grant_postgres::{PostgresOptions, PostgresStore};

/// A password in the URL, to check that no error shows it. The test server
/// trusts loopback connections, so it is never checked.
const PASSWORD: &str = "pw-that-must-not-leak-5e1d";

/// A CA that signed nothing the server has.
const UNRELATED_CA: &str = include_str!("fixtures/unrelated-ca.pem");

/// The server's URL (with [`PASSWORD`] in it) and the CA's PEM file, or `None`
/// when told to skip tests that need servers.
fn server() -> Option<(String, String)> {
    let url = common::service_url("DEVICE_GRANT_POSTGRES_URL")?;
    let ca = common::service_url("DEVICE_GRANT_POSTGRES_CA")?;
    let mut url = url::Url::parse(&url).expect("DEVICE_GRANT_POSTGRES_URL is a URL");
    url.set_password(Some(PASSWORD)).unwrap();
    Some((url.to_string(), ca))
}

fn options(require_tls: bool, ca_pem: Option<String>) -> PostgresOptions {
    PostgresOptions {
        schema: common::unique("dgtls"),
        pool_size: 4,
        require_tls,
        tls_ca_pem: ca_pem,
        ..PostgresOptions::default()
    }
}

fn read_ca(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read the CA {path}: {e}"))
}

/// Whether the store's connection is encrypted, as the server sees it.
async fn encrypted(store: &PostgresStore) -> bool {
    let client = store.pool().get().await.unwrap();
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// A round trip through the store and its limiter: nothing to purge, and the
/// answers came.
async fn round_trip(store: &PostgresStore) {
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(Store::purge_expired(store, now).await.unwrap(), 0);
    assert_eq!(
        AttemptLimiter::purge_expired(&store.limiter(), now)
            .await
            .unwrap(),
        0
    );
}

/// The connection failed for the server's certificate: `Unavailable`, saying
/// so, and without the password.
fn assert_refused_for_certificate(result: Result<PostgresStore, BackendError>) {
    let error = result.expect_err("a server certificate the CA did not sign was accepted");
    let shown = format!("{error} / {error:?}");
    assert!(
        matches!(error, BackendError::Unavailable(_)),
        "not Unavailable: {shown}"
    );
    assert!(
        shown.contains("TLS") && shown.contains("certificate"),
        "does not say it is the certificate: {shown}"
    );
    assert!(!shown.contains(PASSWORD), "the password leaked: {shown}");
    eprintln!("refused as expected: {error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_conforms_over_tls_with_the_ca() {
    let Some((url, ca)) = server() else { return };
    let pem = read_ca(&ca);
    let store = PostgresStore::connect_with(&url, options(true, Some(pem.clone())))
        .await
        .unwrap_or_else(|e| panic!("TLS with the CA: {e}"));
    assert!(
        encrypted(&store).await,
        "require_tls connected in plain text"
    );
    let (url, pem) = (&url, &pem);
    device_grant::store::conformance::run(|| async move {
        let store = PostgresStore::connect_with(url, options(true, Some(pem.clone())))
            .await
            .unwrap();
        Arc::new(store) as Arc<dyn Store>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn url_sslmode_and_sslrootcert_select_tls() {
    let Some((url, ca)) = server() else { return };
    let root = percent_encode(&ca);
    for query in [
        format!("sslmode=verify-full&sslrootcert={root}"),
        format!("sslrootcert={root}&sslmode=verify-ca"),
        format!("sslmode=require&sslrootcert={root}"),
    ] {
        let url = format!("{url}?{query}");
        let store = PostgresStore::connect_with(&url, options(false, None))
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        assert!(encrypted(&store).await, "{query}: plain text");
        round_trip(&store).await;
    }
    // sslmode=require in the URL, the CA in the options.
    let store = PostgresStore::connect_with(
        &format!("{url}?sslmode=require"),
        options(false, Some(read_ca(&ca))),
    )
    .await
    .unwrap();
    assert!(encrypted(&store).await);
    round_trip(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_without_the_ca_is_refused() {
    let Some((url, _)) = server() else { return };
    // Mozilla's roots did not sign the test server's certificate.
    assert_refused_for_certificate(PostgresStore::connect_with(&url, options(true, None)).await);
    assert_refused_for_certificate(
        PostgresStore::connect_with(&format!("{url}?sslmode=verify-full"), options(false, None))
            .await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_with_another_ca_is_refused() {
    let Some((url, _)) = server() else { return };
    assert_refused_for_certificate(
        PostgresStore::connect_with(&url, options(true, Some(UNRELATED_CA.to_owned()))).await,
    );
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/unrelated-ca.pem"
    );
    assert_refused_for_certificate(
        PostgresStore::connect_with(
            &format!(
                "{url}?sslmode=require&sslrootcert={}",
                percent_encode(fixture)
            ),
            options(false, None),
        )
        .await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ca_that_is_no_pem_is_an_error() {
    let Some((url, _)) = server() else { return };
    let error = PostgresStore::connect_with(&url, options(true, Some("not a certificate".into())))
        .await
        .expect_err("a CA without a certificate was taken");
    assert!(error.to_string().contains("no PEM certificate"), "{error}");
    let error = PostgresStore::connect_with(
        &format!("{url}?sslmode=require&sslrootcert=/nonexistent/ca.pem"),
        options(false, None),
    )
    .await
    .expect_err("a missing sslrootcert file was taken");
    assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    assert!(!format!("{error:?}").contains(PASSWORD), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_tls_asked_for_the_connection_stays_plain() {
    // The feature alone changes nothing: the server offers TLS, but a URL
    // without sslmode connects as before.
    let Some((url, _)) = server() else { return };
    let store = PostgresStore::connect_with(&url, options(false, None))
        .await
        .unwrap();
    assert!(!encrypted(&store).await);
    round_trip(&store).await;
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
