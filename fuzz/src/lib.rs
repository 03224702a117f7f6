//! The invariants the fuzz targets check, shared with `tests/regressions.rs`, so that
//! every input ever saved under `fuzz/corpus` or `fuzz/artifacts` is replayed
//! through exactly the checks that found it.
//!
//! Inputs are read by [`Input`], a byte cursor: structured choices (which
//! endpoint parameters, which client, which known code to mutate) and raw bytes
//! come from the same stream, and an exhausted stream reads as zeros, so every
//! byte string is a valid input and seeds are easy to write by hand.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use device_grant::Form;
use device_grant::fuzzing::{ClientCredentials, parse_form};
use device_grant::store::LimiterKey;
use device_grant::{
    ApprovedGrant, AuthMethod, AuthorizationId, BackendError, Budget, Client, CodeEntry, Config,
    DEVICE_CODE_GRANT_TYPE, DeviceAuthorizationResponse, DeviceGrant, EndpointRequest, Limits,
    ManualClock, OAuthError, RequestContext, RequestError, ScopeSet, StaticClients, Subject,
    ToHttp, TokenIssuer, TokenResponse, UserCodeKey, UserCodePolicy, VerificationError,
    VerificationTicket,
};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

/// A fuzz target's entry point: checks one input, panicking on a broken invariant.
pub type Target = fn(&[u8]);

/// Every fuzz target by name: the name of its `fuzz_targets/*.rs` file and of its
/// `fuzz/corpus/` and `fuzz/artifacts/` folders.
pub const TARGETS: &[(&str, Target)] = &[
    ("form", form),
    ("authorization_header", authorization_header),
    ("user_code", user_code),
    ("device_authorization", device_authorization),
    ("token", token),
    ("verify", verify),
];

// ---------------------------------------------------------------------------
// Reading inputs

/// A cursor over the fuzz input; reads past the end yield zeros and empty chunks.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    fn below(&mut self, n: u8) -> u8 {
        self.byte() % n
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// A length byte, then that many bytes (fewer at the end of the input).
    fn chunk(&mut self) -> &'a [u8] {
        let len = usize::from(self.byte()).min(self.data.len());
        let (chunk, rest) = self.data.split_at(len);
        self.data = rest;
        chunk
    }

    fn text(&mut self) -> String {
        String::from_utf8_lossy(self.chunk()).into_owned()
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// Drives a future of the crate to completion. The memory store, limiter and
/// the harness's issuer never wait on anything, so polling in a loop with a
/// no-op waker is a complete executor for them, and costs no runtime per input.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::yield_now();
    }
}

// ---------------------------------------------------------------------------
// Target: form bodies (and scope lists)

const FORM_NAMES: [&str; 6] = [
    "client_id",
    "client_secret",
    "grant_type",
    "device_code",
    "scope",
    "a",
];

/// `Form::parse` and `Form::get` against a model of RFC 6749 §3.1's rules, every
/// value through `ScopeSet::parse`, and body-only client credentials.
pub fn form(data: &[u8]) {
    let mut input = Input::new(data);
    // Odd first byte: tiny limits, so that every limit's boundary is reachable.
    let limits = if input.byte() & 1 == 1 {
        Limits {
            max_body_bytes: 1 + usize::from(input.byte()),
            max_parameters: 1 + usize::from(input.below(8)),
            max_value_bytes: 1 + usize::from(input.below(32)),
            max_scopes: 1 + usize::from(input.below(8)),
        }
    } else {
        Limits::default()
    };
    check_form(input.rest(), &limits);
}

fn check_form(body: &[u8], limits: &Limits) {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let expected_error = if body.len() > limits.max_body_bytes {
        Some(RequestError::BodyTooLarge(limits.max_body_bytes))
    } else {
        pairs.iter().enumerate().find_map(|(i, (k, v))| {
            if i == limits.max_parameters {
                Some(RequestError::TooManyParameters(limits.max_parameters))
            } else if k.contains('\u{FFFD}') || v.contains('\u{FFFD}') {
                Some(RequestError::InvalidUtf8)
            } else {
                None
            }
        })
    };
    let form = match (parse_form(body, limits), expected_error) {
        (Ok(form), None) => form,
        (Err(e), Some(expected)) => {
            assert_eq!(e, expected);
            return;
        }
        (got, expected) => panic!("Form::parse gave {got:?}, model expects {expected:?}"),
    };
    // Debug shows the names only: values may be secrets.
    let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(format!("{form:?}"), format!("{names:?}"));
    for name in FORM_NAMES {
        let values: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect();
        let expected = match values[..] {
            [] => Ok(None),
            [v] if v.len() > limits.max_value_bytes => Err(RequestError::ValueTooLong(name)),
            [""] => Ok(None),
            [v] => Ok(Some(v)),
            _ => Err(RequestError::RepeatedParameter(name)),
        };
        assert_eq!(form.get(name), expected, "get({name})");
        let required = form.require(name);
        match expected {
            Ok(Some(v)) => assert_eq!(required, Ok(v)),
            Ok(None) => assert_eq!(required, Err(RequestError::MissingParameter(name))),
            Err(e) => assert_eq!(required, Err(e)),
        }
    }
    for (_, value) in &pairs {
        check_scope_list(value);
    }
    check_body_credentials(&form);
}

/// `ScopeSet::parse` against RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B /
/// %x5D-7E )`, separated by spaces; and its display form parses back to itself.
fn check_scope_list(list: &str) {
    let tokens: Vec<&str> = list.split(' ').filter(|t| !t.is_empty()).collect();
    let valid = tokens.iter().all(|t| {
        t.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
    });
    match ScopeSet::parse(list) {
        Ok(set) => {
            assert!(valid, "ScopeSet::parse accepted a malformed list");
            let distinct: std::collections::BTreeSet<&str> = tokens.iter().copied().collect();
            assert_eq!(set.len(), distinct.len());
            assert!(distinct.iter().all(|t| set.contains(t)));
            assert_eq!(ScopeSet::parse(&set.to_string()), Ok(set));
        }
        Err(_) => assert!(!valid, "ScopeSet::parse refused a well-formed list"),
    }
}

