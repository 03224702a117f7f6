//! A real browser: headless Chromium, driven through ChromeDriver, walks the
//! verification, sign-in and consent pages at a phone's size, while the device
//! polls; then the device has its token. Each page is kept as a screenshot
//! (under `target/tmp/screenshots`; with `UPDATE_SCREENSHOTS=1`, in
//! `examples/server/screenshots`, which the README shows).
//!
//! Needs `chromium` and `chromedriver` (Debian's `chromium`, `chromium-driver`):
//! `scripts/setup/20-browser.sh` installs them.

mod support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use oauth2::{Scope, StandardDeviceAuthorizationResponse, TokenResponse as _};
use support::{Server, device_client, device_http, device_http_from};

/// ChromeDriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver() -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run chromedriver ({e}): run scripts/setup/20-browser.sh first")
        });
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start listening on port {port}");
}

async fn start_browser(driver: &Driver, profile: &std::path::Path) -> Client {
    // The flags this machine's Chromium needs headless, as root, offline; a
    // phone's viewport, since people mostly answer on their phone.
    let capabilities = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--hide-scrollbars",
                format!("--user-data-dir={}", profile.display()),
            ],
            "mobileEmulation": {
                "deviceMetrics": { "width": 390, "height": 844, "pixelRatio": 2.0 },
                "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36"
            }
        }
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

fn screenshot_dir() -> PathBuf {
    let dir = if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("screenshots")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshot_dir().join(name), png).unwrap();
}

