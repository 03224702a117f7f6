//! Sessions of the example server under load: none stored for a visitor who
//! has not yet given the server anything to remember, a bound on how many live
//! at once, and cookies named and flagged for https.

mod support;

use support::browser::Browser;
use support::{Server, sign_in};

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn is_session_cookie(cookie: &str) -> bool {
    cookie.starts_with("sid=") || cookie.starts_with("__Host-sid=")
}

#[tokio::test]
async fn cookieless_page_views_store_no_session() {
    let server = Server::start(|_| {}).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for i in 0..3_000 {
        let path = ["/device", "/login", "/consent"][i % 3];
        let response = http.get(server.url(path)).send().await.unwrap();
        assert!(
            response.status().is_success() || response.status().is_redirection(),
            "{path}: {}",
            response.status()
        );
        let cookies = set_cookies(&response);
        assert!(
            !cookies.iter().any(|c| is_session_cookie(c)),
            "{path} set a session cookie: {cookies:?}"
        );
    }
    assert_eq!(server.host.live_sessions().await, 0);
}

#[tokio::test]
async fn the_number_of_live_sessions_is_bounded() {
    let server = Server::start(|o| o.max_sessions = 200).await;
    // Each fresh browser that signs in holds a session: 1,000 of them.
    for _ in 0..1_000 {
        let page = sign_in(&Browser::new(), &server, "bob", "builder").await;
        assert_eq!(page.path(), "/device", "{}", page.html);
    }
    let live = server.host.live_sessions().await;
    assert!(live <= 200, "{live} live sessions");
    // The newest is still served.
    let browser = Browser::new();
    sign_in(&browser, &server, "alice", "wonderland").await;
    let page = browser.get(&server.url("/device")).await;
    assert!(page.contains("Alice Liddell"), "{}", page.html);
}

#[tokio::test]
async fn under_https_cookies_are_host_prefixed_and_secure() {
    let server = Server::start(|o| o.issuer = "https://id.example".to_owned()).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The sign-in form and its CSRF cookie, then a sign-in that makes a session.
    let response = http.get(server.url("/login")).send().await.unwrap();
    let mut jar = Vec::new();
    for cookie in set_cookies(&response) {
        assert!(cookie.starts_with("__Host-"), "{cookie}");
        assert!(
            cookie.contains("Secure") && cookie.contains("Path=/"),
            "{cookie}"
        );
        assert!(!cookie.contains("Domain"), "{cookie}");
        jar.push(cookie.split(';').next().unwrap().to_owned());
    }
    let html = response.text().await.unwrap();
    let csrf = html
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let response = http
        .post(server.url("/login"))
        .header("cookie", jar.join("; "))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "alice"),
            ("password", "wonderland"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let cookies = set_cookies(&response);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("__Host-sid="))
        .unwrap_or_else(|| panic!("no __Host- session cookie: {cookies:?}"));
    for flag in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(flag), "{session}");
    }
}

/// The numbers in examples/server/README.md, measured on loopback:
/// `cargo test --all-features --test host_sessions -- --ignored --nocapture`.
/// Prints the median latency of a signed-in `GET /device` with no other
/// session, then with 100,000 others.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, not a check"]
async fn measure_page_latency_at_0_and_100k_sessions() {
    let server = Server::start(|o| o.max_sessions = 200_000).await;
    let browser = Browser::new();
    sign_in(&browser, &server, "alice", "wonderland").await;
    let before = median(&server, &browser).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = server.url("/login");
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            for _ in 0..12_500 {
                // A session per sign-in, each from a fresh cookie jar.
                let token = "x".repeat(43);
                let response = http
                    .post(&url)
                    .header("cookie", format!("csrf={token}"))
                    .form(&[
                        ("csrf", token.as_str()),
                        ("username", "bob"),
                        ("password", "builder"),
                    ])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 303);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let live = server.host.live_sessions().await;
    let after = median(&server, &browser).await;
    println!("median GET /device: {before:?} with 1 session, {after:?} with {live} sessions");
}

async fn median(server: &Server, browser: &Browser) -> std::time::Duration {
    let url = server.url("/device");
    let mut took = Vec::new();
    for _ in 0..2_000 {
        let start = std::time::Instant::now();
        let page = browser.get(&url).await;
        took.push(start.elapsed());
        assert_eq!(page.status, 200);
    }
    took.sort();
    took[took.len() / 2]
}