/// Credentials from the body alone: RFC 6749 §2.3.1's `client_secret_post` or a
/// public client's bare `client_id`.
fn check_body_credentials(form: &Form<'_>) {
    let id = form.get("client_id");
    let secret = form.get("client_secret");
    let read = ClientCredentials::read(form, None);
    match (id, secret) {
        (Err(e), _) | (Ok(_), Err(e)) => {
            assert!(matches!(read, Err(OAuthError::InvalidRequest(ref got)) if *got == e))
        }
        (Ok(None), Ok(_)) => {
            assert!(matches!(
                read,
                Err(OAuthError::InvalidClient {
                    via_header: false,
                    ..
                })
            ))
        }
        (Ok(Some(id)), Ok(secret)) => {
            let c = read.expect("a body with a client_id identifies a client");
            assert_eq!(c.id.as_str(), id);
            assert_eq!(c.secret.as_ref().map(|s| s.secret()), secret);
            let method = if secret.is_some() {
                AuthMethod::ClientSecretPost
            } else {
                AuthMethod::None
            };
            assert_eq!(c.method, method);
            if let Some(s) = &c.secret {
                assert_eq!(format!("{s:?}"), "ClientSecret([redacted])");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Target: the Authorization header

const BODIES: [&[u8]; 6] = [
    b"",
    b"client_id=printer",
    b"client_id=other",
    b"client_secret=s",
    b"client_id=a&client_id=b",
    b"grant_type=x",
];

/// `ClientCredentials::read` with an `Authorization` header: a header that is
/// not well-formed Basic is always `invalid_client` (401 with a challenge), a
/// well-formed one round-trips through RFC 6749 §2.3.1's encoding, and the body
/// rules (no second method, the same client) hold.
pub fn authorization_header(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.below(4);
    let body = if input.byte() & 1 == 1 {
        BODIES[usize::from(input.below(BODIES.len() as u8))].to_vec()
    } else {
        input.chunk().to_vec()
    };
    let header = match mode {
        // Raw header text.
        0 | 1 => String::from_utf8_lossy(input.rest()).into_owned(),
        // A scheme, then base64 of raw bytes, so the decoded-credentials path is
        // reached without the fuzzer having to learn base64.
        2 => {
            let scheme = input.text();
            format!("{scheme} {}", STANDARD.encode(input.rest()))
        }
        _ => format!("Basic {}", STANDARD.encode(input.rest())),
    };
    let Ok(form) = parse_form(&body, &Limits::default()) else {
        return;
    };
    check_header_credentials(&form, &header);
}

fn check_header_credentials(form: &Form<'_>, header: &str) {
    let read = ClientCredentials::read(form, Some(header));
    let bare = parse_form(b"", &Limits::default()).expect("the empty body parses");
    let alone = ClientCredentials::read(&bare, Some(header));
    match &alone {
        Ok(c) => {
            assert_eq!(c.method, AuthMethod::ClientSecretBasic);
            assert!(!c.id.as_str().is_empty());
            let secret = c.secret.as_ref().expect("Basic carries a secret").secret();
            // RFC 6749 §2.3.1: both parts form-urlencoded, then base64.
            let encoded = format!(
                "Basic {}",
                STANDARD.encode(format!(
                    "{}:{}",
                    urlencode(c.id.as_str()),
                    urlencode(secret)
                ))
            );
            let again = ClientCredentials::read(&bare, Some(&encoded)).expect("re-encoded");
            assert_eq!(again.id, c.id);
            assert_eq!(again.secret.as_ref().map(|s| s.secret()), Some(secret));
        }
        Err(e) => {
            assert!(
                matches!(
                    e,
                    OAuthError::InvalidClient {
                        via_header: true,
                        ..
                    }
                ),
                "a bad header alone gave {e:?}"
            );
            let reply = check_error(e, Endpoint::Token);
            assert_eq!(reply.status, 401);
        }
    }
    // The body's own parameters are read first; then the header decides.
    let (Ok(body_id), Ok(body_secret)) = (form.get("client_id"), form.get("client_secret")) else {
        assert!(matches!(read, Err(OAuthError::InvalidRequest(_))));
        return;
    };
    match (alone, read) {
        (Err(_), read) => {
            assert!(matches!(
                read,
                Err(OAuthError::InvalidClient {
                    via_header: true,
                    ..
                })
            ))
        }
        (Ok(_), Err(OAuthError::InvalidRequest(RequestError::MultipleClientAuthentication))) => {
            assert!(body_secret.is_some())
        }
        (Ok(c), Err(OAuthError::InvalidRequest(RequestError::ClientIdMismatch))) => {
            assert!(body_secret.is_none());
            assert!(body_id.is_some_and(|b| b != c.id.as_str()));
        }
        (Ok(c), Ok(got)) => {
            assert!(body_secret.is_none());
            assert!(body_id.is_none_or(|b| b == c.id.as_str()));
            assert_eq!(got.id, c.id);
        }
        (Ok(_), Err(e)) => panic!("a good header with this body gave {e:?}"),
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---------------------------------------------------------------------------
// Target: user-code normalization (and verification tickets)

/// `UserCodePolicy::normalize` for both built-in policies against a model of
/// what it documents, canonical output, idempotence on the display form; and
/// `VerificationTicket::decode` round-trips.
pub fn user_code(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for (policy, alphabet) in [
        (UserCodePolicy::default(), "BCDFGHJKLMNPQRSTVWXZ"),
        (UserCodePolicy::numeric(), "0123456789"),
    ] {
        check_normalize(&policy, alphabet, &text);
    }
    if let Some(ticket) = VerificationTicket::decode(&text) {
        let encoded = ticket.encode();
        assert_eq!(VerificationTicket::decode(&encoded), Some(ticket.clone()));
        // The hash part is secret-ish: Debug shows only the id.
        let hash_part = encoded.split_once('.').map(|(_, h)| h).unwrap_or_default();
        assert!(!format!("{ticket:?}").contains(hash_part));
    }
}

fn fold_full_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

fn ignored(c: char) -> bool {
    c.is_ascii_punctuation()
        || c.is_whitespace()
        || matches!(
            c,
            '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{30FC}' | '\u{FE58}' | '\u{FE63}'
        )
}

fn check_normalize(policy: &UserCodePolicy, alphabet: &str, text: &str) {
    const MAX_INPUT_CHARS: usize = 64;
    let chars: Vec<char> = text.chars().map(fold_full_width).collect();
    let kept: Vec<char> = chars.iter().copied().filter(|&c| !ignored(c)).collect();
    let in_alphabet = |c: &char| c.is_ascii() && alphabet.contains(c.to_ascii_uppercase());
    match policy.normalize(text) {
        Ok(code) => {
            assert!(chars.len() <= MAX_INPUT_CHARS);
            let canonical = code.canonical();
            assert_eq!(canonical.len(), policy.length());
            assert!(canonical.chars().all(|c| alphabet.contains(c)));
            let typed: String = kept.iter().map(|c| c.to_ascii_uppercase()).collect();
            assert_eq!(typed, canonical);
            // The display form is the canonical one with dashes between groups.
            assert_eq!(code.display().replace('-', ""), canonical);
            assert!(!code.display().starts_with('-') && !code.display().ends_with('-'));
            assert!(!code.display().contains("--"));
            for form in [
                code.display().to_owned(),
                canonical.to_owned(),
                code.display().to_ascii_lowercase(),
            ] {
                assert!(
                    policy.normalize(&form) == Ok(code.clone()),
                    "not idempotent"
                );
            }
            assert!(!format!("{code:?}").contains(canonical));
        }
        Err(_) => {
            // Refused: too long, a character outside the alphabet, or the wrong count.
            let head = &chars[..chars.len().min(MAX_INPUT_CHARS)];
            let bad_char = head.iter().any(|&c| !ignored(c) && !in_alphabet(&c));
            assert!(
                chars.len() > MAX_INPUT_CHARS || bad_char || kept.len() != policy.length(),
                "a well-formed code was refused"
            );
        }
    }
    let generated = policy.generate();
    assert!(policy.normalize(generated.display()) == Ok(generated));
}

// ---------------------------------------------------------------------------
// Replies: RFC 6749 §5.1 / §5.2 and RFC 8628 §3.2

/// Which OAuth endpoint a reply came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// RFC 8628 §3.1.
    DeviceAuthorization,
    /// RFC 6749 §3.2 with the device code grant.
    Token,
}

const DEVICE_AUTHORIZATION_ERRORS: [&str; 7] = [
    "invalid_request",
    // RFC 9396 §5: `authorization_details` the grant does not accept.
    "invalid_authorization_details",
    "invalid_client",
    "unauthorized_client",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
];

const TOKEN_ERRORS: [&str; 12] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "authorization_pending",
    "slow_down",
    "access_denied",
    "expired_token",
    "server_error",
    "temporarily_unavailable",
];

struct Reply {
    status: u16,
    body: serde_json::Map<String, Value>,
}

fn check_common(r: &device_grant::HttpResponse) -> Reply {
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    let body = match serde_json::from_str::<Value>(&r.body) {
        Ok(Value::Object(map)) => map,
        other => panic!("the body is not a JSON object: {other:?}"),
    };
    assert!(
        r.header("www-authenticate").is_some() == (r.status == 401),
        "WWW-Authenticate goes with 401 and only with it"
    );
    if let Some(challenge) = r.header("www-authenticate") {
        assert!(challenge.starts_with("Basic "));
    }
    // Secrets of the harness never appear in a reply.
    assert!(!r.body.contains(PRINTER_SECRET));
    Reply {
        status: r.status,
        body,
    }
}

/// An RFC 6749 §5.2 error reply, consistent with the error it renders.
fn check_error(e: &OAuthError, endpoint: Endpoint) -> Reply {
    let reply = check_common(&e.to_http());
    let allowed: &[&str] = match endpoint {
        Endpoint::DeviceAuthorization => &DEVICE_AUTHORIZATION_ERRORS,
        Endpoint::Token => &TOKEN_ERRORS,
    };
    let code = match reply.body.get("error") {
        Some(Value::String(code)) => code.clone(),
        other => panic!("no `error` string member: {other:?}"),
    };
    assert!(allowed.contains(&code.as_str()), "{code} from {endpoint:?}");
    assert_eq!(code, e.code().as_str());
    let status = match code.as_str() {
        "invalid_client"
            if matches!(
                e,
                OAuthError::InvalidClient {
                    via_header: true,
                    ..
                }
            ) =>
        {
            401
        }
        "server_error" => 500,
        // A spent device-authorization budget: 429 with a Retry-After.
        "temporarily_unavailable" if matches!(e, OAuthError::RateLimited { .. }) => {
            assert!(
                e.to_http().header("retry-after").is_some(),
                "429 without Retry-After"
            );
            429
        }
        "temporarily_unavailable" => 503,
        _ => 400,
    };
    assert_eq!(reply.status, status, "{code}");
    assert_eq!(reply.status, e.status());
    for (name, value) in &reply.body {
        match (name.as_str(), value) {
            ("error", _) => {}
            ("error_description", Value::String(d)) => {
                // RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E only.
                assert!(
                    d.bytes().all(|b| (0x20..=0x21).contains(&b)
                        || (0x23..=0x5B).contains(&b)
                        || (0x5D..=0x7E).contains(&b)),
                    "error_description has a forbidden character: {d:?}"
                );
            }
            // `slow_down` says the interval to keep: the one the error holds.
            ("interval", Value::Number(secs)) if code == "slow_down" => {
                let OAuthError::SlowDown { interval } = e else {
                    panic!("an interval member on {e:?}");
                };
                assert_eq!(secs.as_u64(), Some(u64::from(interval.secs())));
            }
            _ => panic!("unexpected member `{name}` in an error reply"),
        }
    }
    reply
}

/// The RFC 6749 §5.1 members of a token reply.
fn check_token_success(t: &TokenResponse) -> Reply {
    let reply = check_common(&t.to_http());
    assert_eq!(reply.status, 200);
    let b = &reply.body;
    assert!(b.get("error").is_none());
    assert!(matches!(b.get("access_token"), Some(Value::String(s)) if !s.is_empty()));
    assert!(matches!(b.get("token_type"), Some(Value::String(s)) if !s.is_empty()));
    if let Some(v) = b.get("expires_in") {
        assert!(v.is_u64());
    }
    if let Some(v) = b.get("scope") {
        let Value::String(s) = v else {
            panic!("scope is not a string")
        };
        assert_eq!(
            ScopeSet::parse(s).map(|set| set.to_string()).as_deref(),
            Ok(s.as_str())
        );
    }
    reply
}

/// The RFC 8628 §3.2 members of a device authorization reply.
fn check_device_success(r: &DeviceAuthorizationResponse, policy: &UserCodePolicy) -> Reply {
    let reply = check_common(&r.to_http());
    assert_eq!(reply.status, 200);
    let b = &reply.body;
    for name in b.keys() {
        assert!(
            [
                "device_code",
                "user_code",
                "verification_uri",
                "verification_uri_complete",
                "expires_in",
                "interval"
            ]
            .contains(&name.as_str()),
            "unexpected member `{name}`"
        );
    }
    let device_code = b["device_code"].as_str().expect("device_code");
    assert_eq!(device_code, r.device_code.secret());
    assert_eq!(device_code.len(), 43);
    assert_eq!(URL_SAFE_NO_PAD.decode(device_code).map(|v| v.len()), Ok(32));
    let user_code = b["user_code"].as_str().expect("user_code");
    let normalized = policy.normalize(user_code).expect("user_code is a code");
    assert_eq!(normalized.display(), user_code);
    assert_eq!(b["verification_uri"].as_str(), Some(VERIFICATION_URI));
    // Only for clients that ask for it (the caller checks which).
    if let Some(complete) = b.get("verification_uri_complete") {
        let query = complete
            .as_str()
            .and_then(|c| c.strip_prefix(VERIFICATION_URI))
            .and_then(|rest| rest.strip_prefix('?'))
            .expect("the complete URI extends verification_uri");
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(pairs, [("user_code".to_owned(), user_code.to_owned())]);
    }
    assert_eq!(b["expires_in"].as_u64(), Some(LIFETIME_SECS as u64));
    assert_eq!(b["interval"].as_u64(), Some(INTERVAL_SECS));
    assert!(!format!("{r:?}").contains(device_code));
    assert!(!format!("{r:?}").contains(user_code));
    reply
}

fn error_code(reply: &Reply) -> &str {
    reply
        .body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("")
}

// ---------------------------------------------------------------------------
// The world the endpoint targets act on

const VERIFICATION_URI: &str = "https://as.example/device";
const PRINTER_SECRET: &str = "printer-secret";
const LIFETIME_SECS: i64 = 600;
const INTERVAL_SECS: u64 = 5;
// Fuzz inputs move the clock, but never near expiry: the known requests'
// outcomes must stay what they were, and expiry would change them legitimately.
const MAX_ADVANCE_SECS: i64 = 300;
const SCOPES: &str = "openid profile email offline_access";

/// An issuer that names the authorization in the token, counts calls per
/// authorization, and fails when the input tells it to.
#[derive(Default)]
struct Issuer {
    /// Calls of `issue`, failed ones included.
    calls: Mutex<BTreeMap<AuthorizationId, usize>>,
    /// Token sets minted (calls that succeeded).
    minted: Mutex<BTreeMap<AuthorizationId, usize>>,
    fail: std::sync::atomic::AtomicBool,
}

impl Issuer {
    fn calls(&self, id: AuthorizationId) -> usize {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.get(&id).copied().unwrap_or(0)
    }

    fn minted(&self, id: AuthorizationId) -> usize {
        let minted = self.minted.lock().unwrap_or_else(|e| e.into_inner());
        minted.get(&id).copied().unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl TokenIssuer for Issuer {
    async fn issue(&self, grant: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
        *self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(grant.id)
            .or_default() += 1;
        if self.fail.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(BackendError::Corrupt(format!(
                "issuer down for {}",
                grant.id
            )));
        }
        *self
            .minted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(grant.id)
            .or_default() += 1;
        Ok(TokenResponse::bearer(format!(
            "at-{}-{}",
            grant.approval.subject.as_str(),
            grant.id
        )))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Approved,
    Denied,
}

/// A request made before the fuzz input runs, whose state the input must not
/// change without presenting its device code (or, for the verification API,
/// its ticket).
struct Known {
    owner: &'static str,
    device_code: String,
    user_code: String,
    id: AuthorizationId,
    ticket: VerificationTicket,
    scopes: ScopeSet,
    state: State,
}

struct World {
    grant: DeviceGrant,
    clock: Arc<ManualClock>,
    issuer: Arc<Issuer>,
    policy: UserCodePolicy,
    budget: Budget,
    start: OffsetDateTime,
    // pending, approved, denied
    known: [Known; 3],
}

const PENDING: usize = 0;
const APPROVED: usize = 1;
const DENIED: usize = 2;

fn clients() -> StaticClients {
    let scopes = ScopeSet::parse(SCOPES).expect("scopes");
    let mut tv = Client::for_device_grant("tv-app", vec![AuthMethod::None]);
    tv.allowed_scopes = scopes.clone();
    // Shows a QR code: it asks for the complete link.
    tv.verification_uri_complete = true;
    tv.default_scopes = ScopeSet::parse("profile").expect("scopes");
    let mut printer = Client::for_device_grant(
        "printer",
        vec![AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost],
    );
    printer.allowed_scopes = scopes;
    let mut web = Client::for_device_grant("web-only", vec![AuthMethod::None]);
    web.device_grant = false;
    StaticClients::new()
        .with_public(tv)
        .with_public(web)
        .with_confidential(printer, PRINTER_SECRET)
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", urlencode(id), urlencode(secret)))
    )
}

fn owner_request<'a>(owner: &str, body: &'a [u8], header: &'a str) -> EndpointRequest<'a> {
    let request = EndpointRequest::form(body);
    if owner == "printer" {
        request.with_authorization(header)
    } else {
        request
    }
}

fn owner_body(owner: &str, rest: &str) -> String {
    if owner == "printer" {
        rest.to_owned()
    } else {
        format!("client_id={owner}&{rest}")
    }
}

fn poll_body(owner: &str, device_code: &str) -> String {
    owner_body(
        owner,
        &format!("grant_type={DEVICE_CODE_GRANT_TYPE}&device_code={device_code}"),
    )
}

impl World {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::default());
        let issuer = Arc::new(Issuer::default());
        let config = Config::builder(VERIFICATION_URI, UserCodeKey::new(&[42; 32]).expect("key"))
            .build()
            .expect("config");
        let policy = config.user_code_policy().clone();
        // The per-key budget is the one the model tracks; the other layers of
        // the defaults (deployment-wide 1,000, per client 600 per minute) are
        // out of reach of one input's few requests.
        let budget = config.budgets().wrong_codes_per_key;
        let grant = DeviceGrant::builder(config, Arc::new(clients()), issuer.clone())
            .clock(clock.clone())
            .build();
        let start = device_grant::Clock::now(&*clock);
        let header = basic("printer", PRINTER_SECRET);
        let make = |owner: &'static str, scope: &str, state: State| {
            let body = owner_body(owner, &format!("scope={scope}"));
            let r = block_on(grant.device_authorization(
                owner_request(owner, body.as_bytes(), &header),
                RequestContext::default(),
            ))
            .expect("setup: device authorization");
            let found = block_on(grant.verify(
                r.user_code.display(),
                &CodeEntry::from_key(LimiterKey::new("setup")),
            ))
            .expect("setup: verify");
            let scopes = found.request.scopes.clone();
            match state {
                State::Pending => {}
                State::Approved => block_on(grant.approve(
                    &found.ticket,
                    device_grant::Approve::scopes(Subject::new("alice"), None, scopes.clone()),
                ))
                .expect("setup: approve"),
                State::Denied => block_on(grant.deny(&found.ticket)).expect("setup: deny"),
            }
            Known {
                owner,
                device_code: r.device_code.secret().to_owned(),
                user_code: r.user_code.display().to_owned(),
                id: r.id,
                ticket: found.ticket,
                scopes,
                state,
            }
        };
        let known = [
            make("tv-app", "openid profile", State::Pending),
            make("printer", "openid", State::Approved),
            make("tv-app", "", State::Denied),
        ];
        let world = Self {
            grant,
            clock,
            issuer,
            policy,
            budget,
            start,
            known,
        };
        // The pending one has been polled once: later polls are subject to the pace.
        let first = world.owner_poll(PENDING);
        assert!(matches!(first, Err(OAuthError::AuthorizationPending)));
        world
    }

    fn now(&self) -> OffsetDateTime {
        device_grant::Clock::now(&*self.clock)
    }

    fn advance(&self, input: &mut Input<'_>) {
        let secs = i64::from(input.below(16));
        if self.now() - self.start + Duration::seconds(secs) <= Duration::seconds(MAX_ADVANCE_SECS)
        {
            self.clock.advance(Duration::seconds(secs));
        }
    }

    fn owner_poll(&self, k: usize) -> Result<TokenResponse, OAuthError> {
        let known = &self.known[k];
        let body = poll_body(known.owner, &known.device_code);
        let header = basic("printer", PRINTER_SECRET);
        block_on(
            self.grant
                .token(owner_request(known.owner, body.as_bytes(), &header)),
        )
    }

    /// The known requests' observable state: what their owners' polls get, and
    /// whether the verification page still finds them. `pace_touched`: the input
    /// polled the pending request with its real code as its owner, so its pace
    /// may have moved.
    fn check_known(&self, pace_touched: bool) {
        let elapsed = self.now() - self.start;
        assert!(elapsed < Duration::seconds(LIFETIME_SECS));
        self.issuer
            .fail
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let p = &self.known[PENDING];
        let poll = self.owner_poll(PENDING);
        match p.state {
            State::Pending if pace_touched => assert!(
                matches!(
                    poll,
                    Err(OAuthError::AuthorizationPending | OAuthError::SlowDown { .. })
                ),
                "{poll:?}"
            ),
            // Polled once at the start, interval 5 s, leeway 1 s.
            State::Pending if elapsed >= Duration::seconds(4) => {
                assert!(
                    matches!(poll, Err(OAuthError::AuthorizationPending)),
                    "{poll:?}"
                )
            }
            State::Pending => assert!(matches!(poll, Err(OAuthError::SlowDown { .. })), "{poll:?}"),
            State::Approved => self.check_redeem(PENDING, poll),
            State::Denied => assert!(matches!(poll, Err(OAuthError::AccessDenied)), "{poll:?}"),
        }
        let a = self.owner_poll(APPROVED);
        self.check_redeem(APPROVED, a);
        let d = self.owner_poll(DENIED);
        assert!(matches!(d, Err(OAuthError::AccessDenied)), "{d:?}");
        for (k, known) in self.known.iter().enumerate() {
            let key = CodeEntry::from_key(LimiterKey::new(format!("check-{k}")));
            let found = block_on(self.grant.verify(&known.user_code, &key));
            if k == PENDING && known.state == State::Pending {
                let found = found.expect("the pending request is still found");
                assert!(found.ticket == known.ticket);
                assert_eq!(found.request.client_id.as_str(), known.owner);
                assert_eq!(found.request.scopes, known.scopes);
            } else {
                assert!(
                    matches!(found, Err(VerificationError::NotFound)),
                    "{found:?}"
                );
            }
        }
    }

    /// An approved request, with the issuer working: the first owner poll that
    /// finds no tokens minted yet gets them (an earlier issuer failure kept the
    /// approval), exactly one token set ever, and every later poll
    /// `invalid_grant`.
    fn check_redeem(&self, k: usize, poll: Result<TokenResponse, OAuthError>) {
        let id = self.known[k].id;
        let minted = self.issuer.minted(id);
        assert_eq!(minted, 1, "minted {minted} token sets for one code");
        match &poll {
            Ok(t) => assert!(t.access_token.secret().ends_with(&id.to_string())),
            // A replay: only ever after the tokens were minted (checked above).
            Err(OAuthError::InvalidGrant) => {}
            other => panic!("an approved code with a working issuer gave {other:?}"),
        }
        let again = self.owner_poll(k);
        assert!(matches!(again, Err(OAuthError::InvalidGrant)), "{again:?}");
        assert_eq!(self.issuer.minted(id), 1);
    }
}

// ---------------------------------------------------------------------------
// Building endpoint requests from the input

/// A request the input built, and what it presented.
struct Built {
    content_type: Option<String>,
    authorization: Option<String>,
    body: Vec<u8>,
    /// `client_id` values in the body, and the Basic user if the header was built
    /// from known parts. `None` when the header was raw input (it could name anyone).
    client_ids: Option<Vec<String>>,
    device_codes: Vec<String>,
}

impl Built {
    fn request(&self) -> EndpointRequest<'_> {
        EndpointRequest {
            content_type: self.content_type.as_deref(),
            authorization: self.authorization.as_deref(),
            body: &self.body,
            dpop: None,
            client_certificate: None,
        }
    }

    /// Whether this request presented `known`'s real device code as a client that
    /// may be its owner: the only way it may legitimately change that request.
    fn presents(&self, known: &Known) -> bool {
        self.device_codes.contains(&known.device_code)
            && self
                .client_ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|id| id == known.owner))
    }
}

