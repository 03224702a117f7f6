//! The example server on its default budgets serves a CI pipeline: 100
//! complete flows (device authorization, code entry, sign-in, approval,
//! tokens) in 10 minutes from one address, with no 429; and someone typing
//! wrong codes from that address still meets the limiter's message.

mod support;

use std::sync::Arc;

use device_grant::{Budgets, ManualClock};
use support::browser::Browser;
use support::{Server, approved_tokens};

#[tokio::test]
async fn a_hundred_complete_flows_in_ten_minutes_from_one_address_are_never_refused() {
    let clock = Arc::new(ManualClock::default());
    let server = Server::start(|o| o.clock = clock.clone()).await;
    // Every request comes from 127.0.0.1: the device's and the person's.
    for flow in 0..100 {
        let tokens = approved_tokens(&server, ("tv-app", None), "profile").await;
        assert!(tokens["access_token"].is_string(), "flow {flow}: {tokens}");
        clock.advance(time::Duration::seconds(6));
    }
    assert_eq!(server.issued(), 100);

    // The budget on wrong codes still stands for that address.
    let browser = Browser::new();
    let page = browser.get(&server.url("/device")).await;
    let budget = Budgets::default().wrong_codes_per_key.attempts;
    for _ in 0..budget {
        let form = page.form("/device").fill("user_code", "BCDF-GHJK");
        let answer = browser.submit(&page, &form, None).await;
        assert_eq!(answer.status, 400, "{}", answer.html);
        assert!(answer.contains("No device is waiting for this code"));
    }
    let form = page.form("/device").fill("user_code", "BCDF-GHJK");
    let answer = browser.submit(&page, &form, None).await;
    assert_eq!(answer.status, 429);
    assert!(
        answer.contains("Too many wrong codes. Try again in"),
        "{}",
        answer.html
    );
}

#[tokio::test]
async fn codes_that_expire_in_seconds_for_black_box_tests() {
    let clock = Arc::new(ManualClock::default());
    let server = Server::start(|o| {
        o.clock = clock.clone();
        o.interval = 1;
        o.expires_in = time::Duration::seconds(2);
    })
    .await;
    let codes = support::ask_raw(&server, ("tv-app", None), "profile").await;
    assert_eq!(codes["expires_in"], 2);
    clock.advance(time::Duration::seconds(2));
    let (status, error) = support::poll_raw(&server, ("tv-app", None), &codes).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("expired_token"))
    );
}
