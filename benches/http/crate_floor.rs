//! The crate's floor over HTTP: the HTTP ceiling's server (the same axum,
//! runtime and `axum::serve` with connect info, and the same nine response
//! headers), with `POST /device_authorization` and `POST /token` answered by
//! `DeviceGrant` on the memory store and nothing else around it: no timeouts,
//! no connection limit, no audit events, no consent policy, no DPoP.
//!
//! It answers what any host pays for the crate's own work per request (form
//! parsing with the RFC 6749 §3.1 rules, client authentication, hashing, the
//! store, the JSON answer), measured against the ceiling by
//! `ALT_SERVER=target/release/examples/http-crate-floor bash benches/http/run.sh`.
//! It takes the example server's load-test options (`--addr`, `--rate-limits`,
//! `--interval`, `--expires-in`) and serves the example's `tv-app` client.
//! Not a server to copy: the example server is.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use device_grant::{
    ApprovedGrant, AuthMethod, BackendError, Budgets, Client, Config, DeviceGrant, EndpointRequest,
    HttpResponse, Interval, PollingRules, RequestContext, ScopeSet, StaticClients, ToHttp,
    TokenIssuer, TokenResponse, UserCodeKey,
};

// The example server's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: http-crate-floor [--addr 127.0.0.1:0] [--interval SECS] \
                     [--expires-in SECS] [--rate-limits on|off]";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Polls never reach it: nobody approves.
struct NoTokens;

#[async_trait]
impl TokenIssuer for NoTokens {
    async fn issue(&self, _: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
        Err(BackendError::other("the floor server issues no tokens"))
    }
}

struct App {
    grant: DeviceGrant,
    /// The security headers the example server adds to every response, as the
    /// ceiling sends them.
    security: HeaderMap,
}

async fn run() -> Result<(), String> {
    let mut addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut interval = 5;
    let mut expires_in = 600;
    let mut rate_limits = true;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = || format!("{flag}: got `{value}`\n{USAGE}");
        match flag.as_str() {
            "--addr" => addr = value.parse().map_err(|_| bad())?,
            "--interval" => interval = value.parse().map_err(|_| bad())?,
            "--expires-in" => expires_in = value.parse().map_err(|_| bad())?,
            "--rate-limits" => rate_limits = value == "on",
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;

    // The example server's configuration for the same options.
    let interval = Interval::from_secs(interval).ok_or("--interval: at least 1")?;
    let leeway = if interval.secs() > 1 {
        time::Duration::seconds(1)
    } else {
        time::Duration::ZERO
    };
    let budgets = if rate_limits {
        Budgets::default()
    } else {
        Budgets {
            authorizations_per_source: None,
            authorizations_per_wide_source: None,
            authorizations_per_client: None,
            pending_per_client: None,
            pending_total: None,
            ..Budgets::default()
        }
    };
    let key = UserCodeKey::new(&rand::random::<[u8; 32]>()).map_err(|e| e.to_string())?;
    let config = Config::builder(format!("http://{addr}/device"), key)
        .lifetime(time::Duration::seconds(expires_in))
        .interval(interval)
        .polling(PollingRules {
            leeway,
            ..PollingRules::default()
        })
        .budgets(budgets)
        .build()
        .map_err(|e| e.to_string())?;
    let mut tv = Client::for_device_grant("tv-app", vec![AuthMethod::None]);
    tv.verification_uri_complete = true;
    tv.allowed_scopes =
        ScopeSet::parse("openid profile email offline_access").map_err(|e| e.to_string())?;
    tv.default_scopes = ScopeSet::parse("profile").map_err(|e| e.to_string())?;
    let clients = Arc::new(StaticClients::new().with_public(tv));
    let grant = DeviceGrant::builder(config, clients, Arc::new(NoTokens)).build();

    let mut security = HeaderMap::new();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        security.insert(name, HeaderValue::from_static(value));
    }
    let router = Router::new()
        .route("/device_authorization", post(device_authorization))
        .route("/token", post(token))
        .with_state(Arc::new(App { grant, security }));
    println!("listening on http://{addr}");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .map_err(|e| format!("server failed: {e}"))
}

fn request<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> EndpointRequest<'a> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    EndpointRequest {
        content_type: text(header::CONTENT_TYPE),
        authorization: text(header::AUTHORIZATION),
        body,
        dpop: None,
        client_certificate: None,
    }
}

async fn device_authorization(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let context = RequestContext {
        ip: Some(peer.ip()),
        ..RequestContext::default()
    };
    let result = app
        .grant
        .device_authorization(request(&headers, &body), context)
        .await;
    respond(&app, result.to_http())
}

async fn token(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let result = app.grant.token(request(&headers, &body)).await;
    respond(&app, result.to_http())
}

fn respond(app: &App, response: HttpResponse) -> Response {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = (status, response.body).into_response();
    let headers = out.headers_mut();
    for (name, value) in response.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_lowercase(name.as_bytes()),
            HeaderValue::try_from(value),
        ) {
            headers.insert(name, value);
        }
    }
    for (name, value) in &app.security {
        headers.insert(name, value.clone());
    }
    out
}