fn build_request(input: &mut Input<'_>, world: &World, endpoint: Endpoint) -> Built {
    let content_type = match input.below(8) {
        0..=3 => Some("application/x-www-form-urlencoded".to_owned()),
        4 => Some("application/x-www-form-urlencoded; charset=UTF-8".to_owned()),
        5 => Some(" Application/X-WWW-Form-URLencoded ;x=y".to_owned()),
        6 => None,
        _ => Some(input.text()),
    };
    // The Basic user when the header is built from known parts; a raw header
    // could name anyone.
    let (authorization, header_id) = match input.below(8) {
        0..=2 => (None, None),
        3 => (
            Some(basic("printer", PRINTER_SECRET)),
            Some("printer".to_owned()),
        ),
        4 => {
            let secret = input.text();
            (Some(basic("printer", &secret)), Some("printer".to_owned()))
        }
        5 => {
            let (id, secret) = (input.text(), input.text());
            (Some(basic(&id, &secret)), Some(id))
        }
        6 => (Some(input.text()), None),
        _ => (
            Some(format!("Basic {}", STANDARD.encode(input.chunk()))),
            None,
        ),
    };
    let mut client_ids = match (&authorization, header_id) {
        (Some(_), None) => None,
        (_, id) => Some(id.into_iter().collect::<Vec<_>>()),
    };
    let mut device_codes = Vec::new();
    let body = if input.below(4) == 0 {
        input.chunk().to_vec()
    } else {
        let mut s = form_urlencoded::Serializer::new(String::new());
        let count = 1 + input.below(6);
        for _ in 0..count {
            let (name, value) = param(input, world, endpoint);
            match (name.as_str(), client_ids.as_mut()) {
                ("client_id", Some(ids)) => ids.push(value.clone()),
                ("device_code", _) => device_codes.push(value.clone()),
                _ => {}
            }
            s.append_pair(&name, &value);
        }
        let mut body = s.finish().into_bytes();
        if input.below(8) == 0 {
            // Raw bytes after the pairs could add a `client_id` of any client.
            body.extend_from_slice(input.chunk());
            client_ids = None;
        }
        body
    };
    // A raw body could name any client; it cannot hold a known device code
    // (256 random bits), so it presents none.
    Built {
        content_type,
        authorization,
        body,
        client_ids,
        device_codes,
    }
}

