//! No secret in `Debug` or `Display`.
//!
//! Two halves. The runtime half builds every public type that can carry secret
//! material, filled with known secrets, and checks that neither `{:?}`, `{:#?}`
//! nor `Display` (where implemented) shows them. The source half reads `src/`
//! with `syn` and fails when a public type derives `Debug` over a field that
//! looks secret, unless that field's type is one whose redaction the runtime
//! half proves, or the field or type is on a reviewed list with its reason: a
//! new secret-carrying type cannot slip in unnoticed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use device_grant::fuzzing::ClientCredentials;
use device_grant::fuzzing::parse_form;
use device_grant::store::{LimiterKey, Store};
use device_grant::{
    ApprovedGrant, AuthMethod, BackendError, Client, Config, DEVICE_CODE_GRANT_TYPE, DeviceCode,
    DeviceGrant, EndpointRequest, Limits, MemoryStore, OAuthError, RecordedEvents, RequestContext,
    ScopeSet, StaticClients, Subject, ToHttp, Token, TokenIssuer, TokenResponse, UserCodeKey,
    UserCodePolicy, VerificationTicket,
};

const CLIENT_SECRET: &str = "client-SECRET-hunter2-7f3a";
const KEY: &[u8; 40] = b"user-code-KEY-secret-0123456789abcdefghi";
const PREVIOUS_KEY: &[u8; 40] = b"previous-KEY-secret-0123456789abcdefghij";
const ACCESS_TOKEN: &str = "access-TOKEN-secret-a1";
const REFRESH_TOKEN: &str = "refresh-TOKEN-secret-b2";
const ID_TOKEN: &str = "id-TOKEN-secret-c3";
const EXTRA_SECRET: &str = "device-SECRET-extra-d4";
const APPROVAL_SECRET: &str = "upstream-TOKEN-secret-e5";

/// Fails if any of `needles` occurs in the `Debug`, pretty `Debug` of `value`.
#[track_caller]
fn assert_debug_hides<T: std::fmt::Debug>(what: &str, value: &T, needles: &[&str]) {
    assert_hides(&format!("{what} Debug"), &format!("{value:?}"), needles);
    assert_hides(
        &format!("{what} pretty Debug"),
        &format!("{value:#?}"),
        needles,
    );
}

/// Fails if any of `needles` occurs in the `Display` of `value`.
#[track_caller]
fn assert_display_hides<T: std::fmt::Display>(what: &str, value: &T, needles: &[&str]) {
    assert_hides(&format!("{what} Display"), &value.to_string(), needles);
}

