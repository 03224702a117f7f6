//! The device authorization flow from the device's side (RFC 8628 §3.1–§3.5),
//! over plain HTTP with `reqwest`, so that every request is visible.

pub mod cli;

use std::io::Write;
use std::time::{Duration, Instant};

use qrcode::render::unicode::Dense1x2;
use serde::Deserialize;

#[derive(Debug)]
pub struct Options {
    /// The authorization server's issuer URL.
    pub server: String,
    pub client_id: String,
    /// For confidential clients; sent with HTTP Basic.
    pub client_secret: Option<String>,
    pub scope: Option<String>,
}

/// What `/api/me` says about whom the device acts for.
#[derive(Debug, Deserialize)]
pub struct Me {
    pub sub: String,
    pub client_id: String,
    pub scope: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("cannot reach {0}: {1}")]
    Unreachable(String, reqwest::Error),
    #[error("the server refused: {0}")]
    Refused(String),
    #[error("access was denied on the verification page")]
    Denied,
    #[error("the code expired before anyone approved it; run again for a new one")]
    Expired,
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

#[derive(Deserialize)]
struct ServerMetadata {
    device_authorization_endpoint: String,
    token_endpoint: String,
    /// RFC 8414: absent means the server does not support PKCE.
    #[serde(default)]
    code_challenge_methods_supported: Vec<String>,
}

/// PKCE (RFC 7636 §4.1, §4.2): a verifier of 32 random bytes (43 characters
/// of base64url) and its `S256` challenge. The verifier stays on the device
/// until the polls, so whoever sees the device code alone cannot redeem it.
struct Pkce {
    verifier: String,
    challenge: String,
}

impl Pkce {
    fn generate() -> Self {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use sha2::Digest as _;
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        let verifier = URL_SAFE_NO_PAD.encode(bytes);
        let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        Self {
            verifier,
            challenge,
        }
    }
}

// Debug is not derived: the struct holds the device code.
#[derive(Deserialize)]
struct Codes {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: u64,
    #[serde(default = "default_interval")]
    interval: u64,
}

fn default_interval() -> u64 {
    // RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default."
    5
}

#[derive(Deserialize)]
struct Tokens {
    access_token: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    error_description: Option<String>,
    /// With `slow_down`, servers such as device-grant say the interval to keep.
    interval: Option<u64>,
}