fn param(input: &mut Input<'_>, world: &World, endpoint: Endpoint) -> (String, String) {
    let choice = input.below(8);
    let pick = |input: &mut Input<'_>, options: &[&str]| {
        let i = usize::from(input.byte()) % (options.len() + 1);
        options
            .get(i)
            .map_or_else(|| input.text(), |s| (*s).to_owned())
    };
    let name = match (choice, endpoint) {
        (0, Endpoint::Token) | (6, Endpoint::DeviceAuthorization) => "grant_type",
        (1 | 7, _) => "client_id",
        (2, _) => "client_secret",
        (3 | 4, Endpoint::Token) => "device_code",
        (3 | 4 | 0, Endpoint::DeviceAuthorization) | (5, Endpoint::Token) => "scope",
        _ => return (input.text(), input.text()),
    };
    let value = match name {
        "grant_type" => pick(input, &[DEVICE_CODE_GRANT_TYPE, "authorization_code"]),
        "client_id" => pick(input, &["tv-app", "printer", "web-only"]),
        "client_secret" => pick(input, &[PRINTER_SECRET]),
        "scope" => pick(
            input,
            &["openid", "openid profile", "email offline_access", "admin"],
        ),
        _ => device_code_param(input, world),
    };
    (name.to_owned(), value)
}