#[track_caller]
fn assert_hides(what: &str, rendered: &str, needles: &[&str]) {
    for needle in needles {
        assert!(!needle.is_empty(), "{what}: empty needle");
        assert!(
            !rendered.contains(needle),
            "{what} shows the secret {needle:?}: {rendered}"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every way 32 hash bytes could be printed in full.
fn renderings(bytes: &[u8; 32]) -> Vec<String> {
    vec![
        hex(bytes),
        hex(bytes).to_uppercase(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        base64::engine::general_purpose::STANDARD.encode(bytes),
        format!("{bytes:?}"),
    ]
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// The key bytes as text, hex and a `Debug` byte list.
fn key_renderings() -> Vec<String> {
    renderings_of_key(KEY)
}

fn renderings_of_key(key: &[u8; 40]) -> Vec<String> {
    vec![
        String::from_utf8_lossy(key).into_owned(),
        hex(key),
        format!("{:?}", &key[..]),
        format!("{:?}", key),
    ]
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// ---------------------------------------------------------------------------
// Runtime half.

#[test]
fn endpoint_request_shows_neither_credentials_nor_body() {
    let header = basic("printer", CLIENT_SECRET);
    let device_code = DeviceCode::generate();
    let body = format!(
        "grant_type={DEVICE_CODE_GRANT_TYPE}&client_id=printer&client_secret={CLIENT_SECRET}&device_code={}",
        device_code.secret()
    );
    let request = EndpointRequest::form(body.as_bytes()).with_authorization(&header);
    let encoded = header.trim_start_matches("Basic ");
    let rendered = format!("{request:?}");
    assert_debug_hides(
        "EndpointRequest",
        &request,
        &[
            CLIENT_SECRET,
            device_code.secret(),
            encoded,
            "client_secret",
            "device_code",
            // The body as a `Debug` byte list starts with `[103, 114` ("gr…").
            "103, 114, 97",
        ],
    );
    // What is safe, and useful, is still there.
    assert!(
        rendered.contains("application/x-www-form-urlencoded"),
        "{rendered}"
    );
    assert!(rendered.contains(&body.len().to_string()), "{rendered}");
    assert!(rendered.contains("true"), "{rendered}");
    let without = format!("{:?}", EndpointRequest::form(b"client_id=tv"));
    assert!(without.contains("false"), "{without}");
    assert!(without.contains("12"), "{without}");
}

#[test]
fn client_credentials_and_forms_hide_secrets() {
    let secret = device_grant::ClientSecret::new(CLIENT_SECRET);
    assert_debug_hides("ClientSecret", &secret, &[CLIENT_SECRET]);

    let body = format!("client_id=printer&client_secret={CLIENT_SECRET}");
    let form = parse_form(body.as_bytes(), &Limits::default()).unwrap();
    assert_debug_hides("Form", &form, &[CLIENT_SECRET]);
    let posted = ClientCredentials::read(&form, None).unwrap();
    assert_debug_hides("ClientCredentials (post)", &posted, &[CLIENT_SECRET]);

    let header = basic("printer", CLIENT_SECRET);
    let empty = parse_form(b"", &Limits::default()).unwrap();
    let via_basic = ClientCredentials::read(&empty, Some(&header)).unwrap();
    assert_debug_hides(
        "ClientCredentials (basic)",
        &via_basic,
        &[CLIENT_SECRET, header.trim_start_matches("Basic ")],
    );
}

#[test]
fn registrations_hide_secrets_and_their_hashes() {
    use sha2::Digest as _;
    let mut printer = Client::for_device_grant(
        "printer",
        vec![AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost],
    );
    printer.allowed_scopes = ScopeSet::parse("profile").unwrap();
    let clients = StaticClients::new().with_confidential(printer.clone(), CLIENT_SECRET);
    let hash: [u8; 32] = sha2::Sha256::digest(CLIENT_SECRET.as_bytes()).into();
    let mut needles = renderings(&hash);
    needles.push(CLIENT_SECRET.to_owned());
    assert_debug_hides("StaticClients", &clients, &refs(&needles));
    assert_debug_hides("Client", &printer, &[CLIENT_SECRET]);
}

#[test]
fn configuration_and_keys_hide_the_user_code_key() {
    let key = UserCodeKey::new(KEY).unwrap();
    let needles = key_renderings();
    assert_debug_hides("UserCodeKey", &key, &refs(&needles));
    let builder = Config::builder("https://as.example/device", key.clone());
    assert_debug_hides("ConfigBuilder", &builder, &refs(&needles));
    // A rotation's previous keys are as secret as the current one.
    let previous = UserCodeKey::new(PREVIOUS_KEY).unwrap();
    let mut rotating_needles = needles.clone();
    rotating_needles.extend(renderings_of_key(PREVIOUS_KEY));
    let rotating = Config::builder("https://as.example/device", key.clone())
        .previous_user_code_keys(vec![previous]);
    assert_debug_hides(
        "ConfigBuilder (rotating)",
        &rotating,
        &refs(&rotating_needles),
    );
    let rotating = rotating.build().unwrap();
    assert_debug_hides("Config (rotating)", &rotating, &refs(&rotating_needles));
    let rotating = DeviceGrant::builder(
        rotating,
        Arc::new(StaticClients::new()),
        Arc::new(Issuer::default()),
    )
    .build();
    assert_debug_hides(
        "DeviceGrant (rotating)",
        &rotating,
        &refs(&rotating_needles),
    );
    let config = builder.build().unwrap();
    assert_debug_hides("Config", &config, &refs(&needles));
    let grant = DeviceGrant::builder(
        config,
        Arc::new(StaticClients::new()),
        Arc::new(Issuer::default()),
    )
    .build();
    assert_debug_hides("DeviceGrant", &grant, &refs(&needles));
}

#[test]
fn codes_and_their_hashes_are_not_printed_in_full() {
    let device_code = DeviceCode::generate();
    assert_debug_hides("DeviceCode", &device_code, &[device_code.secret()]);
    let device_hash = device_code.hash();
    assert_debug_hides(
        "DeviceCodeHash",
        &device_hash,
        &refs(&renderings(device_hash.as_bytes())),
    );

    let policy = UserCodePolicy::default();
    let user_code = policy.generate();
    let user_needles = [user_code.display(), user_code.canonical()];
    assert_debug_hides("UserCode", &user_code, &user_needles);
    let typed = policy
        .normalize(&user_code.display().to_lowercase())
        .unwrap();
    assert_debug_hides("UserCode (typed)", &typed, &user_needles);
    let user_hash = UserCodeKey::new(KEY).unwrap().hash(&user_code);
    // A user-code hash is a brute-force target (the code has ~35 bits): never print it whole.
    assert_debug_hides(
        "UserCodeHash",
        &user_hash,
        &refs(&renderings(user_hash.as_bytes())),
    );
}

#[test]
fn tokens_and_token_responses_hide_tokens_and_extra_members() {
    let token = Token::new(ACCESS_TOKEN);
    assert_debug_hides("Token", &token, &[ACCESS_TOKEN]);
    let response = token_response();
    let needles = [ACCESS_TOKEN, REFRESH_TOKEN, ID_TOKEN, EXTRA_SECRET];
    assert_debug_hides("TokenResponse", &response, &needles);
    let rendered = format!("{response:?}");
    // The extra member's name is not secret, and says what the issuer added.
    assert!(rendered.contains("device_secret"), "{rendered}");
    assert_debug_hides("TokenResponse as HTTP", &response.to_http(), &needles);
}

#[test]
fn errors_carry_no_secret() {
    let errors = [
        OAuthError::InvalidRequest(device_grant::RequestError::ClientIdMismatch),
        OAuthError::invalid_client(true),
        OAuthError::UnauthorizedClient,
        OAuthError::InvalidScope,
        OAuthError::InvalidGrant,
        OAuthError::UnsupportedGrantType,
        OAuthError::AuthorizationPending,
        OAuthError::SlowDown {
            interval: device_grant::Interval::DEFAULT,
        },
        OAuthError::AccessDenied,
        OAuthError::ExpiredToken,
        OAuthError::UserCodesExhausted,
        OAuthError::RateLimited {
            retry_after: time::Duration::seconds(3),
        },
        OAuthError::Contended,
        OAuthError::Backend(BackendError::Timeout),
    ];
    for error in &errors {
        assert_debug_hides("OAuthError", error, &[CLIENT_SECRET]);
        assert_display_hides("OAuthError", error, &[CLIENT_SECRET]);
        assert_debug_hides("OAuthError as HTTP", &error.to_http(), &[CLIENT_SECRET]);
    }
}

/// An issuer that keeps the grant it was handed and mints known tokens.
#[derive(Default)]
struct Issuer(Mutex<Option<ApprovedGrant>>);

#[async_trait::async_trait]
impl TokenIssuer for Issuer {
    async fn issue(&self, grant: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
        *self.0.lock().unwrap() = Some(grant.clone());
        Ok(token_response())
    }
}

fn token_response() -> TokenResponse {
    let mut response = TokenResponse::bearer(ACCESS_TOKEN);
    response.refresh_token = Some(Token::new(REFRESH_TOKEN));
    response.id_token = Some(Token::new(ID_TOKEN));
    response.expires_in = Some(3600);
    response.extra = BTreeMap::from([("device_secret".to_owned(), EXTRA_SECRET.into())]);
    response
}

/// A whole flow with a confidential client, with every intermediate value
/// checked against every secret seen so far.
#[tokio::test]
async fn a_whole_flow_prints_no_secret() {
    let mut printer = Client::for_device_grant(
        "printer",
        vec![AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost],
    );
    // Shows a QR code: it asks for the complete link.
    printer.verification_uri_complete = true;
    printer.allowed_scopes = ScopeSet::parse("profile").unwrap();
    let store = Arc::new(MemoryStore::new());
    let events = Arc::new(RecordedEvents::default());
    let issuer = Arc::new(Issuer::default());
    let config = Config::builder("https://as.example/device", UserCodeKey::new(KEY).unwrap())
        .build()
        .unwrap();
    let grant = DeviceGrant::builder(
        config,
        Arc::new(StaticClients::new().with_confidential(printer, CLIENT_SECRET)),
        issuer.clone(),
    )
    .store(store.clone())
    .events(events.clone())
    .build();
    let header = basic("printer", CLIENT_SECRET);
    let mut secrets: Vec<String> = key_renderings();
    secrets.extend([CLIENT_SECRET, header.trim_start_matches("Basic ")].map(str::to_owned));

    let context = RequestContext {
        user_agent: Some("tv/1.0".to_owned()),
        ..RequestContext::default()
    };
    let codes = grant
        .device_authorization(
            EndpointRequest::form(b"scope=profile").with_authorization(&header),
            context,
        )
        .await
        .unwrap();
    let complete = codes.verification_uri_complete.clone().unwrap();
    secrets.extend([
        codes.device_code.secret().to_owned(),
        codes.user_code.display().to_owned(),
        codes.user_code.canonical().to_owned(),
        complete,
    ]);
    secrets.extend(renderings(codes.device_code.hash().as_bytes()));
    assert_debug_hides("DeviceAuthorizationResponse", &codes, &refs(&secrets));
    assert_debug_hides(
        "DeviceAuthorizationResponse as HTTP",
        &codes.to_http(),
        &refs(&secrets),
    );

    let wrong = grant
        .device_authorization(
            EndpointRequest::form(b"scope=profile")
                .with_authorization(&basic("printer", "not-the-secret")),
            RequestContext::default(),
        )
        .await
        .unwrap_err();
    assert_debug_hides("OAuthError (wrong secret)", &wrong, &refs(&secrets));
    assert_display_hides("OAuthError (wrong secret)", &wrong, &refs(&secrets));

    let poll = format!(
        "grant_type={DEVICE_CODE_GRANT_TYPE}&device_code={}",
        codes.device_code.secret()
    );
    let pending = grant
        .token(EndpointRequest::form(poll.as_bytes()).with_authorization(&header))
        .await
        .unwrap_err();
    assert_debug_hides("OAuthError (pending)", &pending, &refs(&secrets));
    assert_display_hides("OAuthError (pending)", &pending, &refs(&secrets));

    let found = grant
        .verify(
            codes.user_code.display(),
            &device_grant::CodeEntry::from_key(LimiterKey::new("session")),
        )
        .await
        .unwrap();
    let encoded_ticket = found.ticket.encode();
    let (_, ticket_hash) = encoded_ticket.split_once('.').unwrap();
    secrets.extend([encoded_ticket.clone(), ticket_hash.to_owned()]);
    assert_debug_hides("VerificationTicket", &found.ticket, &refs(&secrets));
    assert_debug_hides("PendingRequest", &found, &refs(&secrets));
    let decoded = VerificationTicket::decode(&encoded_ticket).unwrap();
    assert_debug_hides("VerificationTicket (decoded)", &decoded, &refs(&secrets));
    let not_found = grant
        .verify(
            "BCDF-GHJK",
            &device_grant::CodeEntry::from_key(LimiterKey::new("session")),
        )
        .await
        .unwrap_err();
    assert_debug_hides("VerificationError", &not_found, &refs(&secrets));
    assert_display_hides("VerificationError", &not_found, &refs(&secrets));

    grant
        .approve(
            &found.ticket,
            device_grant::Approve::as_requested(Subject::new("alice"), None).data(
                device_grant::ApprovalData::new(
                    &serde_json::json!({ "upstream_token": APPROVAL_SECRET }),
                )
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    secrets.push(APPROVAL_SECRET.to_owned());

    let record = store
        .by_device_code(&codes.device_code.hash())
        .await
        .unwrap()
        .unwrap();
    secrets.extend(renderings(record.user_code_hash.as_bytes()));
    assert_debug_hides("DeviceAuthorization", &record, &refs(&secrets));
    assert_debug_hides("Status", &record.status, &refs(&secrets));

    let tokens = grant
        .token(EndpointRequest::form(poll.as_bytes()).with_authorization(&header))
        .await
        .unwrap();
    secrets.extend([ACCESS_TOKEN, REFRESH_TOKEN, ID_TOKEN, EXTRA_SECRET].map(str::to_owned));
    assert_debug_hides("TokenResponse", &tokens, &refs(&secrets));
    assert_debug_hides("TokenResponse as HTTP", &tokens.to_http(), &refs(&secrets));
    let approved = issuer.0.lock().unwrap().clone().unwrap();
    assert_debug_hides("ApprovedGrant", &approved, &refs(&secrets));
    assert_debug_hides("Approval", &*approved.approval, &refs(&secrets));

    let replay = grant
        .token(EndpointRequest::form(poll.as_bytes()).with_authorization(&header))
        .await
        .unwrap_err();
    assert_debug_hides("OAuthError (replay)", &replay, &refs(&secrets));
    assert_display_hides("OAuthError (replay)", &replay, &refs(&secrets));

    let recorded = events.events();
    assert!(recorded.len() >= 4, "{recorded:?}");
    for event in &recorded {
        assert_debug_hides("Event", event, &refs(&secrets));
    }
    assert_debug_hides("RecordedEvents", &*events, &refs(&secrets));
    assert_debug_hides("DeviceGrant", &grant, &refs(&secrets));
}

// ---------------------------------------------------------------------------
// Source half.

/// Words that make a type or field name look like it carries a secret.
const SECRET_WORDS: &[&str] = &[
    "secret",
    "password",
    "token",
    "code",
    "key",
    "credential",
    "authorization",
    "body",
    "ticket",
];

/// Types that hold whatever the host puts in them (`serde_json::Value`): a
/// derived `Debug` over one of these prints the host's secrets, if any.
const OPAQUE_TYPES: &[&str] = &["Value"];

/// Types with a hand-written `Debug` that redacts (or, for hashes, shortens);
/// the runtime half above proves each. A field of one of these types is safe
/// in a derived `Debug`.
const REDACTING: &[&str] = &[
    "ClientSecret",
    "DeviceCode",
    "DeviceCodeHash",
    "UserCode",
    "UserCodeHash",
    "UserCodeKey",
    "Token",
    "TokenResponse",
    "VerificationTicket",
    "EndpointRequest",
    "Form",
    "HttpResponse",
    "StaticClients",
    "Approval",
    "ApprovalData",
    "LimiterKey",
    "CodeEntry",
];

/// Types reviewed to print no secret, with why: their name does not make them
/// suspect, and a field of one of them is safe. Their own fields are still
/// checked when they derive `Debug`.
const NOT_SECRET_TYPES: &[(&str, &str)] = &[
    (
        "ClientCredentials",
        "its secret is a ClientSecret, whose Debug redacts",
    ),
    ("Budget", "a number of attempts and a window"),
    ("ClientId", "a client identifier: public (RFC 6749 §2.2)"),
    ("ErrorCode", "an RFC 6749 error code"),
    (
        "UserCodeError",
        "why typed input is not a code; holds no input",
    ),
    ("UserCodePolicy", "alphabet, length and grouping of codes"),
    ("KeyTooShort", "the length of a refused key, not the key"),
    (
        "KeyDigest",
        "a keyed, truncated digest of a limiter key: nothing to reverse",
    ),
    ("BudgetKind", "the name of a budget"),
    ("AuthorizationId", "the non-secret identifier of a request"),
    (
        "DeviceAuthorization",
        "the stored record: hashes only, no code",
    ),
    (
        "CodeChallenge",
        "a PKCE S256 challenge: the SHA-256 of the verifier, sent in the clear by the \
         device; Debug shows the method and 8 characters",
    ),
    ("CodeChallengeMethod", "the name of a PKCE method (S256)"),
    (
        "CodeVerifierError",
        "why a PKCE verifier was refused; holds no verifier",
    ),
    (
        "AuthorizationDetail",
        "RFC 9396 details of what a device asks for: shown to the person at consent and \
         returned with the tokens, no credential",
    ),
    (
        "AuthorizationDetails",
        "RFC 9396 details of what a device asks for: shown to the person at consent and \
         returned with the tokens, no credential",
    ),
    (
        "AuthorizationDetailsError",
        "why authorization_details were refused: a type name or a limit, no credential",
    ),
];

/// Fields whose name looks secret but which carry none: (type, field, why).
const NOT_SECRET_FIELDS: &[(&str, &str, &str)] = &[
    ("Config", "user_code_tries", "a count of draws"),
    ("ConfigBuilder", "user_code_tries", "a count of draws"),
    ("Metadata", "device_authorization_endpoint", "a public URL"),
    (
        "AuthorizationDetail",
        "0",
        "the JSON object of one RFC 9396 detail: shown to the person, no credential",
    ),
    (
        "Metadata",
        "authorization_details_types_supported",
        "public RFC 9396 type names",
    ),
    (
        "Metadata",
        "token_endpoint_auth_methods_supported",
        "public method names",
    ),
    (
        "Metadata",
        "code_challenge_methods_supported",
        "public PKCE method names",
    ),
    ("Limits", "max_body_bytes", "a size limit"),
    ("RequestError", "BodyTooLarge.0", "a size limit"),
];

fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// A field of a type that derives `Debug`.
struct Field {
    /// `name`, `0`, or for an enum `Variant.name` / `Variant.0`: a variant's
    /// name says what its fields hold as much as a field's does.
    name: String,
    /// Every identifier in the field's type (`Option<Arc<Approval>>`: three).
    type_idents: Vec<String>,
}

/// What the scan of `src/` found.
#[derive(Default)]
struct Scan {
    /// The public types that derive `Debug`, with their fields.
    derived: Vec<(String, Vec<Field>)>,
    public: BTreeSet<String>,
    manual_debug: BTreeSet<String>,
}

struct TypeIdents(Vec<String>);

impl<'ast> syn::visit::Visit<'ast> for TypeIdents {
    fn visit_ident(&mut self, ident: &'ast syn::Ident) {
        self.0.push(ident.to_string());
    }

    // A lifetime's name says nothing about what the field holds.
    fn visit_lifetime(&mut self, _: &'ast syn::Lifetime) {}
}

fn derives_debug(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        if !attr.path().is_ident("derive") {
            return false;
        }
        let mut found = false;
        let _ = attr.parse_nested_meta(|meta| {
            if meta
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "Debug")
            {
                found = true;
            }
            Ok(())
        });
        found
    })
}

fn fields_of(variant: Option<&syn::Ident>, fields: &syn::Fields) -> Vec<Field> {
    fields
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let name = field
                .ident
                .as_ref()
                .map_or_else(|| i.to_string(), ToString::to_string);
            let mut idents = TypeIdents(Vec::new());
            syn::visit::Visit::visit_type(&mut idents, &field.ty);
            Field {
                name: variant.map_or(name.clone(), |v| format!("{v}.{name}")),
                type_idents: idents.0,
            }
        })
        .collect()
}

impl<'ast> syn::visit::Visit<'ast> for Scan {
    fn visit_item_struct(&mut self, item: &'ast syn::ItemStruct) {
        if matches!(item.vis, syn::Visibility::Public(_)) {
            self.public.insert(item.ident.to_string());
            if derives_debug(&item.attrs) {
                self.derived
                    .push((item.ident.to_string(), fields_of(None, &item.fields)));
            }
        }
        syn::visit::visit_item_struct(self, item);
    }

    fn visit_item_enum(&mut self, item: &'ast syn::ItemEnum) {
        if matches!(item.vis, syn::Visibility::Public(_)) {
            self.public.insert(item.ident.to_string());
            if derives_debug(&item.attrs) {
                let fields = item
                    .variants
                    .iter()
                    .flat_map(|v| fields_of(Some(&v.ident), &v.fields))
                    .collect();
                self.derived.push((item.ident.to_string(), fields));
            }
        }
        syn::visit::visit_item_enum(self, item);
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        let is_debug = item
            .trait_
            .as_ref()
            .and_then(|(_, path, _)| path.segments.last())
            .is_some_and(|s| s.ident == "Debug");
        if let (true, syn::Type::Path(ty)) = (is_debug, &*item.self_ty) {
            if let Some(last) = ty.path.segments.last() {
                self.manual_debug.insert(last.ident.to_string());
            }
        }
        syn::visit::visit_item_impl(self, item);
    }
}

fn scan_dir(dir: &Path, scan: &mut Scan, files: &mut usize) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            scan_dir(&path, scan, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            let file = syn::parse_file(&text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            syn::visit::Visit::visit_file(scan, &file);
            *files += 1;
        }
    }
}

#[test]
fn no_public_type_derives_debug_over_a_secret_looking_field() {
    let mut scan = Scan::default();
    let mut files = 0;
    scan_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut scan,
        &mut files,
    );
    // A walk that finds nothing would pass vacuously.
    assert!(files >= 20, "only {files} files scanned");
    for known in [
        "Client",
        "Config",
        "DeviceAuthorization",
        "OAuthError",
        "Event",
    ] {
        assert!(
            scan.derived.iter().any(|(name, _)| name == known),
            "the scan missed {known}"
        );
    }

    let not_secret: BTreeSet<&str> = NOT_SECRET_TYPES.iter().map(|(t, _)| *t).collect();
    let safe_type = |ident: &str| REDACTING.contains(&ident) || not_secret.contains(ident);
    let mut used_types = BTreeSet::new();
    let mut used_fields = BTreeSet::new();
    let mut leaks = Vec::new();
    for (ty, fields) in &scan.derived {
        if looks_secret(ty) {
            if not_secret.contains(ty.as_str()) {
                used_types.insert(ty.clone());
            } else {
                leaks.push(format!("{ty}: derives Debug and its name looks secret"));
            }
        }
        for Field {
            name: field,
            type_idents: idents,
        } in fields
        {
            for ident in idents.iter().filter(|i| safe_type(i)) {
                used_types.insert(ident.clone());
            }
            let secret_type = idents
                .iter()
                .any(|i| (looks_secret(i) || OPAQUE_TYPES.contains(&i.as_str())) && !safe_type(i));
            let secret_name = looks_secret(field) && !idents.iter().any(|i| safe_type(i));
            if !(secret_type || secret_name) {
                continue;
            }
            if NOT_SECRET_FIELDS
                .iter()
                .any(|(t, f, _)| t == ty && f == field)
            {
                used_fields.insert((ty.clone(), field.clone()));
                continue;
            }
            leaks.push(format!(
                "{ty}.{field}: derived Debug prints a secret-looking field of type {}",
                idents.join("::")
            ));
        }
    }
    assert!(
        leaks.is_empty(),
        "write a redacting Debug, or review and list these:\n{}",
        leaks.join("\n")
    );

    // The redacting types really are hand-written, and the lists do not rot.
    let derived: BTreeSet<&str> = scan.derived.iter().map(|(t, _)| t.as_str()).collect();
    for ty in REDACTING {
        assert!(
            scan.public.contains(*ty),
            "{ty} is not a public type any more"
        );
        assert!(!derived.contains(ty), "{ty} derives Debug");
        assert!(scan.manual_debug.contains(*ty), "{ty} has no Debug impl");
    }
    for (ty, why) in NOT_SECRET_TYPES {
        assert!(used_types.contains(*ty), "stale entry {ty} ({why})");
    }
    for (ty, field, why) in NOT_SECRET_FIELDS {
        assert!(
            used_fields.contains(&(ty.to_string(), field.to_string())),
            "stale entry {ty}.{field} ({why})"
        );
    }
}

#[test]
fn limiter_keys_and_code_entries_hide_the_key() {
    let session = "session-id-SECRET-77";
    let key = device_grant::store::LimiterKey::new(session);
    let entry = device_grant::CodeEntry::from_key(key.clone())
        .signed_in(&device_grant::Subject::new("alice"));
    for shown in [
        format!("{key:?}"),
        format!("{key:#?}"),
        format!("{entry:?}"),
    ] {
        assert!(!shown.contains("SECRET"), "{shown}");
    }
}

#[tokio::test]
async fn a_refused_code_verifier_is_never_shown() {
    const VERIFIER: &str = "pkce-VERIFIER-secret-0123456789-abcdefghijklmnop";
    let other = "pkce-OTHER-verifier-secret-0123456789-abcdefghijk";
    let challenge = device_grant::CodeChallenge::from_verifier(VERIFIER).unwrap();
    let mut tv = Client::for_device_grant("tv", vec![AuthMethod::None]);
    tv.allowed_scopes = ScopeSet::parse("profile").unwrap();
    let events = Arc::new(RecordedEvents::default());
    let grant = DeviceGrant::builder(
        Config::builder("https://as.example/device", UserCodeKey::new(KEY).unwrap())
            .build()
            .unwrap(),
        Arc::new(StaticClients::new().with_public(tv)),
        Arc::new(Issuer::default()),
    )
    .events(events.clone())
    .build();
    let body = format!(
        "client_id=tv&code_challenge={}&code_challenge_method=S256",
        challenge.to_base64url()
    );
    let codes = grant
        .device_authorization(
            EndpointRequest::form(body.as_bytes()),
            RequestContext::default(),
        )
        .await
        .unwrap();
    let poll = format!(
        "grant_type={DEVICE_CODE_GRANT_TYPE}&client_id=tv&device_code={}&code_verifier={other}",
        codes.device_code.secret()
    );
    let refused = grant
        .token(EndpointRequest::form(poll.as_bytes()))
        .await
        .unwrap_err();
    let needles = [VERIFIER, other, "VERIFIER", "OTHER"];
    assert_debug_hides("OAuthError (code verifier)", &refused, &needles);
    assert_display_hides("OAuthError (code verifier)", &refused, &needles);
    assert_hides("the refusal's body", &refused.to_http().body, &needles);
    assert_debug_hides("CodeChallenge", &challenge, &needles);
    for event in events.events() {
        assert_debug_hides("Event", &event, &needles);
    }
}
