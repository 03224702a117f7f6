//! The command line of the example server: flags, environment, logging, and
//! serving the app on a port.

use crate as app;
use std::net::SocketAddr;
use std::process::ExitCode;

const USAGE: &str = "usage: server [--addr 127.0.0.1:8080] [--issuer URL] \
                     [--expires-in SECS] [--interval SECS] \
                     [--store memory|redis://HOST[:PORT][/DB]|redis+cluster://HOST:PORT[,HOST:PORT…]\
                     |postgres://USER@HOST[:PORT]/DB] \
                     [--rate-limits on|off] [--client-address peer|x-forwarded-for] \
                     [--log-format text|json] [--audit-log PATH|-] \
                     [--policy enforce|report-only] [--dpop-nonces on|off] [--dpop-bind-device-codes on|off]\n\
                     environment: DEVICE_GRANT_USER_CODE_KEY (64 hex digits), the same on \
                     every instance sharing a store";

/// The environment variable holding the user-code key (hex). Not a flag:
/// command lines are visible to every user of the machine.
const KEY_VAR: &str = "DEVICE_GRANT_USER_CODE_KEY";

struct Args {
    addr: SocketAddr,
    issuer: Option<String>,
    expires_in: i64,
    interval: u32,
    store: String,
    rate_limits: bool,
    client_address: app::ClientAddress,
    log_format: app::LogFormat,
    audit_log: Option<String>,
    policy_mode: device_grant::PolicyMode,
    dpop_nonces: bool,
    dpop_bind_device_codes: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        issuer: None,
        expires_in: 600,
        interval: 5,
        store: "memory".to_owned(),
        rate_limits: true,
        client_address: app::ClientAddress::Peer,
        log_format: app::LogFormat::Text,
        audit_log: None,
        policy_mode: device_grant::PolicyMode::Enforce,
        dpop_nonces: false,
        dpop_bind_device_codes: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_owned());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |what: &str| format!("{flag}: {what}, got `{value}`");
        match flag.as_str() {
            "--addr" => args.addr = value.parse().map_err(|_| bad("expected HOST:PORT"))?,
            "--issuer" => args.issuer = Some(value),
            "--expires-in" => {
                args.expires_in = value.parse().map_err(|_| bad("expected seconds"))?
            }
            "--interval" => args.interval = value.parse().map_err(|_| bad("expected seconds"))?,
            "--store" => args.store = value,
            "--rate-limits" => {
                args.rate_limits = match value.as_str() {
                    "on" => true,
                    "off" => false,
                    _ => return Err(bad("expected `on` or `off`")),
                }
            }
            "--client-address" => {
                args.client_address = value.parse().map_err(|e: String| bad(&e))?
            }
            "--log-format" => {
                args.log_format = match value.as_str() {
                    "text" => app::LogFormat::Text,
                    "json" => app::LogFormat::Json,
                    _ => return Err(bad("expected `text` or `json`")),
                }
            }
            "--audit-log" => args.audit_log = Some(value),
            "--policy" => {
                args.policy_mode = match value.as_str() {
                    "enforce" => device_grant::PolicyMode::Enforce,
                    "report-only" => device_grant::PolicyMode::ReportOnly,
                    _ => return Err(bad("expected `enforce` or `report-only`")),
                }
            }
            "--dpop-nonces" | "--dpop-bind-device-codes" => {
                let on = match value.as_str() {
                    "on" => true,
                    "off" => false,
                    _ => return Err(bad("expected `on` or `off`")),
                };
                if flag == "--dpop-nonces" {
                    args.dpop_nonces = on;
                } else {
                    args.dpop_bind_device_codes = on;
                }
            }
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// Parses the command line, serves until stopped, and says why it stopped.
#[tokio::main]
pub async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let args = parse_args()?;
    // Security events (spent budgets, throttled sign-ins, replays, reuse) go
    // to stderr, as JSON lines with `--log-format json`.
    let logs = app::log_subscriber(args.log_format, std::io::stderr);
    tracing::subscriber::set_global_default(logs).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // The issuer is where people and devices reach this server; behind a proxy
    // or on another host it differs from the listening address.
    let issuer = args.issuer.unwrap_or_else(|| format!("http://{addr}"));

    let mut options = app::Options::new(issuer.clone());
    options.expires_in = time::Duration::seconds(args.expires_in);
    if args.expires_in < 30 {
        eprintln!(
            "WARNING: --expires-in {} is under 30 s: codes expire before most people can type \
             them. For tests only.",
            args.expires_in
        );
    }
    options.interval = args.interval;
    options.rate_limits = args.rate_limits;
    options.client_address = args.client_address;
    options.policy_mode = args.policy_mode;
    // A key of this process's own: nonces from one instance are refused by
    // another, so run one instance per name with nonces on.
    options.dpop_bind_device_codes = args.dpop_bind_device_codes;
    options.dpop_nonces = args.dpop_nonces.then(device_grant::DpopNonces::generate);
    // The audit log: one JSON object per event and line, for a SIEM.
    let audit_log: Option<std::sync::Arc<dyn device_grant::EventSink>> =
        match args.audit_log.as_deref() {
            None => None,
            Some("-") => Some(std::sync::Arc::new(app::audit::JsonLines::new(
                std::io::stdout(),
            ))),
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot open the audit log {path}: {e}"))?;
                Some(std::sync::Arc::new(app::audit::JsonLines::new(file)))
            }
        };
    options.events = audit_log;
    let storage = app::open_store(&args.store)
        .await
        .map_err(|e| e.to_string())?;
    match user_code_key()? {
        Some(key) => options.user_code_key = key,
        None if storage.shared => eprintln!(
            "WARNING: {KEY_VAR} is not set: this instance hashes user codes with a key of its \
             own, so codes of devices served by another instance on this store will not be found \
             here. Give every instance the same 64 hex digits (e.g. `openssl rand -hex 32`)."
        ),
        None => {}
    }
    if storage.shared {
        options.purge_every = Some(std::time::Duration::from_secs(60));
    }
    options.store = storage.store;
    options.limiter = storage.limiter;
    let connections = options.connections;
    let router = app::router(options).map_err(|e| format!("cannot start: {e}"))?;

    if !args.rate_limits {
        eprintln!(
            "WARNING: --rate-limits off: device authorizations are not limited per address or \
             per client. For load tests only; never in production."
        );
    }
    if args.client_address == app::ClientAddress::ForwardedFor {
        eprintln!(
            "note: client addresses come from X-Forwarded-For: only safe behind a proxy that \
             sets it and with this port reachable only by that proxy"
        );
    }
    println!("listening on http://{addr}");
    println!("  store:             {}", store_kind(&args.store));
    println!("  verification page: {issuer}/device");
    println!("  metadata:          {issuer}/.well-known/oauth-authorization-server");
    println!("  demo users:        alice / wonderland, bob / builder");
    println!(
        "  demo clients:      tv-app (public), cli (public, PKCE S256 required), \
         speaker (public, no link, profile only), printer / printer-secret (confidential); \
         portal / portal-secret is not registered for the device grant"
    );
    app::serve(listener, router, connections)
        .await
        .map_err(|e| format!("server failed: {e}"))
}

/// The user-code key from [`KEY_VAR`], if set. Its value is never printed.
fn user_code_key() -> Result<Option<device_grant::UserCodeKey>, String> {
    let Ok(hex) = std::env::var(KEY_VAR) else {
        return Ok(None);
    };
    let bad = || format!("{KEY_VAR} must be at least 64 hex digits (32 bytes)");
    let hex = hex.trim();
    if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    device_grant::UserCodeKey::new(&bytes)
        .map(Some)
        .map_err(|_| bad())
}

/// The store's kind for the start-up lines: never the URL, which may hold a
/// password.
fn store_kind(spec: &str) -> &str {
    match spec.split_once("://") {
        Some(("redis" | "rediss", _)) => "Redis (shared)",
        Some(("redis+cluster" | "rediss+cluster", _)) => "Redis Cluster (shared)",
        Some(("postgres" | "postgresql", _)) => "PostgreSQL (shared)",
        _ => "memory (this instance only)",
    }
}
