//! DPoP (RFC 9449) at the token endpoint: a valid proof's key thumbprint
//! reaches the issuer; every refused proof is `invalid_dpop_proof` and
//! changes nothing.

mod common;

use std::str::FromStr as _;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{approve_on, clients, config, poll_body};
use device_grant::{
    ApprovedGrant, BackendError, Clock as _, DeviceAuthorizationResponse, DeviceGrant,
    DpopAlgorithm, DpopConfig, DpopError, DpopNonces, DpopVerifier, EndpointRequest, JwkThumbprint,
    ManualClock, MemoryProofReplay, Metadata, OAuthError, RequestContext, ToHttp, TokenIssuer,
    TokenResponse,
};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const TOKEN_URL: &str = "https://as.example/token";

/// An issuer that binds the token to the proof's key, and keeps the key.
#[derive(Default)]
struct BindingIssuer {
    seen: Mutex<Vec<Option<JwkThumbprint>>>,
}

#[async_trait::async_trait]
impl TokenIssuer for BindingIssuer {
    async fn issue(&self, grant: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
        self.seen.lock().unwrap().push(grant.dpop_jkt);
        Ok(match grant.dpop_jkt {
            Some(_) => TokenResponse::dpop(format!("bound-{}", grant.id)),
            None => TokenResponse::bearer(format!("bearer-{}", grant.id)),
        })
    }
}

struct Setup {
    grant: DeviceGrant,
    clock: Arc<ManualClock>,
    issuer: Arc<BindingIssuer>,
}

fn setup_with(dpop: Option<DpopConfig>) -> Setup {
    let clock = Arc::new(ManualClock::default());
    let issuer = Arc::new(BindingIssuer::default());
    let mut builder = DeviceGrant::builder(
        config().build().unwrap(),
        Arc::new(clients()),
        issuer.clone(),
    )
    .clock(clock.clone());
    if let Some(dpop) = dpop {
        builder = builder.dpop(dpop);
    }
    Setup {
        grant: builder.build(),
        clock,
        issuer,
    }
}

fn setup() -> Setup {
    setup_with(Some(
        DpopConfig::new(TOKEN_URL, Arc::new(MemoryProofReplay::new())).unwrap(),
    ))
}

/// A client's DPoP key: signs with `jsonwebtoken`, shows its public JWK.
struct Key {
    alg: &'static str,
    encoding: EncodingKey,
    jwk: Value,
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Key {
    fn p256() -> Self {
        use p256::elliptic_curve::sec1::ToEncodedPoint as _;
        use p256::pkcs8::EncodePrivateKey as _;
        let secret = loop {
            if let Ok(key) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
                break key;
            }
        };
        let point = secret.public_key().to_encoded_point(false);
        let der = secret.to_pkcs8_der().unwrap();
        Self {
            alg: "ES256",
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            jwk: json!({
                "kty": "EC",
                "crv": "P-256",
                "x": b64(point.x().unwrap()),
                "y": b64(point.y().unwrap()),
            }),
        }
    }

