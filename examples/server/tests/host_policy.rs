//! The host's policy and the clients' registrations through the example
//! server: a client not registered for the device grant, the complete link
//! only for clients that ask, the scope ceiling, report-only, a client
//! withdrawn between approval and redemption; and the audit log as JSON lines,
//! with the documented phishing query (SECURITY.md) run over real flows.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex};

use device_grant::{ManualClock, PolicyMode};
use serde_json::Value;
use support::app::{ClientAddress, Options};
use support::browser::{Browser, Page};
use support::{Server, ask_raw, device_http_from, poll_raw};

const TV: (&str, Option<&str>) = ("tv-app", None);
const SPEAKER: (&str, Option<&str>) = ("speaker", None);

/// What the audit log wrote, line by line.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn parsed(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
            .collect()
    }
}

/// A server behind a (simulated) trusted proxy, on a stopped clock, writing
/// its audit log as JSON lines.
async fn start(configure: impl FnOnce(&mut Options)) -> (Server, Arc<ManualClock>, Lines) {
    let clock = Arc::new(ManualClock::default());
    let lines = Lines::default();
    let server = Server::start({
        let clock = clock.clone();
        let lines = lines.clone();
        move |o| {
            o.interval = 1;
            o.clock = clock;
            o.client_address = ClientAddress::ForwardedFor;
            o.events = Some(Arc::new(support::app::audit::JsonLines::new(lines)));
            configure(o);
        }
    })
    .await;
    (server, clock, lines)
}