fn device_code_param(input: &mut Input<'_>, world: &World) -> String {
    let k = &world.known[usize::from(input.below(3))];
    match input.below(4) {
        0 => k.device_code.clone(),
        // One character changed: a near miss must be as unknown as any code.
        1 => {
            let mut bytes = k.device_code.clone().into_bytes();
            let i = usize::from(input.byte()) % bytes.len();
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let mut c = alphabet[usize::from(input.byte()) % alphabet.len()];
            if c == bytes[i] {
                c = if c == b'A' { b'B' } else { b'A' };
            }
            bytes[i] = c;
            String::from_utf8(bytes).unwrap_or_default()
        }
        // Well-formed, 32 bytes of input.
        2 => {
            let mut raw = [0u8; 32];
            for b in &mut raw {
                *b = input.byte();
            }
            URL_SAFE_NO_PAD.encode(raw)
        }
        _ => input.text(),
    }
}

// ---------------------------------------------------------------------------
// Targets: the endpoints, end to end over the memory store

const MAX_OPS: usize = 8;

/// Device authorization requests built from the input: every reply is a
/// well-formed §3.2 success or §5.2 error; each new request is pending, owned by
/// the client that authenticated, found by its user code; the known requests
/// are unchanged.
pub fn device_authorization(data: &[u8]) {
    let world = World::new();
    let mut input = Input::new(data);
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        world.advance(&mut input);
        let built = build_request(&mut input, &world, Endpoint::DeviceAuthorization);
        let result = block_on(
            world
                .grant
                .device_authorization(built.request(), RequestContext::default()),
        );
        match &result {
            Ok(r) => {
                let reply = check_device_success(r, &world.policy);
                let found = block_on(world.grant.verify(
                    r.user_code.display(),
                    &CodeEntry::from_key(LimiterKey::new("check")),
                ))
                .expect("a new request is found by its user code");
                let owner = found.request.client_id.as_str().to_owned();
                assert!(["tv-app", "printer"].contains(&owner.as_str()), "{owner}");
                // The link only for the client registered to get it.
                assert_eq!(
                    reply.body.contains_key("verification_uri_complete"),
                    owner == "tv-app"
                );
                assert!(
                    found
                        .request
                        .scopes
                        .is_subset(&ScopeSet::parse(SCOPES).expect("scopes"))
                );
                let body = poll_body(&owner, r.device_code.secret());
                let header = basic("printer", PRINTER_SECRET);
                let poll = block_on(world.grant.token(owner_request(
                    &owner,
                    body.as_bytes(),
                    &header,
                )));
                assert!(
                    matches!(poll, Err(OAuthError::AuthorizationPending)),
                    "{poll:?}"
                );
            }
            Err(e) => {
                check_error(e, Endpoint::DeviceAuthorization);
            }
        }
    }
    world.check_known(false);
}

