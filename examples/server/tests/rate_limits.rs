//! The example server's `--rate-limits` switch (`Options::rate_limits`): on by
//! default, the crate's budgets refuse the 21st device authorization from one
//! address in ten minutes; off (for load tests), they do not, while the
//! wrong-code budget that guards people's codes still holds.

mod support;

use std::sync::Arc;

use device_grant::ManualClock;
use support::Server;
use support::browser::Browser;

/// `n` device authorizations from this test's one address; their statuses,
/// and the `Retry-After` of the last.
async fn authorizations(server: &Server, n: usize) -> (Vec<u16>, Option<String>) {
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..n {
        let response = http
            .post(server.url("/device_authorization"))
            .form(&[("client_id", "tv-app")])
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
    }
    (statuses, retry_after)
}

/// A stopped clock: no budget window ends during the test.
fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::default())
}

#[tokio::test]
async fn by_default_the_121st_authorization_from_one_address_gets_429() {
    let clock = clock();
    let server = Server::start(|o| o.clock = clock).await;
    let per_source = device_grant::Budgets::default()
        .authorizations_per_source
        .unwrap()
        .attempts as usize;
    let (statuses, retry_after) = authorizations(&server, per_source + 1).await;
    assert!(
        statuses[..per_source].iter().all(|s| *s == 200),
        "{statuses:?}"
    );
    assert_eq!(statuses[per_source], 429, "{statuses:?}");
    let retry_after: i64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=600).contains(&retry_after), "{retry_after}");
}

#[tokio::test]
async fn with_rate_limits_off_it_does_not_and_wrong_codes_are_still_limited() {
    let clock = clock();
    let server = Server::start(|o| {
        o.clock = clock;
        o.rate_limits = false;
    })
    .await;
    let (statuses, _) = authorizations(&server, 200).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    let browser = Browser::new();
    let page = browser.get(&server.url("/device")).await;
    let mut answers = Vec::new();
    let budget = device_grant::Budgets::default()
        .wrong_codes_per_key
        .attempts as usize;
    for _ in 0..=budget {
        // A fixed guess: the odds that it is one of the 200 live codes are
        // about 1 in 100 million (8 of 20 consonants).
        let form = page.form("/device").fill("user_code", "BCDF-GHJK");
        answers.push(browser.submit(&page, &form, None).await.status);
    }
    let mut expected = vec![400; budget];
    expected.push(429);
    assert_eq!(answers, expected);
}