/// Waits until the browser is on `path` after a click.
async fn wait_for_path(browser: &Client, path: &str) {
    for _ in 0..100 {
        if browser.current_url().await.unwrap().path() == path {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the browser stayed on {}, expected {path}:\n{}",
        browser.current_url().await.unwrap(),
        browser.source().await.unwrap_or_default()
    );
}

async fn wait_for_heading(browser: &Client, expected: &str) {
    let mut seen = String::new();
    for _ in 0..100 {
        if let Ok(h1) = browser.find(Locator::Css("h1")).await {
            seen = h1.text().await.unwrap_or_default();
            if seen == expected {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected the heading {expected:?}, the page shows {seen:?}");
}

/// Checks that the page is styled (the stylesheet passed the CSP) and fits the
/// phone's width without sideways scrolling.
async fn assert_styled_and_fits(browser: &Client) {
    let checks = browser
        .execute(
            "return [getComputedStyle(document.documentElement).backgroundColor,
                     document.documentElement.scrollWidth <= window.innerWidth];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(checks, serde_json::json!(["rgb(243, 245, 248)", true]));
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn type_into(browser: &Client, css: &str, text: &str) {
    let input = browser.find(Locator::Css(css)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

#[tokio::test]
async fn a_person_approves_in_chromium_and_the_device_gets_its_token() {
    let server = Server::start(|o| o.interval = 1).await;
    let tv = device_client(&server, "tv-app", None);
    let codes: StandardDeviceAuthorizationResponse = tv
        .exchange_device_code()
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("offline_access".into()))
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
                    Some(Duration::from_secs(60)),
                )
                .await
        }
    });

    let driver = start_driver().await;
    let profile = tempdir();
    let browser = start_browser(&driver, &profile).await;
    // The walk runs in its own task so that, whatever it asserts, the browser
    // session is closed after it: a panic here would leave Chromium running.
    let walk = tokio::spawn({
        let (browser, server_base, codes) = (browser.clone(), server.base.clone(), codes.clone());
        let server = move |path: &str| format!("{server_base}{path}");
        async move {
            // Typing a wrong code first: the page says so.
            browser.goto(&server("/device")).await.unwrap();
            screenshot(&browser, "1-enter-code.png").await;
            assert_styled_and_fits(&browser).await;
            type_into(&browser, "#user_code", "BCDF-BCDF").await;
            click(&browser, "form[action='/device'] button").await;
            // The form posts and the answer loads: wait for its alert.
            let error = browser
                .wait()
                .for_element(Locator::Css("[role=alert]"))
                .await
                .unwrap();
            assert!(error.text().await.unwrap().contains("No device is waiting"));
            screenshot(&browser, "2-wrong-code.png").await;

            // The link from the device's QR code: the code is filled in, to check.
            let complete = codes.verification_uri_complete().unwrap().secret().clone();
            browser.goto(&complete).await.unwrap();
            let input = browser.find(Locator::Css("#user_code")).await.unwrap();
            assert_eq!(
                input.prop("value").await.unwrap().as_deref(),
                Some(codes.user_code().secret().as_str())
            );
            screenshot(&browser, "3-confirm-code.png").await;
            click(&browser, "form[action='/device'] button").await;

            wait_for_path(&browser, "/login").await;
            assert_styled_and_fits(&browser).await;
            type_into(&browser, "#username", "alice").await;
            type_into(&browser, "#password", "wonderland").await;
            screenshot(&browser, "4-sign-in.png").await;
            click(&browser, "form[action='/login'] button").await;

            wait_for_path(&browser, "/consent").await;
            assert_styled_and_fits(&browser).await;
            let heading = browser
                .find(Locator::Css("h1"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert_eq!(heading, "Allow Living-room TV?");
            screenshot(&browser, "5-consent.png").await;
            click(&browser, "button[value=approve]").await;

            // The answer is rendered at the same address: wait for the new heading.
            wait_for_heading(&browser, "You’re all set").await;
            screenshot(&browser, "6-done.png").await;
        }
    });
    let walked = tokio::time::timeout(Duration::from_secs(60), walk).await;
    let _ = browser.close().await;
    match walked {
        Ok(Ok(())) => {}
        Ok(Err(failed)) => std::panic::resume_unwind(failed.into_panic()),
        Err(_) => panic!("the walk through the pages took over a minute"),
    }

    let tokens = device.await.unwrap().expect("the device got its token");
    assert!(tokens.refresh_token().is_some());
    let me: serde_json::Value = reqwest::Client::new()
        .get(server.url("/api/me"))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["sub"], "alice");
    let _ = std::fs::remove_dir_all(profile);
}

/// The device is on another network than the person (it reached the server
/// through the trusted proxy from 198.51.100.7; Chromium comes straight from
/// 127.0.0.1): the consent page warns, and Allow needs the box ticked and the
/// password again.
#[tokio::test]
async fn a_device_on_another_network_needs_a_step_up_in_chromium() {
    let server = Server::start(|o| {
        o.interval = 1;
        o.client_address = support::app::ClientAddress::ForwardedFor;
    })
    .await;
    let tv = device_client(&server, "tv-app", None);
    let from_afar = device_http_from("198.51.100.7");
    let codes: StandardDeviceAuthorizationResponse = tv
        .exchange_device_code()
        .add_scope(Scope::new("profile".into()))
        .request_async(&from_afar)
        .await
        .unwrap();
    let device = tokio::spawn({
        let (tv, codes) = (tv.clone(), codes.clone());
        async move {
            tv.exchange_device_access_token(&codes)
                .request_async(
                    &from_afar,
                    tokio::time::sleep,
                    Some(Duration::from_secs(60)),
                )
                .await
        }
    });

    let driver = start_driver().await;
    let profile = tempdir();
    let browser = start_browser(&driver, &profile).await;
    let walk = tokio::spawn({
        let (browser, codes) = (browser.clone(), codes.clone());
        async move {
            let complete = codes.verification_uri_complete().unwrap().secret().clone();
            browser.goto(&complete).await.unwrap();
            click(&browser, "form[action='/device'] button").await;
            wait_for_path(&browser, "/login").await;
            type_into(&browser, "#username", "alice").await;
            type_into(&browser, "#password", "wonderland").await;
            click(&browser, "form[action='/login'] button").await;

            wait_for_path(&browser, "/consent").await;
            assert_styled_and_fits(&browser).await;
            let warning = browser.find(Locator::Css("#proximity")).await.unwrap();
            let text = warning.text().await.unwrap();
            assert!(
                text.contains("Your device is not on your network.")
                    && text.contains("198.51.100.7"),
                "{text}"
            );
            screenshot(&browser, "7-consent-other-network.png").await;

            // Allow without the step-up: the same page, with the reason.
            click(&browser, "button[value=approve]").await;
            let error = browser
                .wait()
                .for_element(Locator::Css("#consent-error"))
                .await
                .unwrap();
            assert!(
                error
                    .text()
                    .await
                    .unwrap()
                    .contains("enter your password again")
            );
            browser
                .execute(
                    "document.getElementById('consent-error').scrollIntoView()",
                    vec![],
                )
                .await
                .unwrap();
            screenshot(&browser, "8-step-up.png").await;

            click(&browser, "#own_device").await;
            type_into(&browser, "#password", "wonderland").await;
            click(&browser, "button[value=approve]").await;
            wait_for_heading(&browser, "You’re all set").await;
        }
    });
    let walked = tokio::time::timeout(Duration::from_secs(60), walk).await;
    let _ = browser.close().await;
    match walked {
        Ok(Ok(())) => {}
        Ok(Err(failed)) => std::panic::resume_unwind(failed.into_panic()),
        Err(_) => panic!("the walk through the pages took over a minute"),
    }
    let tokens = device.await.unwrap().expect("the device got its token");
    assert!(!tokens.access_token().secret().is_empty());
    let _ = std::fs::remove_dir_all(profile);
}

/// A fresh, empty Chromium profile directory.
fn tempdir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "chromium-profile-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