/// Token requests built from the input: every reply is a well-formed §5.1
/// success or §5.2 error; a success, `authorization_pending`, `slow_down` or
/// `access_denied` only for a request whose real device code was presented by
/// its owner; the known requests are unchanged otherwise.
pub fn token(data: &[u8]) {
    let world = World::new();
    let mut input = Input::new(data);
    let mut pace_touched = false;
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        world.advance(&mut input);
        world
            .issuer
            .fail
            .store(input.below(8) == 0, std::sync::atomic::Ordering::Relaxed);
        let built = build_request(&mut input, &world, Endpoint::Token);
        let presents = [0, 1, 2].map(|k| built.presents(&world.known[k]));
        pace_touched |= presents[PENDING];
        let before = world.issuer.calls(world.known[APPROVED].id);
        let result = block_on(world.grant.token(built.request()));
        let after = world.issuer.calls(world.known[APPROVED].id);
        let minted = world.issuer.minted(world.known[APPROVED].id);
        assert!(minted <= 1, "one code, {minted} token sets");
        if after > before {
            assert!(
                presents[APPROVED],
                "tokens for a code that was not presented"
            );
        }
        match &result {
            Ok(t) => {
                check_token_success(t);
                assert!(presents[APPROVED]);
                let id = world.known[APPROVED].id.to_string();
                assert_eq!(t.access_token.secret(), format!("at-alice-{id}"));
            }
            Err(e) => {
                let reply = check_error(e, Endpoint::Token);
                match error_code(&reply) {
                    "authorization_pending" | "slow_down" => assert!(presents[PENDING]),
                    "access_denied" => assert!(presents[DENIED]),
                    // The issuer failed: it was called, and minted nothing.
                    "server_error" => assert!(presents[APPROVED] && after > before && minted == 0),
                    "expired_token" => panic!("nothing can expire here"),
                    _ => {}
                }
            }
        }
    }
    world.check_known(pace_touched);
}

