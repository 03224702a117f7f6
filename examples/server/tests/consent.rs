//! Anti-phishing at consent (RFC 8628 §5.4, the cross-device flow security
//! draft): the example server compares the device's network with the
//! approver's through `DeviceGrant::assess`, shows it, and honours the consent
//! policy's decision on the page and on the POST.
//!
//! The device and the person reach the server from one address in-process, so
//! these tests put them on networks of their choosing through the app's
//! trusted `X-Forwarded-For` mode (`ClientAddress::ForwardedFor`).

mod support;

use std::sync::Arc;

use device_grant::{ConsentDecision, ManualClock, NetworkPolicy};
use serde_json::Value;
use support::app::{ClientAddress, Options};
use support::browser::{Browser, Page};
use support::{Server, device_http_from};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const DEVICE_IP: &str = "198.51.100.7";
const SAME_NETWORK_IP: &str = "198.51.100.20";
const OTHER_NETWORK_IP: &str = "203.0.113.9";
const STEP_UP_NEEDED: &str = "tick the box to confirm you started it yourself";

/// A server behind a (simulated) trusted proxy, on a stopped clock.
async fn start(configure: impl FnOnce(&mut Options)) -> (Server, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::default());
    let server = Server::start({
        let clock = clock.clone();
        move |o| {
            o.interval = 1;
            o.clock = clock;
            o.client_address = ClientAddress::ForwardedFor;
            configure(o);
        }
    })
    .await;
    (server, clock)
}