/// `client` asks for `scope` from `ip`: status and JSON.
async fn ask_from(
    server: &Server,
    client: (&str, Option<&str>),
    ip: &str,
    scope: &str,
) -> (u16, Value) {
    let mut form = vec![("client_id", client.0), ("scope", scope)];
    if let Some(secret) = client.1 {
        form.push(("client_secret", secret));
    }
    let response = device_http_from(ip)
        .post(server.url("/device_authorization"))
        .form(&form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// alice opens the complete link (or types the code) from `ip`, signs in, and
/// gets the consent page.
async fn consent_from(server: &Server, ip: &str, codes: &Value) -> (Browser, Page) {
    let browser = Browser::from_address(ip);
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
    assert_eq!(page.path(), "/consent", "{}", page.html);
    (browser, page)
}

/// alice approves from `ip`, confirming the step-up when the page asks for it
/// (as a phished person does: they believe the request is theirs).
async fn approve_from(server: &Server, ip: &str, codes: &Value) {
    let (browser, consent) = consent_from(server, ip, codes).await;
    let mut form = consent.form("/consent");
    if consent.contains("Confirm it’s you to allow") {
        form = form.check("own_device").fill("password", "wonderland");
    }
    let done = browser
        .submit(&consent, &form, Some(("decision", "approve")))
        .await;
    assert_eq!(done.status, 200, "{}", done.html);
}

#[tokio::test]
async fn a_client_not_registered_for_the_device_grant_gets_unauthorized_client() {
    let server = Server::start(|_| {}).await;
    let response = reqwest::Client::new()
        .post(server.url("/device_authorization"))
        .form(&[
            ("client_id", "portal"),
            ("client_secret", "portal-secret"),
            ("scope", "profile"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");
}

#[tokio::test]
async fn the_complete_link_only_for_the_client_that_asks_and_the_scope_ceiling() {
    let server = Server::start(|_| {}).await;
    let tv = ask_raw(&server, TV, "profile").await;
    assert!(
        tv["verification_uri_complete"]
            .as_str()
            .is_some_and(|uri| uri.contains("user_code=")),
        "{tv}"
    );
    let speaker = ask_raw(&server, SPEAKER, "profile").await;
    assert!(
        speaker.get("verification_uri_complete").is_none(),
        "{speaker}"
    );
    assert_eq!(speaker["verification_uri"], server.url("/device"));

    // `openid` is allowed to the speaker, but not through the device grant.
    let response = reqwest::Client::new()
        .post(server.url("/device_authorization"))
        .form(&[("client_id", "speaker"), ("scope", "openid profile")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope");

    // Even from the complete link, the person confirms the code on the page
    // before anything is looked up (RFC 8628 §3.3.1).
    let link = tv["verification_uri_complete"].as_str().unwrap();
    let page = Browser::new().get(link).await;
    assert!(page.contains("Check that this code is the one on your device"));
    assert_eq!(
        page.form("/device").value("user_code"),
        tv["user_code"].as_str()
    );
}

#[tokio::test]
async fn report_only_reports_the_step_up_and_lets_the_flow_through() {
    let (server, clock, lines) = start(|o| o.policy_mode = PolicyMode::ReportOnly).await;
    let (_, codes) = ask_from(&server, TV, "198.51.100.7", "profile").await;
    // From another network: the enforced policy would ask for a step-up.
    let (browser, consent) = consent_from(&server, "203.0.113.9", &codes).await;
    assert!(
        !consent.contains("Confirm it’s you to allow"),
        "{}",
        consent.html
    );
    let done = browser
        .submit(
            &consent,
            &consent.form("/consent"),
            Some(("decision", "approve")),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.html);
    clock.advance(time::Duration::seconds(2));
    let (status, tokens) = poll_raw(&server, TV, &codes).await;
    assert_eq!(status, 200, "{tokens}");

    let approved = lines
        .parsed()
        .into_iter()
        .find(|e| e["event"] == "approved")
        .unwrap();
    assert_eq!(approved["proximity"], "different_network");
    assert_eq!(approved["policy_step"], "approval");
    assert_eq!(approved["policy_decision"], "step_up");
    assert_eq!(approved["policy_enforced"], false);
}

#[tokio::test]
async fn a_client_withdrawn_between_approval_and_redemption_gets_access_denied() {
    let (server, clock, lines) = start(|_| {}).await;
    let (_, codes) = ask_from(&server, TV, "198.51.100.7", "profile").await;
    approve_from(&server, "198.51.100.7", &codes).await;
    assert!(server.host.set_device_grant("tv-app", false));
    clock.advance(time::Duration::seconds(2));
    let (status, body) = poll_raw(&server, TV, &codes).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("access_denied"))
    );
    // Registered again: the request stays denied, with no path to tokens.
    assert!(server.host.set_device_grant("tv-app", true));
    clock.advance(time::Duration::seconds(2));
    let (_, body) = poll_raw(&server, TV, &codes).await;
    assert_eq!(body["error"], "access_denied");
    assert_eq!(server.issued(), 0);
    let refused = lines
        .parsed()
        .into_iter()
        .find(|e| e["event"] == "refused")
        .unwrap();
    assert_eq!(refused["policy_step"], "redemption");
    assert_eq!(refused["subject"], "alice");
}

/// The query of SECURITY.md ("Finding device-code phishing in the audit
/// log"), on parsed lines: approvals from another network than the device's,
/// per client and hour, flagged from `threshold` on.
fn phishing_query(events: &[Value], threshold: usize) -> Vec<(String, String, usize)> {
    let mut groups: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e["event"] == "approved" && e["proximity"] == "different_network")
    {
        let hour = e["at"].as_str().unwrap()[..13].to_owned();
        let client = e["client_id"].as_str().unwrap().to_owned();
        *groups.entry((client, hour)).or_default() += 1;
    }
    groups
        .into_iter()
        .filter(|(_, n)| *n >= threshold)
        .map(|((client, hour), n)| (client, hour, n))
        .collect()
}

#[tokio::test]
async fn the_audit_log_query_flags_a_phishing_campaign_and_not_ordinary_use() {
    let (server, clock, lines) = start(|_| {}).await;
    // The campaign: an attacker starts TV flows from their own network and
    // sends the codes to three people, who approve from their homes.
    let attacker = "203.0.113.66";
    for victim in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        let (_, codes) = ask_from(&server, TV, attacker, "profile").await;
        approve_from(&server, victim, &codes).await;
        clock.advance(time::Duration::seconds(2));
        assert_eq!(poll_raw(&server, TV, &codes).await.0, 200);
    }
    // Ordinary use: three speakers approved from their own homes, and one
    // from a phone on mobile data.
    for home in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        let (_, codes) = ask_from(&server, SPEAKER, home, "profile").await;
        approve_from(&server, home, &codes).await;
    }
    let (_, codes) = ask_from(&server, SPEAKER, "192.0.2.4", "profile").await;
    approve_from(&server, "100.64.0.9", &codes).await;

    let events = lines.parsed();
    // Every line carries the documented members; none carries a secret.
    let log = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert!(!log.contains(codes["device_code"].as_str().unwrap()));
    assert!(!log.contains(codes["user_code"].as_str().unwrap()));
    for e in &events {
        for member in [
            "at",
            "event",
            "id",
            "client_id",
            "device_ip",
            "device_user_agent",
            "approver_ip",
            "proximity",
            "subject",
            "policy_step",
            "policy_decision",
            "policy_enforced",
        ] {
            assert!(e.get(member).is_some(), "{member} in {e}");
        }
        assert!(
            time::OffsetDateTime::parse(
                e["at"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok()
        );
    }

    let flagged = phishing_query(&events, 3);
    assert_eq!(
        flagged,
        [("tv-app".to_owned(), "2026-01-01T00".to_owned(), 3)],
        "{events:#?}"
    );
    // What the flagged group shows an analyst: one device network, three
    // approvers' networks.
    let campaign: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "approved" && e["client_id"] == "tv-app")
        .collect();
    let devices: BTreeSet<&str> = campaign
        .iter()
        .map(|e| e["device_ip"].as_str().unwrap())
        .collect();
    let approvers: BTreeSet<&str> = campaign
        .iter()
        .map(|e| e["approver_ip"].as_str().unwrap())
        .collect();
    assert_eq!(devices.into_iter().collect::<Vec<_>>(), [attacker]);
    assert_eq!(approvers.len(), 3);
    // The phished approvals went through the step-up the policy asked for.
    assert!(campaign.iter().all(|e| e["policy_decision"] == "step_up"));
}
