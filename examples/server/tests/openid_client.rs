//! A real third-party client in another language: openid-client v6 (Node.js)
//! discovers the server from its metadata, asks for codes with a PKCE
//! challenge, polls with the verifier and a DPoP proof, and calls `/api/me`
//! through its own DPoP fetch, while a person approves over HTTP.
//!
//! The device is `tests/clients/openid-client/device.mjs`; its dependencies
//! are pinned by the lock file there and installed by
//! `scripts/setup/40-node-clients.sh`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use device_grant::EventKind;
use serde_json::Value;
use support::{Server, alice_approves};
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Far longer than the flow takes: only there so that a hung client fails
/// the test instead of stalling the suite.
const HANG: Duration = Duration::from_secs(120);

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/openid-client")
}

/// The Node program as a device: its first line (the codes) read, the rest
/// to come.
struct Device {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    /// What the device printed for the person: `user_code`,
    /// `verification_uri`, and `jkt`, its DPoP key's thumbprint.
    codes: Value,
}

/// How the device ended: its exit status, its outcome line on success, its
/// error line on failure.
struct Ended {
    status: ExitStatus,
    outcome: Option<Value>,
    error: Option<Value>,
}

impl Device {
    /// Starts the device for `client_id` on `server` with `extra` arguments
    /// and reads its codes.
    async fn start(server: &Server, client_id: &str, extra: &[&str]) -> Device {
        let dir = client_dir();
        let installed = dir
            .join("node_modules/openid-client/package.json")
            .is_file();
        assert!(
            installed,
            "openid-client is not installed in {}: run scripts/setup/40-node-clients.sh first",
            dir.display()
        );
        let mut child = Command::new("node")
            .arg(dir.join("device.mjs"))
            .arg(&server.base)
            .arg(client_id)
            .args(extra)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run node ({e}): run scripts/setup/40-node-clients.sh first")
            });
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(HANG, stdout.next_line())
            .await
            .expect("the device printed no codes")
            .unwrap();
        let Some(first) = first else {
            let output = child.wait_with_output().await.unwrap();
            panic!(
                "the device ended before asking for codes ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        };
        Device {
            child,
            stdout,
            codes: serde_json::from_str(&first).unwrap(),
        }
    }

    /// Waits for the device to end.
    async fn end(mut self) -> Ended {
        tokio::time::timeout(HANG, async {
            let mut outcome = None;
            while let Some(line) = self.stdout.next_line().await.unwrap() {
                outcome = Some(serde_json::from_str(&line).unwrap());
            }
            let output = self.child.wait_with_output().await.unwrap();
            let error = String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .map(|line| serde_json::from_str(line).unwrap());
            Ended {
                status: output.status,
                outcome,
                error,
            }
        })
        .await
        .expect("the device did not end")
    }
}

/// Where the device hands its access token over without printing it: a new
/// file in the target's scratch directory, removed when dropped.
struct TokenFile(PathBuf);

impl TokenFile {
    fn new() -> Self {
        Self(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "openid-client-token-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        )))
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn me(server: &Server, authorization: String) -> u16 {
    reqwest::Client::new()
        .get(server.url("/api/me"))
        .header("Authorization", authorization)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn interval_one(options: &mut support::app::Options) {
    options.interval = 1;
}

#[tokio::test]
async fn openid_client_gets_dpop_bound_tokens_with_pkce_and_calls_the_api() {
    dpop_flow(Server::start(interval_one).await).await;
}

/// With server nonces required (RFC 9449 §8), every first proof openid-client
/// sends (at the token endpoint, and again at the refresh) is refused with
/// `use_dpop_nonce` and a nonce, and openid-client retries with it: the flow
/// ends as without nonces.
#[tokio::test]
async fn openid_client_follows_the_servers_dpop_nonces() {
    let server = Server::start(|options| {
        interval_one(options);
        options.dpop_nonces = Some(device_grant::DpopNonces::generate());
    })
    .await;
    dpop_flow(server).await;
}

async fn dpop_flow(server: Server) {
    let file = TokenFile::new();
    // `cli` must send a PKCE challenge (S256) and its verifier.
    let device = Device::start(&server, "cli", &["--token-file", file.0.to_str().unwrap()]).await;
    assert_eq!(device.codes["verification_uri"], server.url("/device"));
    let jkt = device.codes["jkt"].clone();
    alice_approves(&server, &device.codes).await;
    let ended = device.end().await;
    assert!(ended.status.success(), "{:?}", ended.error);
    let outcome = ended.outcome.expect("the device's outcome");

    assert_eq!(outcome["token_type"], "DPoP");
    // openid-client lowercases the token type it reports.
    assert_eq!(outcome["client_token_type"], "dpop");
    assert_eq!(outcome["refresh_token"], true);
    assert_eq!(outcome["me"]["status"], 200, "{outcome}");
    let body = &outcome["me"]["body"];
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["client_id"], "cli");
    let mut scope: Vec<_> = body["scope"].as_str().unwrap().split(' ').collect();
    scope.sort_unstable();
    assert_eq!(scope, ["offline_access", "profile"]);
    // Bound to the key openid-client generated: its RFC 7638 thumbprint, as
    // `jose` computes it.
    assert!(jkt.is_string());
    assert_eq!(body["cnf"]["jkt"], jkt);
    assert_eq!(server.issued(), 1);
    // The refresh token was bound as well: openid-client refreshed with a
    // proof of its key and got a DPoP token that works.
    assert_eq!(outcome["refreshed"]["token_type"], "DPoP");
    assert_eq!(outcome["refreshed"]["me"]["status"], 200, "{outcome}");
    assert_eq!(outcome["refreshed"]["me"]["body"]["cnf"]["jkt"], jkt);

    // The live access token (the one openid-client used last) without a
    // proof of the key: refused, as a bearer token and as a DPoP token.
    let access = std::fs::read_to_string(&file.0).unwrap();
    assert!(!access.is_empty());
    assert_eq!(me(&server, format!("Bearer {access}")).await, 401);
    assert_eq!(me(&server, format!("DPoP {access}")).await, 401);
}

/// openid-client polling without the verifier, as a thief of the device
/// code would: `invalid_grant`, surfaced as its `ResponseBodyError`, and no
/// token minted.
#[tokio::test]
async fn openid_client_without_the_pkce_verifier_gets_invalid_grant() {
    let server = Server::start(interval_one).await;
    let device = Device::start(&server, "cli", &["--omit-verifier"]).await;
    assert!(device.codes["user_code"].is_string());
    let ended = device.end().await;
    assert!(!ended.status.success());
    assert_eq!(ended.outcome, None);
    let error = ended.error.expect("the device's error");
    assert_eq!(error["name"], "ResponseBodyError", "{error}");
    assert_eq!(error["error"], "invalid_grant", "{error}");
    assert_eq!(error["status"], 400, "{error}");
    assert_eq!(server.issued(), 0);
    let refusals = server.count_events(|k| matches!(k, EventKind::VerifierRefused { .. }));
    assert_eq!(refusals, 1);
}