/// The verification API driven by the input — typed codes (the pending one's,
/// decorated or one character off, or arbitrary text), limiter keys, and
/// approve/deny with real, forged or spliced tickets — against an exact model of
/// the pending request's state and each key's attempt budget.
pub fn verify(data: &[u8]) {
    let mut world = World::new();
    let mut input = Input::new(data);
    let mut spent: HashMap<String, (OffsetDateTime, u32)> = HashMap::new();
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        world.advance(&mut input);
        let now = world.now();
        let typed = typed_code(&mut input, &world);
        let key = match input.below(4) {
            0 => "k0".to_owned(),
            1 => "k1".to_owned(),
            2 => "k2".to_owned(),
            // Host keys never begin with `device-grant:` (the crate's own
            // families, which the model does not count).
            _ => format!("host:{}", input.text()),
        };
        let result = block_on(
            world
                .grant
                .verify(&typed, &CodeEntry::from_key(LimiterKey::new(key.clone()))),
        );
        // The model.
        let window = world.budget.window_start(now);
        let normalized = world.policy.normalize(&typed);
        let p = &world.known[PENDING];
        let count = match spent.get(&key) {
            Some((w, n)) if *w == window => *n,
            _ => 0,
        };
        match (&normalized, &result) {
            (Err(e), Err(VerificationError::Malformed(got))) => assert_eq!(e, got),
            (Err(_), other) => panic!("malformed input gave {other:?}"),
            (Ok(_), Err(VerificationError::TooManyAttempts { retry_after })) => {
                assert!(count >= world.budget.attempts, "{count} attempts spent");
                assert_eq!(*retry_after, world.budget.retry_after(now));
                assert!(*retry_after > Duration::ZERO && *retry_after <= world.budget.window);
            }
            (Ok(code), Ok(found)) => {
                assert!(count < world.budget.attempts);
                assert_eq!(p.state, State::Pending);
                assert!(
                    world
                        .policy
                        .normalize(&p.user_code)
                        .is_ok_and(|c| c == *code)
                );
                assert!(found.ticket == p.ticket);
                assert_eq!(found.request.client_id.as_str(), p.owner);
            }
            (Ok(code), Err(VerificationError::NotFound)) => {
                assert!(count < world.budget.attempts);
                let is_pending_code = world
                    .policy
                    .normalize(&p.user_code)
                    .is_ok_and(|c| c == *code);
                assert!(
                    !is_pending_code || p.state != State::Pending,
                    "the pending request was not found"
                );
                spent.insert(key.clone(), (window, count + 1));
            }
            (Ok(_), other) => panic!("verify gave {other:?}"),
        }
        let ticket = match input.below(6) {
            0 | 1 => continue,
            2 => match &result {
                Ok(found) => found.ticket.clone(),
                Err(_) => continue,
            },
            3 => match VerificationTicket::decode(&input.text()) {
                Some(t) => t,
                None => continue,
            },
            4 => {
                // A known id with a hash from the input, or the reverse.
                let k = &world.known[usize::from(input.below(3))];
                let encoded = k.ticket.encode();
                let (id, hash) = encoded.split_once('.').unwrap_or_default();
                let spliced = if input.byte() & 1 == 0 {
                    let mut raw = [0u8; 32];
                    for b in &mut raw {
                        *b = input.byte();
                    }
                    format!("{id}.{}", URL_SAFE_NO_PAD.encode(raw))
                } else {
                    let mut raw = [0u8; 16];
                    for b in &mut raw {
                        *b = input.byte();
                    }
                    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
                    format!("{hex}.{hash}")
                };
                match VerificationTicket::decode(&spliced) {
                    Some(t) => t,
                    None => continue,
                }
            }
            _ => world.known[usize::from(input.below(3))].ticket.clone(),
        };
        let approve = input.byte() & 1 == 0;
        let scopes = match input.below(4) {
            0 => p.scopes.clone(),
            1 => ScopeSet::parse("openid").expect("scope"),
            2 => ScopeSet::new(),
            _ => ScopeSet::parse(&input.text()).unwrap_or_default(),
        };
        let legit = ticket == p.ticket && p.state == State::Pending;
        let outcome = if approve {
            block_on(world.grant.approve(
                &ticket,
                device_grant::Approve::scopes(Subject::new("mallory"), None, scopes.clone()),
            ))
        } else {
            block_on(world.grant.deny(&ticket))
        };
        match outcome {
            Ok(()) => {
                assert!(
                    legit,
                    "a decision on a ticket that is not the pending request's"
                );
                if approve {
                    assert!(scopes.is_subset(&p.scopes));
                }
                world.known[PENDING].state = if approve {
                    State::Approved
                } else {
                    State::Denied
                };
            }
            Err(VerificationError::ScopeNotRequested) => {
                assert!(legit && approve && !scopes.is_subset(&p.scopes))
            }
            Err(VerificationError::NotFound) => assert!(!legit),
            Err(e) => panic!("a decision gave {e:?}"),
        }
    }
    world.check_known(false);
}

