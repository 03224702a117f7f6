//! Sign-in throttling on the example server: failed sign-ins are counted per
//! source network (an IPv4 address, an IPv6 /64) and per account, with the
//! grant's own `AttemptLimiter`. A browser where the person signed in before
//! is not held back by the per-account budget, so that guessing at alice's
//! password cannot lock alice out.

mod support;

use support::app::ClientAddress;
use support::browser::Browser;
use support::{Server, sign_in};

fn behind_proxy(o: &mut support::app::Options) {
    o.client_address = ClientAddress::ForwardedFor;
}

/// Posts `password` for `user` `times` times from `browser`: (401s, 429s).
async fn guess(
    browser: &Browser,
    server: &Server,
    user: &str,
    password: &str,
    times: usize,
) -> (usize, usize) {
    let page = browser.get(&server.url("/login")).await;
    let (mut wrong, mut throttled) = (0, 0);
    for _ in 0..times {
        let form = page
            .form("/login")
            .fill("username", user)
            .fill("password", password);
        let answer = browser.submit(&page, &form, None).await;
        match answer.status {
            401 => wrong += 1,
            429 => {
                assert!(
                    answer.contains("Too many failed sign-ins"),
                    "{}",
                    answer.html
                );
                throttled += 1;
            }
            other => panic!("{other}: {}", answer.html),
        }
    }
    (wrong, throttled)
}

#[tokio::test]
async fn five_hundred_wrong_passwords_from_one_address_are_stopped() {
    let server = Server::start(behind_proxy).await;
    let attacker = Browser::from_address("203.0.113.9");
    let (wrong, throttled) = guess(&attacker, &server, "alice", "password123", 500).await;
    assert!(wrong <= 10, "{wrong} guesses were checked");
    assert_eq!(wrong + throttled, 500);
    // The right password from the attacker's address is refused while its
    // budget is spent…
    let page = sign_in(&attacker, &server, "alice", "wonderland").await;
    assert_eq!(page.status, 429, "{}", page.html);
    assert!(page.header("retry-after").is_some());
    // …and alice, on her own network, signs in as usual.
    let alice = Browser::from_address("198.51.100.7");
    let page = sign_in(&alice, &server, "alice", "wonderland").await;
    assert_eq!(
        (page.status, page.path()),
        (200, "/device".to_owned()),
        "{}",
        page.html
    );
}

#[tokio::test]
async fn addresses_in_one_ipv6_64_share_a_budget() {
    let server = Server::start(behind_proxy).await;
    let mut wrong = 0;
    for host in 1..=30 {
        let attacker = Browser::from_address(&format!("2001:db8:5:6::{host:x}"));
        wrong += guess(&attacker, &server, "bob", "wrong", 1).await.0;
    }
    assert!(wrong <= 10, "{wrong} guesses from one /64 were checked");
    // Another /64 has its own.
    let other = Browser::from_address("2001:db8:5:7::1");
    assert_eq!(guess(&other, &server, "bob", "wrong", 1).await, (1, 0));
}

#[tokio::test]
async fn guesses_from_many_networks_are_capped_per_account_without_locking_alice_out() {
    let server = Server::start(behind_proxy).await;
    // Alice signed in on her phone before, and signed out.
    let phone = Browser::from_address("198.51.100.7");
    let page = sign_in(&phone, &server, "alice", "wonderland").await;
    assert_eq!(page.path(), "/device");
    let form = page.form("/logout");
    phone.submit(&page, &form, None).await;

    let mut checked = 0;
    for net in 1..=40 {
        let attacker = Browser::from_address(&format!("203.0.113.{net}"));
        checked += guess(&attacker, &server, "alice", "guess", 3).await.0;
    }
    assert!(
        checked <= 20,
        "{checked} guesses at alice's password were checked"
    );
    // The right password from a browser alice never used is refused too…
    let stranger = Browser::from_address("192.0.2.200");
    let page = sign_in(&stranger, &server, "alice", "wonderland").await;
    assert_eq!(page.status, 429, "{}", page.html);
    // …but her own phone signs her in.
    let page = sign_in(&phone, &server, "alice", "wonderland").await;
    assert_eq!(
        (page.status, page.path()),
        (200, "/device".to_owned()),
        "{}",
        page.html
    );
    // Bob's account was never the target.
    let bob = Browser::from_address("192.0.2.201");
    assert_eq!(
        sign_in(&bob, &server, "bob", "builder").await.path(),
        "/device"
    );
}
