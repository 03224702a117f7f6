//! The example server's consent answers exactly the request it showed: each
//! code entered in one browser gets its own consent, sign-out forgets entered
//! codes, an expired request shows "expired"; device-supplied and echoed text
//! is labelled and cut; the API is never cached.

mod support;

use std::sync::Arc;

use device_grant::ManualClock;
use support::browser::Browser;
use support::{Server, approved_tokens, ask_raw, enter_code, poll_raw, sign_in};

const TV: (&str, Option<&str>) = ("tv-app", None);
const PRINTER: (&str, Option<&str>) = ("printer", Some("printer-secret"));

#[tokio::test]
async fn two_codes_in_two_tabs_each_get_their_own_answer() {
    let server = Server::start(|_| {}).await;
    let tv = ask_raw(&server, TV, "profile").await;
    let printer = ask_raw(&server, PRINTER, "profile").await;
    let browser = Browser::new();
    sign_in(&browser, &server, "alice", "wonderland").await;
    let tv_tab = enter_code(&browser, &server, &tv).await;
    assert!(tv_tab.contains("Living-room TV"), "{}", tv_tab.html);
    let printer_tab = enter_code(&browser, &server, &printer).await;
    assert!(
        printer_tab.contains("Office printer"),
        "{}",
        printer_tab.html
    );

    // Allow in the first tab answers the TV, and only the TV.
    let form = tv_tab.form("/consent");
    let done = browser
        .submit(&tv_tab, &form, Some(("decision", "approve")))
        .await;
    assert_eq!(done.status, 200, "{}", done.html);
    assert!(done.contains("Living-room TV"), "{}", done.html);
    assert_eq!(poll_raw(&server, TV, &tv).await.0, 200);
    assert_eq!(
        poll_raw(&server, PRINTER, &printer).await.1["error"],
        "authorization_pending"
    );

    // The second tab still answers the printer.
    let form = printer_tab.form("/consent");
    let done = browser
        .submit(&printer_tab, &form, Some(("decision", "deny")))
        .await;
    assert!(done.contains("Office printer"), "{}", done.html);
    assert_eq!(
        poll_raw(&server, PRINTER, &printer).await.1["error"],
        "access_denied"
    );
}

#[tokio::test]
async fn sign_out_forgets_the_codes_entered() {
    let server = Server::start(|_| {}).await;
    let tv = ask_raw(&server, TV, "profile").await;
    let browser = Browser::new();
    sign_in(&browser, &server, "alice", "wonderland").await;
    let consent = enter_code(&browser, &server, &tv).await;
    assert_eq!(consent.path(), "/consent");
    let form = consent.form("/logout");
    browser.submit(&consent, &form, None).await;

    // The next person on this browser starts from the code page.
    let page = sign_in(&browser, &server, "bob", "builder").await;
    assert_eq!(page.path(), "/device", "{}", page.html);
    let page = browser.get(&consent.url).await;
    assert!(!page.contains("Living-room TV"), "{}", page.html);
    assert!(
        page.forms().iter().all(|f| f.action != "/consent"),
        "{}",
        page.html
    );
}

#[tokio::test]
async fn a_code_entered_before_sign_in_is_answered_after_it() {
    let server = Server::start(|_| {}).await;
    let tv = ask_raw(&server, TV, "profile").await;
    let browser = Browser::new();
    let page = enter_code(&browser, &server, &tv).await;
    assert_eq!(page.path(), "/login", "{}", page.html);
    let form = page
        .form("/login")
        .fill("username", "alice")
        .fill("password", "wonderland");
    let consent = browser.submit(&page, &form, None).await;
    assert_eq!(consent.path(), "/consent", "{}", consent.html);
    let form = consent.form("/consent");
    let done = browser
        .submit(&consent, &form, Some(("decision", "approve")))
        .await;
    assert_eq!(done.status, 200, "{}", done.html);
    assert_eq!(poll_raw(&server, TV, &tv).await.0, 200);
}

#[tokio::test]
async fn an_expired_request_shows_expired_and_no_allow() {
    let clock = Arc::new(ManualClock::default());
    let server = Server::start(|o| o.clock = clock.clone()).await;
    let tv = ask_raw(&server, TV, "profile").await;
    let browser = Browser::new();
    sign_in(&browser, &server, "alice", "wonderland").await;
    let consent = enter_code(&browser, &server, &tv).await;
    assert_eq!(consent.path(), "/consent");
    clock.advance(time::Duration::seconds(601));
    let page = browser.get(&consent.url).await;
    assert!(page.contains("expired"), "{}", page.html);
    assert!(
        page.forms().iter().all(|f| !f
            .buttons
            .contains(&("decision".to_owned(), "approve".to_owned()))),
        "{}",
        page.html
    );
}

#[tokio::test]
async fn device_supplied_text_is_labelled_and_cut() {
    let server = Server::start(|_| {}).await;
    let claim = format!("TotallyYourBank/1.0 {}", "X".repeat(1_000));
    let device = reqwest::Client::builder()
        .user_agent(claim)
        .build()
        .unwrap();
    let tv: serde_json::Value = device
        .post(server.url("/device_authorization"))
        .form(&[("client_id", "tv-app"), ("scope", "profile")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let browser = Browser::new();
    sign_in(&browser, &server, "alice", "wonderland").await;
    let consent = enter_code(&browser, &server, &tv).await;
    assert!(consent.contains("TotallyYourBank/1.0"), "{}", consent.html);
    assert!(
        consent.contains("as the device describes itself"),
        "{}",
        consent.html
    );
    assert!(!consent.contains(&"X".repeat(100)), "{}", consent.html);
}

#[tokio::test]
async fn echoed_input_is_truncated() {
    let server = Server::start(|_| {}).await;
    let browser = Browser::new();
    let long = "A".repeat(8_000);
    let page = browser.get(&server.url("/device")).await;
    let form = page.form("/device").fill("user_code", &long);
    let answer = browser.submit(&page, &form, None).await;
    assert_eq!(answer.status, 400);
    assert!(answer.html.len() < 8_000, "{} bytes", answer.html.len());
    let page = browser.get(&server.url("/login")).await;
    let form = page
        .form("/login")
        .fill("username", &long)
        .fill("password", "x");
    let answer = browser.submit(&page, &form, None).await;
    assert_eq!(answer.status, 401);
    assert!(answer.html.len() < 8_000, "{} bytes", answer.html.len());

    // Two megabytes of code: refused, and nothing like it sent back.
    let page = browser.get(&server.url("/device")).await;
    let form = page
        .form("/device")
        .fill("user_code", &"A".repeat(2_000_000));
    let answer = browser.submit(&page, &form, None).await;
    assert!(answer.status >= 400);
    assert!(answer.html.len() < 8_000, "{} bytes", answer.html.len());
}

#[tokio::test]
async fn the_api_is_never_cached() {
    let server = Server::start(|_| {}).await;
    let tokens = approved_tokens(&server, TV, "profile").await;
    let http = reqwest::Client::new();
    for bearer in [tokens["access_token"].as_str().unwrap(), "unknown"] {
        let response = http
            .get(server.url("/api/me"))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response
                .headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{bearer}"
        );
    }
}