fn typed_code(input: &mut Input<'_>, world: &World) -> String {
    let p = &world.known[PENDING].user_code;
    match input.below(6) {
        0 => input.text(),
        // The pending code as people type it.
        1 => {
            let style = input.byte();
            let mut s = p.clone();
            if style & 1 != 0 {
                s = s.to_ascii_lowercase();
            }
            if style & 2 != 0 {
                s = s.replace('-', "");
            }
            if style & 4 != 0 {
                s = s.replace('-', " \u{2014} ");
            }
            if style & 8 != 0 {
                s = s
                    .chars()
                    .map(|c| {
                        char::from_u32(c as u32 + 0xFEE0)
                            .filter(|_| c.is_ascii_graphic())
                            .unwrap_or(c)
                    })
                    .collect();
            }
            s
        }
        // One character off.
        2 => {
            let mut chars: Vec<char> = p.chars().filter(|c| *c != '-').collect();
            let i = usize::from(input.byte()) % chars.len();
            let alphabet: Vec<char> = "BCDFGHJKLMNPQRSTVWXZ".chars().collect();
            let mut c = alphabet[usize::from(input.byte()) % alphabet.len()];
            if c == chars[i] {
                c = if c == 'B' { 'C' } else { 'B' };
            }
            chars[i] = c;
            chars.into_iter().collect()
        }
        3 => world.known[APPROVED].user_code.clone(),
        4 => world.known[DENIED].user_code.clone(),
        _ => format!("{p}{}", input.text()),
    }
}