    fn ed25519() -> Self {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let key = ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        Self {
            alg: "EdDSA",
            encoding: EncodingKey::from_ed_der(key.to_pkcs8_der().unwrap().as_bytes()),
            jwk: json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64(key.verifying_key().as_bytes()),
            }),
        }
    }

    /// The RFC 7638 thumbprint, computed here from the required members in
    /// lexicographic order, independently of the crate.
    fn thumbprint(&self) -> JwkThumbprint {
        let j = &self.jwk;
        let canonical = match j["kty"].as_str().unwrap() {
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                j["crv"].as_str().unwrap(),
                j["x"].as_str().unwrap(),
                j["y"].as_str().unwrap()
            ),
            "OKP" => format!(
                r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
                j["crv"].as_str().unwrap(),
                j["x"].as_str().unwrap()
            ),
            other => panic!("{other}"),
        };
        JwkThumbprint::from_base64url(&b64(Sha256::digest(canonical.as_bytes()))).unwrap()
    }

    /// A proof with this header and these claims, signed with this key
    /// under `alg` (which the header may claim otherwise).
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let alg = Algorithm::from_str(self.alg).unwrap();
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, alg).unwrap();
        format!("{input}.{signature}")
    }

    fn header(&self) -> Value {
        json!({ "typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk })
    }

    /// A valid proof for the token endpoint at `now`.
    fn proof(&self, s: &Setup) -> String {
        self.sign(&self.header(), &claims(s))
    }
}

fn claims(s: &Setup) -> Value {
    json!({
        "jti": b64(rand::random::<[u8; 16]>()),
        "htm": "POST",
        "htu": TOKEN_URL,
        "iat": s.clock.now().unix_timestamp(),
    })
}

async fn start(s: &Setup) -> DeviceAuthorizationResponse {
    s.grant
        .device_authorization(
            EndpointRequest::form(b"client_id=tv-app&scope=profile"),
            RequestContext::default(),
        )
        .await
        .unwrap()
}

async fn approve(s: &Setup, codes: &DeviceAuthorizationResponse) {
    approve_on(&s.grant, codes, "alice").await;
}

async fn poll(
    s: &Setup,
    codes: &DeviceAuthorizationResponse,
    proof: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let body = poll_body("tv-app", codes.device_code.secret());
    let mut request = EndpointRequest::form(body.as_bytes());
    if let Some(proof) = proof {
        request = request.with_dpop(proof);
    }
    s.grant.token(request).await
}

fn refused(result: Result<TokenResponse, OAuthError>) -> DpopError {
    match result {
        Err(OAuthError::DpopProof(reason)) => reason,
        other => panic!("expected a refused DPoP proof, got {other:?}"),
    }
}

async fn approved(s: &Setup) -> DeviceAuthorizationResponse {
    let codes = start(s).await;
    approve(s, &codes).await;
    codes
}

#[tokio::test]
async fn a_valid_proof_binds_the_tokens_to_its_key() {
    let s = setup();
    let key = Key::p256();
    let codes = start(&s).await;
    // Pending polls with proofs are answered as usual.
    let pending = poll(&s, &codes, Some(&key.proof(&s))).await.unwrap_err();
    assert_eq!(pending.code().as_str(), "authorization_pending");
    approve(&s, &codes).await;
    s.clock.advance(time::Duration::seconds(5));
    let tokens = poll(&s, &codes, Some(&key.proof(&s))).await.unwrap();
    assert_eq!(tokens.token_type, "DPoP");
    assert_eq!(*s.issuer.seen.lock().unwrap(), vec![Some(key.thumbprint())]);
    let http = Ok::<_, OAuthError>(tokens).to_http();
    let body: Value = serde_json::from_str(&http.body).unwrap();
    assert_eq!(body["token_type"], "DPoP");
}

#[tokio::test]
async fn ed25519_proofs_are_accepted() {
    let s = setup();
    let key = Key::ed25519();
    let codes = approved(&s).await;
    poll(&s, &codes, Some(&key.proof(&s))).await.unwrap();
    assert_eq!(*s.issuer.seen.lock().unwrap(), vec![Some(key.thumbprint())]);
}

#[tokio::test]
async fn without_a_proof_the_issuer_sees_no_key() {
    let s = setup();
    let codes = approved(&s).await;
    let tokens = poll(&s, &codes, None).await.unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(*s.issuer.seen.lock().unwrap(), vec![None]);
}

#[tokio::test]
async fn without_dpop_configured_the_header_is_ignored() {
    let s = setup_with(None);
    let codes = approved(&s).await;
    // Not even a malformed proof is looked at (RFC 9449 §5: a server without
    // DPoP issues bearer tokens).
    let tokens = poll(&s, &codes, Some("not-a-proof")).await.unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(*s.issuer.seen.lock().unwrap(), vec![None]);
}

/// Each refused proof is `invalid_dpop_proof` (400), and the approval is
/// still there for the next, valid, proof.
async fn refused_then_redeemed(
    s: &Setup,
    key: &Key,
    proof: String,
    reason: DpopError,
) -> DeviceAuthorizationResponse {
    let codes = approved(s).await;
    let result = poll(s, &codes, Some(&proof)).await;
    let error = result.as_ref().unwrap_err();
    assert_eq!(error.code().as_str(), "invalid_dpop_proof");
    let http = error.to_http();
    assert_eq!(http.status, 400);
    assert!(http.body.contains("invalid_dpop_proof"));
    assert_eq!(refused(result), reason);
    let tokens = poll(s, &codes, Some(&key.proof(s))).await.unwrap();
    assert_eq!(tokens.token_type, "DPoP");
    codes
}

#[tokio::test]
async fn htm_and_htu_must_name_the_token_endpoint() {
    let s = setup();
    let key = Key::p256();
    let mut c = claims(&s);
    c["htm"] = "GET".into();
    refused_then_redeemed(&s, &key, key.sign(&key.header(), &c), DpopError::Method).await;
    for htu in [
        "https://as.example/other",
        "https://evil.example/token",
        "http://as.example/token",
        "not a url",
    ] {
        let mut c = claims(&s);
        c["htu"] = htu.into();
        refused_then_redeemed(&s, &key, key.sign(&key.header(), &c), DpopError::Url).await;
    }
    let mut c = claims(&s);
    c.as_object_mut().unwrap().remove("htu");
    refused_then_redeemed(&s, &key, key.sign(&key.header(), &c), DpopError::Url).await;
    // RFC 9449 §4.3: query and fragment are ignored; the host's case and a
    // default port are normalized.
    for htu in [
        "https://as.example/token?x=1",
        "https://as.example/token#f",
        "https://AS.example:443/token",
    ] {
        let codes = approved(&s).await;
        let mut c = claims(&s);
        c["htu"] = htu.into();
        poll(&s, &codes, Some(&key.sign(&key.header(), &c)))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn iat_must_be_within_the_leeway() {
    let s = setup();
    let key = Key::p256();
    for offset in [-61, 61, -3600] {
        let mut c = claims(&s);
        c["iat"] = (s.clock.now().unix_timestamp() + offset).into();
        refused_then_redeemed(&s, &key, key.sign(&key.header(), &c), DpopError::IssuedAt).await;
    }
    let mut c = claims(&s);
    c.as_object_mut().unwrap().remove("iat");
    refused_then_redeemed(&s, &key, key.sign(&key.header(), &c), DpopError::IssuedAt).await;
    for offset in [-60, 60] {
        let codes = approved(&s).await;
        let mut c = claims(&s);
        c["iat"] = (s.clock.now().unix_timestamp() + offset).into();
        poll(&s, &codes, Some(&key.sign(&key.header(), &c)))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_narrower_leeway_is_applied() {
    let verifier = DpopVerifier::new().leeway(time::Duration::seconds(5));
    let s = setup_with(Some(
        DpopConfig::new(TOKEN_URL, Arc::new(MemoryProofReplay::new()))
            .unwrap()
            .verifier(verifier),
    ));
    let key = Key::p256();
    let mut c = claims(&s);
    c["iat"] = (s.clock.now().unix_timestamp() - 6).into();
    refused_then_redeemed(&s, &key, key.sign(&key.header(), &c), DpopError::IssuedAt).await;
}

#[tokio::test]
async fn a_proof_works_once() {
    let s = setup();
    let key = Key::p256();
    let proof = key.proof(&s);
    let codes = start(&s).await;
    let first = poll(&s, &codes, Some(&proof)).await.unwrap_err();
    assert_eq!(first.code().as_str(), "authorization_pending");
    approve(&s, &codes).await;
    s.clock.advance(time::Duration::seconds(5));
    assert_eq!(
        refused(poll(&s, &codes, Some(&proof)).await),
        DpopError::Replayed
    );
    // The same jti under another key is another proof.
    let other = Key::p256();
    let mut c = claims(&s);
    let used: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(proof.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    c["jti"] = used["jti"].clone();
    poll(&s, &codes, Some(&other.sign(&other.header(), &c)))
        .await
        .unwrap();
    // A missing jti is refused.
    let codes = approved(&s).await;
    let mut c = claims(&s);
    c.as_object_mut().unwrap().remove("jti");
    assert_eq!(
        refused(poll(&s, &codes, Some(&key.sign(&key.header(), &c))).await),
        DpopError::Jti
    );
}

#[tokio::test]
async fn the_signature_must_verify_with_the_proofs_key() {
    let s = setup();
    let key = Key::p256();
    let other = Key::p256();
    // Signed with `other`, showing `key`.
    let forged = other.sign(&key.header(), &claims(&s));
    refused_then_redeemed(&s, &key, forged, DpopError::Signature).await;
    // A valid proof with its claims changed after signing.
    let proof = key.proof(&s);
    let mut parts: Vec<String> = proof.split('.').map(str::to_owned).collect();
    let mut c = claims(&s);
    c["htu"] = "https://as.example/token".into();
    c["jti"] = "changed".into();
    parts[1] = b64(c.to_string());
    refused_then_redeemed(&s, &key, parts.join("."), DpopError::Signature).await;
}

#[tokio::test]
async fn none_and_hmac_are_refused() {
    let s = setup();
    let key = Key::p256();
    // alg none, no signature.
    let mut header = key.header();
    header["alg"] = "none".into();
    let unsigned = format!(
        "{}.{}.",
        b64(header.to_string()),
        b64(claims(&s).to_string())
    );
    refused_then_redeemed(&s, &key, unsigned, DpopError::Algorithm).await;
    // HS256 keyed with the public key's bytes (the classic confusion), and
    // HS256 with a symmetric jwk.
    let hmac = Key {
        alg: "HS256",
        encoding: EncodingKey::from_secret(key.jwk.to_string().as_bytes()),
        jwk: key.jwk.clone(),
    };
    let proof = hmac.sign(&hmac.header(), &claims(&s));
    refused_then_redeemed(&s, &key, proof, DpopError::Algorithm).await;
    // A symmetric jwk is refused whatever the alg claims.
    let mut header = key.header();
    header["jwk"] = json!({ "kty": "oct", "k": b64(b"secret") });
    let proof = hmac.sign(&header, &claims(&s));
    refused_then_redeemed(&s, &key, proof, DpopError::PrivateKey).await;
    // An algorithm the verifier is configured without.
    let es_only = DpopVerifier::new().algorithms(&[DpopAlgorithm::Es256]);
    let s = setup_with(Some(
        DpopConfig::new(TOKEN_URL, Arc::new(MemoryProofReplay::new()))
            .unwrap()
            .verifier(es_only),
    ));
    let ed = Key::ed25519();
    let codes = approved(&s).await;
    assert_eq!(
        refused(poll(&s, &codes, Some(&ed.proof(&s))).await),
        DpopError::Algorithm
    );
}

#[tokio::test]
async fn the_header_must_be_a_public_key_of_the_right_type() {
    let s = setup();
    let key = Key::p256();
    // A private key member.
    let mut header = key.header();
    header["jwk"]["d"] = b64([7u8; 32]).into();
    refused_then_redeemed(
        &s,
        &key,
        key.sign(&header, &claims(&s)),
        DpopError::PrivateKey,
    )
    .await;
    // No jwk.
    let mut header = key.header();
    header.as_object_mut().unwrap().remove("jwk");
    refused_then_redeemed(&s, &key, key.sign(&header, &claims(&s)), DpopError::Key).await;
    // A curve that does not fit the algorithm.
    let mut header = key.header();
    header["jwk"]["crv"] = "Ed25519".into();
    refused_then_redeemed(&s, &key, key.sign(&header, &claims(&s)), DpopError::Key).await;
    let mut header = key.header();
    header["jwk"]["crv"] = "P-384".into();
    refused_then_redeemed(&s, &key, key.sign(&header, &claims(&s)), DpopError::Key).await;
    // Another typ.
    for typ in [json!("JWT"), Value::Null] {
        let mut header = key.header();
        header["typ"] = typ;
        refused_then_redeemed(&s, &key, key.sign(&header, &claims(&s)), DpopError::Type).await;
    }
    // A critical extension.
    let mut header = key.header();
    header["crit"] = json!(["exp"]);
    refused_then_redeemed(
        &s,
        &key,
        key.sign(&header, &claims(&s)),
        DpopError::Malformed,
    )
    .await;
}

#[tokio::test]
async fn exactly_one_proof_and_nothing_malformed() {
    let s = setup();
    let key = Key::p256();
    let two = format!("{}, {}", key.proof(&s), key.proof(&s));
    refused_then_redeemed(&s, &key, two, DpopError::Multiple).await;
    for garbage in ["", "a.b", "a.b.c", "%%%.%%%.%%%", "eyJ9.e30.AA"] {
        refused_then_redeemed(&s, &key, garbage.to_owned(), DpopError::Malformed).await;
    }
    let huge = format!("{}.{}.x", "a".repeat(10_000), "b");
    refused_then_redeemed(&s, &key, huge, DpopError::Malformed).await;
}

#[tokio::test]
async fn a_resource_server_checks_ath() {
    let verifier = DpopVerifier::new();
    let s = setup();
    let key = Key::p256();
    let url = "https://rs.example/api/me";
    let token = "some-access-token";
    let mut c = claims(&s);
    c["htm"] = "GET".into();
    c["htu"] = url.into();
    let now = s.clock.now();
    let without = key.sign(&key.header(), &c);
    assert_eq!(
        verifier.verify(&without, "GET", url, Some(token), now),
        Err(DpopError::AccessTokenHash)
    );
    c["ath"] = b64(Sha256::digest(b"another-token")).into();
    let wrong = key.sign(&key.header(), &c);
    assert_eq!(
        verifier.verify(&wrong, "GET", url, Some(token), now),
        Err(DpopError::AccessTokenHash)
    );
    c["ath"] = b64(Sha256::digest(token.as_bytes())).into();
    let right = key.sign(&key.header(), &c);
    let proof = verifier
        .verify(&right, "GET", url, Some(token), now)
        .unwrap();
    assert_eq!(proof.jkt, key.thumbprint());
    assert_eq!(proof.valid_until, now + time::Duration::seconds(60));
}

#[tokio::test]
async fn the_replay_store_is_bounded() {
    use device_grant::ProofReplay as _;
    let s = setup();
    let store = MemoryProofReplay::with_capacity(2);
    let verifier = DpopVerifier::new();
    let key = Key::p256();
    let now = s.clock.now();
    let ids: Vec<_> = (0..3)
        .map(|_| {
            verifier
                .verify(&key.proof(&s), "POST", TOKEN_URL, None, now)
                .unwrap()
        })
        .collect();
    let until = now + time::Duration::seconds(60);
    assert!(store.first_use(&ids[0].id, until, now).await.unwrap());
    assert!(!store.first_use(&ids[0].id, until, now).await.unwrap());
    assert!(store.first_use(&ids[1].id, until, now).await.unwrap());
    // Full of live proofs: refused rather than forgetting one.
    assert!(matches!(
        store.first_use(&ids[2].id, until, now).await,
        Err(BackendError::Unavailable(_))
    ));
    // Once they are past, their room is reused.
    let later = until + time::Duration::seconds(1);
    assert!(
        store
            .first_use(&ids[2].id, later + time::Duration::seconds(60), later)
            .await
            .unwrap()
    );
    assert_eq!(store.len(), 1);
}

#[test]
fn metadata_lists_the_algorithms_only_with_dpop() {
    let plain = serde_json::to_value(Metadata::new("https://as.example/device")).unwrap();
    assert!(plain.get("dpop_signing_alg_values_supported").is_none());
    let mut doc = serde_json::Map::new();
    Metadata::new("https://as.example/device").merge_into(&mut doc);
    assert!(!doc.contains_key("dpop_signing_alg_values_supported"));

    let dpop = DpopConfig::new(TOKEN_URL, Arc::new(MemoryProofReplay::new())).unwrap();
    let metadata = Metadata::new("https://as.example/device").dpop(dpop.supported_algorithms());
    let mut doc = serde_json::Map::new();
    metadata.merge_into(&mut doc);
    assert_eq!(
        doc["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "RS256", "PS256"])
    );
}

#[test]
fn the_token_endpoint_url_is_validated() {
    let replay = || Arc::new(MemoryProofReplay::new());
    for bad in [
        "/token",
        "ftp://as.example/token",
        "https://as.example/token?x=1",
        "https://as.example/token#f",
    ] {
        assert!(DpopConfig::new(bad, replay()).is_err(), "{bad}");
    }
    assert!(DpopConfig::new("http://127.0.0.1:8080/token", replay()).is_ok());
}

#[test]
fn thumbprints_and_debug_output() {
    let key = Key::p256();
    let jkt = key.thumbprint();
    assert_eq!(
        JwkThumbprint::from_base64url(&jkt.to_base64url()),
        Some(jkt)
    );
    assert!(JwkThumbprint::from_base64url("short").is_none());
    let debug = format!("{jkt:?}");
    assert!(
        debug.starts_with("JwkThumbprint(") && debug.len() < 30,
        "{debug}"
    );
    let request = EndpointRequest::form(b"x").with_dpop("secret-proof");
    let debug = format!("{request:?}");
    assert!(debug.contains("has_dpop: true") && !debug.contains("secret-proof"));
}

fn with_nonces(nonces: DpopNonces) -> Setup {
    setup_with(Some(
        DpopConfig::new(TOKEN_URL, Arc::new(MemoryProofReplay::new()))
            .unwrap()
            .nonces(nonces),
    ))
}

/// The nonce a `use_dpop_nonce` refusal hands out, from its HTTP rendering.
fn handed_out(result: Result<TokenResponse, OAuthError>) -> String {
    let error = result.unwrap_err();
    assert!(
        matches!(error, OAuthError::UseDpopNonce { .. }),
        "{error:?}"
    );
    let http = error.to_http();
    assert_eq!(http.status, 400);
    let body: Value = serde_json::from_str(&http.body).unwrap();
    assert_eq!(body["error"], "use_dpop_nonce");
    http.header("dpop-nonce")
        .expect("a DPoP-Nonce header")
        .to_owned()
}

#[tokio::test]
async fn with_nonces_required_a_proof_without_one_gets_a_nonce_and_changes_nothing() {
    let s = with_nonces(DpopNonces::new(&[3; 32]).unwrap());
    let key = Key::p256();
    let codes = approved(&s).await;
    let nonce = handed_out(poll(&s, &codes, Some(&key.proof(&s))).await);
    // The approval is still there: the retry with the nonce redeems it.
    let mut c = claims(&s);
    c["nonce"] = nonce.clone().into();
    let tokens = poll(&s, &codes, Some(&key.sign(&key.header(), &c)))
        .await
        .unwrap();
    assert_eq!(tokens.token_type, "DPoP");
    assert_eq!(*s.issuer.seen.lock().unwrap(), vec![Some(key.thumbprint())]);
}

#[tokio::test]
async fn a_nonce_of_another_key_or_past_its_lifetime_is_refused() {
    let nonces = DpopNonces::new(&[3; 32])
        .unwrap()
        .lifetime(time::Duration::seconds(60));
    let s = with_nonces(nonces.clone());
    let key = Key::p256();
    let codes = start(&s).await;
    let proof_with = |nonce: &str| {
        let mut c = claims(&s);
        c["nonce"] = nonce.into();
        key.sign(&key.header(), &c)
    };
    let foreign = DpopNonces::new(&[4; 32]).unwrap().current(s.clock.now());
    handed_out(poll(&s, &codes, Some(&proof_with(foreign.as_str()))).await);
    handed_out(poll(&s, &codes, Some(&proof_with("made-up"))).await);
    let nonce = nonces.current(s.clock.now());
    let pending = poll(&s, &codes, Some(&proof_with(nonce.as_str())))
        .await
        .unwrap_err();
    assert_eq!(pending.code().as_str(), "authorization_pending");
    // Two windows later the nonce is stale; the one handed out works.
    s.clock.advance(time::Duration::seconds(120));
    let fresh = handed_out(poll(&s, &codes, Some(&proof_with(nonce.as_str()))).await);
    assert_ne!(fresh, nonce.as_str());
    let pending = poll(&s, &codes, Some(&proof_with(&fresh)))
        .await
        .unwrap_err();
    assert_eq!(pending.code().as_str(), "authorization_pending");
}

const DEVICE_AUTHORIZATION_URL: &str = "https://as.example/device_authorization";

fn binding() -> Setup {
    setup_with(Some(
        DpopConfig::new(TOKEN_URL, Arc::new(MemoryProofReplay::new()))
            .unwrap()
            .bind_device_codes(DEVICE_AUTHORIZATION_URL)
            .unwrap(),
    ))
}

/// A device authorization request with a proof of `key` for that endpoint.
async fn start_bound(s: &Setup, key: &Key) -> Result<DeviceAuthorizationResponse, OAuthError> {
    let mut c = claims(s);
    c["htu"] = DEVICE_AUTHORIZATION_URL.into();
    let proof = key.sign(&key.header(), &c);
    s.grant
        .device_authorization(
            EndpointRequest::form(b"client_id=tv-app&scope=profile").with_dpop(&proof),
            RequestContext::default(),
        )
        .await
}

#[tokio::test]
async fn a_bound_device_code_is_polled_and_redeemed_only_with_its_key() {
    let s = binding();
    let key = Key::p256();
    let thief = Key::p256();
    let codes = start_bound(&s, &key).await.unwrap();
    // Pending: a poll without a proof, or with another key's, is refused
    // before the request's state is looked at.
    assert_eq!(refused(poll(&s, &codes, None).await), DpopError::Missing);
    assert_eq!(
        refused(poll(&s, &codes, Some(&thief.proof(&s))).await),
        DpopError::WrongKey
    );
    let pending = poll(&s, &codes, Some(&key.proof(&s))).await.unwrap_err();
    assert_eq!(pending.code().as_str(), "authorization_pending");
    // Approved: the thief still gets nothing, and the approval waits for
    // the device.
    approve(&s, &codes).await;
    s.clock.advance(time::Duration::seconds(5));
    assert_eq!(
        refused(poll(&s, &codes, Some(&thief.proof(&s))).await),
        DpopError::WrongKey
    );
    assert_eq!(refused(poll(&s, &codes, None).await), DpopError::Missing);
    let tokens = poll(&s, &codes, Some(&key.proof(&s))).await.unwrap();
    assert_eq!(tokens.token_type, "DPoP");
    assert_eq!(*s.issuer.seen.lock().unwrap(), vec![Some(key.thumbprint())]);
}

#[tokio::test]
async fn binding_needs_a_valid_proof_for_the_device_authorization_endpoint() {
    let s = binding();
    let key = Key::p256();
    // A proof for the token endpoint does not bind a device code.
    let wrong_htu = s
        .grant
        .device_authorization(
            EndpointRequest::form(b"client_id=tv-app&scope=profile").with_dpop(&key.proof(&s)),
            RequestContext::default(),
        )
        .await;
    assert!(
        matches!(wrong_htu, Err(OAuthError::DpopProof(DpopError::Url))),
        "{wrong_htu:?}"
    );
    // Without a proof the code is not bound: any proof, or none, polls it.
    let unbound = start(&s).await;
    let pending = poll(&s, &unbound, None).await.unwrap_err();
    assert_eq!(pending.code().as_str(), "authorization_pending");
}

#[tokio::test]
async fn without_binding_a_proof_at_the_device_authorization_endpoint_binds_nothing() {
    let s = setup();
    let key = Key::p256();
    let codes = start_bound(&s, &key).await.unwrap();
    approve(&s, &codes).await;
    let tokens = poll(&s, &codes, None).await.unwrap();
    assert_eq!(tokens.token_type, "Bearer");
}