/// Backing off after a connection error never waits longer than this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Runs the flow, writing what the device's screen shows to `screen`, and
/// returns whom the device now acts for.
pub async fn run(options: &Options, screen: &mut impl Write) -> Result<Me, FlowError> {
    let http = reqwest::Client::builder()
        .user_agent(concat!(
            "device-grant-example-device/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|e| FlowError::Unreachable(options.server.clone(), e))?;

    // RFC 8414: the endpoints come from the server's metadata.
    let metadata_url = format!("{}/.well-known/oauth-authorization-server", options.server);
    let metadata: ServerMetadata = http
        .get(&metadata_url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| FlowError::Unreachable(metadata_url.clone(), e))?
        .json()
        .await
        .map_err(|e| FlowError::Protocol(e.to_string()))?;

    // §3.1: ask for codes, with a PKCE challenge when the server takes one.
    let pkce = metadata
        .code_challenge_methods_supported
        .iter()
        .any(|m| m == "S256")
        .then(Pkce::generate);
    let mut form = vec![("client_id", options.client_id.as_str())];
    if let Some(scope) = &options.scope {
        form.push(("scope", scope));
    }
    if let Some(pkce) = &pkce {
        form.push(("code_challenge", &pkce.challenge));
        form.push(("code_challenge_method", "S256"));
    }
    let response = authenticated(&http, &metadata.device_authorization_endpoint, options)
        .form(&form)
        .send()
        .await
        .map_err(|e| FlowError::Unreachable(metadata.device_authorization_endpoint.clone(), e))?;
    if !response.status().is_success() {
        return Err(FlowError::Refused(describe_error(response).await));
    }
    let codes: Codes = response
        .json()
        .await
        .map_err(|e| FlowError::Protocol(e.to_string()))?;

    show_codes(screen, &codes);
    let verifier = pkce.as_ref().map(|p| p.verifier.as_str());
    let tokens = poll(
        &http,
        &metadata.token_endpoint,
        options,
        &codes,
        verifier,
        screen,
    )
    .await?;

    // The token at work: the protected API says whom it stands for.
    let me_url = format!("{}/api/me", options.server);
    let response = http
        .get(&me_url)
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .map_err(|e| FlowError::Unreachable(me_url.clone(), e))?;
    if !response.status().is_success() {
        return Err(FlowError::Refused(format!(
            "/api/me answered {}",
            response.status()
        )));
    }
    response
        .json()
        .await
        .map_err(|e| FlowError::Protocol(e.to_string()))
}

/// A POST carrying the client's credentials, if it has a secret.
fn authenticated(http: &reqwest::Client, url: &str, options: &Options) -> reqwest::RequestBuilder {
    let request = http.post(url);
    match &options.client_secret {
        // RFC 6749 §2.3.1: both parts form-urlencoded before Basic encoding.
        Some(secret) => request.basic_auth(
            form_urlencoded::byte_serialize(options.client_id.as_bytes()).collect::<String>(),
            Some(form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()),
        ),
        None => request,
    }
}

/// What the person needs: where to go, the code in large letters, and a QR code
/// of the link that has the code in it.
fn show_codes(screen: &mut impl Write, codes: &Codes) {
    let spaced: String = codes
        .user_code
        .chars()
        .map(|c| format!("{c} "))
        .collect::<String>()
        .trim_end()
        .to_owned();
    let bar = "━".repeat(spaced.chars().count() + 4);
    let _ = writeln!(
        screen,
        "\nOn your phone or computer, go to:\n\n    {}\n",
        codes.verification_uri
    );
    let _ = writeln!(screen, "and enter this code:\n");
    let _ = writeln!(screen, "    ┏{bar}┓");
    let _ = writeln!(screen, "    ┃  {spaced}  ┃");
    let _ = writeln!(screen, "    ┗{bar}┛\n");
    if let Some(complete) = &codes.verification_uri_complete {
        if let Ok(qr) = qrcode::QrCode::new(complete.as_bytes()) {
            let art = qr
                .render::<Dense1x2>()
                .dark_color(Dense1x2::Light)
                .light_color(Dense1x2::Dark)
                .quiet_zone(true)
                .build();
            let _ = writeln!(screen, "Or scan this code with your phone:\n\n{art}\n");
        }
        let _ = writeln!(screen, "Or open: {complete}\n");
    }
    let _ = screen.flush();
}

/// §3.4–§3.5: poll the token endpoint at the interval until the person answers,
/// slowing down when told, backing off when the server cannot be reached.
async fn poll(
    http: &reqwest::Client,
    token_endpoint: &str,
    options: &Options,
    codes: &Codes,
    code_verifier: Option<&str>,
    screen: &mut impl Write,
) -> Result<Tokens, FlowError> {
    let deadline = Instant::now() + Duration::from_secs(codes.expires_in);
    let mut interval = Duration::from_secs(codes.interval.max(1));
    let mut wait = interval;
    let mut form = vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", codes.device_code.as_str()),
        ("client_id", options.client_id.as_str()),
    ];
    if let Some(verifier) = code_verifier {
        form.push(("code_verifier", verifier));
    }
    loop {
        countdown(screen, wait, deadline).await;
        if Instant::now() >= deadline {
            return Err(FlowError::Expired);
        }
        let sent = authenticated(http, token_endpoint, options)
            .form(&form)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(_) => {
                // The server may be restarting: wait longer each time, up to a cap.
                wait = (wait * 2).min(MAX_BACKOFF);
                let _ = write!(
                    screen,
                    "\rServer unreachable; retrying in {} s.        ",
                    wait.as_secs()
                );
                continue;
            }
        };
        if response.status().is_success() {
            return response
                .json()
                .await
                .map_err(|e| FlowError::Protocol(e.to_string()));
        }
        let error: ErrorBody = response
            .json()
            .await
            .map_err(|e| FlowError::Protocol(e.to_string()))?;
        match error.error.as_str() {
            "authorization_pending" => {}
            // §3.5: "the interval MUST be increased by 5 seconds for this and
            // all subsequent requests"; a server that says more is obeyed.
            "slow_down" => {
                let stepped = interval + Duration::from_secs(5);
                interval = error
                    .interval
                    .map(Duration::from_secs)
                    .map_or(stepped, |said| said.max(stepped));
            }
            "access_denied" => return Err(FlowError::Denied),
            "expired_token" => return Err(FlowError::Expired),
            _ => return Err(FlowError::Refused(format_error(&error))),
        }
        wait = interval;
    }
}

/// Waits `wait`, showing how long the code has left once a second.
async fn countdown(screen: &mut impl Write, wait: Duration, deadline: Instant) {
    let until = Instant::now() + wait;
    loop {
        let now = Instant::now();
        if now >= until {
            return;
        }
        let left = deadline.saturating_duration_since(now).as_secs();
        let _ = write!(
            screen,
            "\rWaiting for approval… the code expires in {}:{:02}.   ",
            left / 60,
            left % 60
        );
        let _ = screen.flush();
        tokio::time::sleep((until - now).min(Duration::from_secs(1))).await;
    }
}

async fn describe_error(response: reqwest::Response) -> String {
    let status = response.status();
    match response.json::<ErrorBody>().await {
        Ok(error) => format_error(&error),
        Err(_) => format!("HTTP {status}"),
    }
}

fn format_error(error: &ErrorBody) -> String {
    match &error.error_description {
        Some(description) => format!("{} ({description})", error.error),
        None => error.error.clone(),
    }
}
