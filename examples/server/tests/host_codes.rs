//! The key wrong user codes are counted under: the person's network (an IPv4
//! address, an IPv6 /64, never a whole IPv6 address) and, when signed in,
//! their account.

mod support;

use device_grant::EventKind;
use support::app::ClientAddress;
use support::browser::{Browser, Page};
use support::{Server, sign_in};

async fn wrong_code(browser: &Browser, server: &Server) -> Page {
    let page = browser.get(&server.url("/device")).await;
    let form = page.form("/device").fill("user_code", "BCDF-GHJK");
    browser.submit(&page, &form, None).await
}

#[tokio::test]
async fn wrong_codes_are_counted_per_ipv6_64_not_per_address() {
    let server = Server::start(|o| o.client_address = ClientAddress::ForwardedFor).await;
    // The default budget is 20 wrong codes per network per 5 minutes.
    for host in 1..=20 {
        let browser = Browser::from_address(&format!("2001:db8:1:2::{host}"));
        assert_eq!(wrong_code(&browser, &server).await.status, 400);
    }
    let same_64 = Browser::from_address("2001:db8:1:2::99");
    assert_eq!(wrong_code(&same_64, &server).await.status, 429);
    let other_64 = Browser::from_address("2001:db8:1:3::1");
    assert_eq!(wrong_code(&other_64, &server).await.status, 400);
    let tripped: Vec<_> = server
        .events
        .events()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::LimiterTripped { .. }))
        .collect();
    assert_eq!(tripped.len(), 1);
    assert!(!format!("{tripped:?}").contains("2001:db8"), "{tripped:?}");
}

#[tokio::test]
async fn a_signed_in_person_is_counted_per_account_across_networks() {
    let server = Server::start(|o| o.client_address = ClientAddress::ForwardedFor).await;
    let home = Browser::from_address("198.51.100.1");
    let work = Browser::from_address("192.0.2.1");
    sign_in(&home, &server, "alice", "wonderland").await;
    sign_in(&work, &server, "alice", "wonderland").await;
    for _ in 0..5 {
        assert_eq!(wrong_code(&home, &server).await.status, 400);
    }
    assert_eq!(wrong_code(&work, &server).await.status, 429);
    // Someone else on the work network is not held back by alice's budget.
    let colleague = Browser::from_address("192.0.2.1");
    assert_eq!(wrong_code(&colleague, &server).await.status, 400);
}

#[tokio::test]
async fn when_the_anonymous_budget_is_spent_people_sign_in_first_and_are_served() {
    let server = Server::start(|o| o.client_address = ClientAddress::ForwardedFor).await;
    let codes = support::ask_raw(&server, ("tv-app", None), "profile").await;
    // Wrong codes from 1,000 networks, one each: the deployment-wide budget of
    // wrong codes typed without signing in is spent.
    let budget = device_grant::Budgets::default()
        .wrong_codes_anonymous
        .unwrap()
        .attempts;
    for n in 0..budget {
        let guesser = Browser::from_address(&format!("2001:db8:77:{n:x}::1"));
        assert_eq!(wrong_code(&guesser, &server).await.status, 400, "guess {n}");
    }
    // Someone not signed in is asked to sign in first: not refused, not 429.
    let person = Browser::from_address("198.51.100.20");
    let page = support::enter_code(&person, &server, &codes).await;
    assert_eq!(page.status, 401, "{}", page.html);
    assert!(page.contains("Please sign in first"), "{}", page.html);
    // Signed in, the same person enters the same code and reaches consent.
    sign_in(&person, &server, "alice", "wonderland").await;
    let page = support::enter_code(&person, &server, &codes).await;
    assert_eq!(page.path(), "/consent", "{}", page.html);
}