/// The device asks for codes from `ip` (through the proxy).
async fn ask(server: &Server, ip: &str) -> Value {
    device_http_from(ip)
        .post(server.url("/device_authorization"))
        .form(&[("client_id", "tv-app"), ("scope", "profile")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn poll(server: &Server, codes: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(server.url("/token"))
        .form(&[
            ("grant_type", GRANT),
            ("client_id", "tv-app"),
            ("device_code", codes["device_code"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Enters the code, signs in as alice, and returns the consent page.
async fn reach_consent(browser: &Browser, server: &Server, codes: &Value) -> Page {
    let user_code = codes["user_code"].as_str().unwrap();
    let page = browser
        .get(&server.url(&format!("/device?user_code={user_code}")))
        .await;
    let page = browser.submit(&page, &page.form("/device"), None).await;
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

fn field_names(page: &Page) -> Vec<String> {
    let form = page.form("/consent");
    let mut names: Vec<String> = form.fields.iter().map(|(n, _)| n.clone()).collect();
    names.extend(form.unchecked.iter().map(|(n, _)| n.clone()));
    names
}

async fn approve(browser: &Browser, page: &Page, form: support::browser::Form) -> Page {
    browser
        .submit(page, &form, Some(("decision", "approve")))
        .await
}

#[tokio::test]
async fn the_same_network_gets_the_plain_consent_page() {
    let (server, clock) = start(|_| {}).await;
    let codes = ask(&server, DEVICE_IP).await;
    assert_eq!(
        poll(&server, &codes).await.1["error"],
        "authorization_pending"
    );
    let browser = Browser::from_address(SAME_NETWORK_IP);
    let consent = reach_consent(&browser, &server, &codes).await;
    assert!(
        consent.contains("Your device is on the same network as you."),
        "{}",
        consent.html
    );
    assert!(!consent.contains("not on your network"));
    assert!(consent.contains(DEVICE_IP), "the device's address is shown");
    // No step-up: the form is the CSRF token and the two buttons.
    assert_eq!(field_names(&consent), ["csrf", "request"]);
    let form = consent.form("/consent");
    assert_eq!(form.buttons.len(), 2);
    let done = approve(&browser, &consent, form).await;
    assert_eq!(done.status, 200, "{}", done.html);
    assert!(done.contains("You’re all set"));
    clock.advance(time::Duration::seconds(2));
    let (status, tokens) = poll(&server, &codes).await;
    assert_eq!(status, 200, "{tokens}");
}

#[tokio::test]
async fn a_device_on_another_network_needs_a_step_up_before_allow() {
    let (server, clock) = start(|_| {}).await;
    let codes = ask(&server, DEVICE_IP).await;
    let browser = Browser::from_address(OTHER_NETWORK_IP);
    let consent = reach_consent(&browser, &server, &codes).await;
    for shown in [
        "Your device is not on your network.",
        DEVICE_IP,
        OTHER_NETWORK_IP,
        "If someone sent you this code or a link to this page",
        "Confirm it’s you to allow",
    ] {
        assert!(
            consent.contains(shown),
            "lacks {shown:?}:\n{}",
            consent.html
        );
    }
    assert!(!consent.contains("same network as you"));
    assert_eq!(
        field_names(&consent),
        ["csrf", "request", "password", "own_device"]
    );

    // Allow as it stands, without the step-up: refused, the request stays.
    let refused = approve(&browser, &consent, consent.form("/consent")).await;
    assert_eq!(refused.status, 403, "{}", refused.html);
    assert!(refused.contains(STEP_UP_NEEDED), "{}", refused.html);
    assert_eq!(
        poll(&server, &codes).await.1["error"],
        "authorization_pending"
    );

    // The box ticked but a wrong password; the password but no box: refused.
    let wrong_password = refused
        .form("/consent")
        .check("own_device")
        .fill("password", "looking-glass");
    let refused = approve(&browser, &refused, wrong_password).await;
    assert_eq!(refused.status, 403, "{}", refused.html);
    assert!(refused.contains(STEP_UP_NEEDED));
    assert!(
        !refused.contains("looking-glass"),
        "the password is never echoed"
    );
    let unticked = refused.form("/consent").fill("password", "wonderland");
    let refused = approve(&browser, &refused, unticked).await;
    assert_eq!(refused.status, 403, "{}", refused.html);
    assert!(
        !refused.contains("wonderland"),
        "the password is never echoed"
    );
    clock.advance(time::Duration::seconds(2));
    assert_eq!(
        poll(&server, &codes).await.1["error"],
        "authorization_pending"
    );

    // Both: approved, and the device gets its tokens.
    let stepped_up = refused
        .form("/consent")
        .check("own_device")
        .fill("password", "wonderland");
    let done = approve(&browser, &refused, stepped_up).await;
    assert_eq!(done.status, 200, "{}", done.html);
    assert!(done.contains("You’re all set"));
    clock.advance(time::Duration::seconds(2));
    let (status, tokens) = poll(&server, &codes).await;
    assert_eq!(status, 200, "{tokens}");
}

#[tokio::test]
async fn step_up_guesses_on_the_consent_page_are_budgeted_per_account() {
    // Codes that outlive the budget's window.
    let (server, clock) = start(|o| o.expires_in = time::Duration::minutes(30)).await;
    let codes = ask(&server, DEVICE_IP).await;
    let browser = Browser::from_address(OTHER_NETWORK_IP);
    let mut page = reach_consent(&browser, &server, &codes).await;
    // Five wrong passwords are refused as wrong.
    for attempt in 0..5 {
        let guess = page
            .form("/consent")
            .check("own_device")
            .fill("password", &format!("guess-{attempt}"));
        page = approve(&browser, &page, guess).await;
        assert_eq!(page.status, 403, "{}", page.html);
        assert!(page.contains(STEP_UP_NEEDED));
    }
    // Then no password is checked, not even the right one, for 15 minutes.
    let right = page
        .form("/consent")
        .check("own_device")
        .fill("password", "wonderland");
    page = approve(&browser, &page, right).await;
    assert_eq!(page.status, 429, "{}", page.html);
    assert!(page.contains("Too many wrong passwords"), "{}", page.html);
    assert!(page.headers.contains_key("retry-after"));
    assert_eq!(
        poll(&server, &codes).await.1["error"],
        "authorization_pending"
    );
    clock.advance(time::Duration::minutes(15));
    let right = page
        .form("/consent")
        .check("own_device")
        .fill("password", "wonderland");
    let done = approve(&browser, &page, right).await;
    assert_eq!(done.status, 200, "{}", done.html);
    assert!(done.contains("You’re all set"));
}

#[tokio::test]
async fn a_refusing_policy_leaves_only_deny_and_refuses_a_forged_allow() {
    let (server, clock) = start(|o| {
        o.consent_policy = Arc::new(NetworkPolicy {
            different_network: ConsentDecision::Refuse,
            ..NetworkPolicy::default()
        })
    })
    .await;
    let codes = ask(&server, DEVICE_IP).await;
    let browser = Browser::from_address(OTHER_NETWORK_IP);
    let consent = reach_consent(&browser, &server, &codes).await;
    assert!(consent.contains("Your device is not on your network."));
    assert!(
        consent.contains("this request can’t be approved from here"),
        "{}",
        consent.html
    );
    let form = consent.form("/consent");
    assert_eq!(form.buttons, [("decision".into(), "deny".into())]);
    assert_eq!(field_names(&consent), ["csrf", "request"]);

    // Allow sent anyway, as a forged form would: refused.
    let mut forged = form.clone();
    forged.buttons.push(("decision".into(), "approve".into()));
    let refused = approve(&browser, &consent, forged).await;
    assert_eq!(refused.status, 403, "{}", refused.html);
    assert!(refused.contains("This request can’t be approved here"));
    assert_eq!(
        poll(&server, &codes).await.1["error"],
        "authorization_pending"
    );

    // Deny still works.
    let done = browser
        .submit(&consent, &form, Some(("decision", "deny")))
        .await;
    assert!(done.contains("Access denied"), "{}", done.html);
    clock.advance(time::Duration::seconds(2));
    let (status, answer) = poll(&server, &codes).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("access_denied"))
    );
}

#[tokio::test]
async fn an_old_request_needs_a_step_up_even_on_the_same_address_also_at_the_post() {
    // The default: peer addresses (both 127.0.0.1).
    let clock = Arc::new(ManualClock::default());
    let server = Server::start({
        let clock = clock.clone();
        move |o| o.clock = clock
    })
    .await;
    let codes = ask(&server, DEVICE_IP).await;
    // Four minutes: still fresh, the plain page.
    clock.advance(time::Duration::minutes(4));
    let browser = Browser::new();
    let consent = reach_consent(&browser, &server, &codes).await;
    assert!(consent.contains("Your device is on the same network as you."));
    assert_eq!(field_names(&consent), ["csrf", "request"]);
    // Two minutes later the request is six minutes old: the POST asks for the
    // step-up the page did not show.
    clock.advance(time::Duration::minutes(2));
    let refused = approve(&browser, &consent, consent.form("/consent")).await;
    assert_eq!(refused.status, 403, "{}", refused.html);
    assert!(refused.contains(STEP_UP_NEEDED));
    assert!(
        refused.contains("This request was made 6 minutes ago."),
        "{}",
        refused.html
    );
    let stepped_up = refused
        .form("/consent")
        .check("own_device")
        .fill("password", "wonderland");
    let done = approve(&browser, &refused, stepped_up).await;
    assert_eq!(done.status, 200, "{}", done.html);
}

#[tokio::test]
async fn forwarded_addresses_are_ignored_unless_the_proxy_is_trusted() {
    // The default is the connection's peer: a forged X-Forwarded-For changes
    // nothing, neither the device's address nor the approver's.
    let server = Server::start(|_| {}).await;
    let codes = ask(&server, DEVICE_IP).await;
    let browser = Browser::from_address(OTHER_NETWORK_IP);
    let consent = reach_consent(&browser, &server, &codes).await;
    assert!(consent.contains("Your device is on the same network as you."));
    assert!(consent.contains("127.0.0.1"), "{}", consent.html);
    assert!(!consent.contains(DEVICE_IP) && !consent.contains(OTHER_NETWORK_IP));
}
