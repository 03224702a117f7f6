//! DPoP (RFC 9449) end to end over HTTP: a device that proves a key gets
//! `token_type: DPoP`; `/api/me` takes the token only as `Authorization:
//! DPoP` with a proof of that key for that request (`ath` included), never
//! as a bearer token; the refresh token stays bound to the key; the
//! metadata lists the algorithms.

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use support::{Server, alice_approves, ask_raw};

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The device's P-256 key, signing proofs with `jsonwebtoken`.
struct Key {
    encoding: EncodingKey,
    jwk: Value,
}

impl Key {
    fn generate() -> Self {
        use p256::elliptic_curve::sec1::ToEncodedPoint as _;
        use p256::pkcs8::EncodePrivateKey as _;
        let secret = loop {
            if let Ok(key) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
                break key;
            }
        };
        let point = secret.public_key().to_encoded_point(false);
        Self {
            encoding: EncodingKey::from_ec_der(secret.to_pkcs8_der().unwrap().as_bytes()),
            jwk: json!({
                "kty": "EC",
                "crv": "P-256",
                "x": b64(point.x().unwrap()),
                "y": b64(point.y().unwrap()),
            }),
        }
    }

    /// RFC 7638, from the required members in lexicographic order.
    fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#,
            self.jwk["x"], self.jwk["y"]
        );
        b64(Sha256::digest(canonical.as_bytes()))
    }

    /// A proof for `method` `url`, with `ath` for `access_token`.
    fn proof(&self, method: &str, url: &str, access_token: Option<&str>) -> String {
        let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk });
        let mut claims = json!({
            "jti": b64(rand::random::<[u8; 16]>()),
            "htm": method,
            "htu": url,
            "iat": time::OffsetDateTime::now_utc().unix_timestamp(),
        });
        if let Some(token) = access_token {
            claims["ath"] = b64(Sha256::digest(token.as_bytes())).into();
        }
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, Algorithm::ES256).unwrap();
        format!("{input}.{signature}")
    }
}

async fn post_token(server: &Server, form: &[(&str, &str)], proof: Option<String>) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(server.url("/token")).form(form);
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The device flow with `key`'s proofs at the token endpoint.
async fn dpop_tokens(server: &Server, key: &Key, scope: &str) -> Value {
    let codes = ask_raw(server, ("tv-app", None), scope).await;
    alice_approves(server, &codes).await;
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", "tv-app"),
        ("device_code", codes["device_code"].as_str().unwrap()),
    ];
    // A proof for another URL is refused, and consumes nothing.
    let (status, refused) = post_token(
        server,
        &form,
        Some(key.proof("POST", &server.url("/elsewhere"), None)),
    )
    .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_dpop_proof"))
    );
    let (status, tokens) = post_token(
        server,
        &form,
        Some(key.proof("POST", &server.url("/token"), None)),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

async fn me(
    server: &Server,
    scheme: &str,
    token: &str,
    proof: Option<String>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .get(server.url("/api/me"))
        .header("Authorization", format!("{scheme} {token}"));
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_dpop_bound_token_works_only_with_proofs_of_its_key() {
    let server = Server::start(|_| {}).await;
    let key = Key::generate();
    let tokens = dpop_tokens(&server, &key, "profile offline_access").await;
    assert_eq!(tokens["token_type"], "DPoP");
    let access = tokens["access_token"].as_str().unwrap();
    let api = server.url("/api/me");

    let ok = me(
        &server,
        "DPoP",
        access,
        Some(key.proof("GET", &api, Some(access))),
    )
    .await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["cnf"]["jkt"], key.thumbprint());

    // As a bearer token: refused, with or without a proof.
    let bearer = me(&server, "Bearer", access, None).await;
    assert_eq!(bearer.status(), 401);
    let bearer = me(
        &server,
        "Bearer",
        access,
        Some(key.proof("GET", &api, Some(access))),
    )
    .await;
    assert_eq!(bearer.status(), 401);

    // Another key's proof, a proof without the right `ath`, for another
    // method, a replayed one, or none.
    let other = Key::generate();
    let wrong_key = me(
        &server,
        "DPoP",
        access,
        Some(other.proof("GET", &api, Some(access))),
    )
    .await;
    assert_eq!(wrong_key.status(), 401);
    let challenge = wrong_key.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("DPoP ") && challenge.contains("invalid_dpop_proof"),
        "{challenge}"
    );
    for proof in [
        key.proof("GET", &api, None),
        key.proof("GET", &api, Some("another-token")),
        key.proof("POST", &api, Some(access)),
    ] {
        assert_eq!(me(&server, "DPoP", access, Some(proof)).await.status(), 401);
    }
    let once = key.proof("GET", &api, Some(access));
    assert_eq!(
        me(&server, "DPoP", access, Some(once.clone()))
            .await
            .status(),
        200
    );
    assert_eq!(me(&server, "DPoP", access, Some(once)).await.status(), 401);
    assert_eq!(me(&server, "DPoP", access, None).await.status(), 401);

    // The refresh token is bound too: without a proof of the key, or with
    // another key's, it is refused and not spent.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", "tv-app"),
        ("refresh_token", refresh),
    ];
    let token_url = server.url("/token");
    let (status, refused) = post_token(&server, &form, None).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_dpop_proof"))
    );
    let (status, refused) =
        post_token(&server, &form, Some(other.proof("POST", &token_url, None))).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_dpop_proof"))
    );
    let (status, renewed) =
        post_token(&server, &form, Some(key.proof("POST", &token_url, None))).await;
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(renewed["token_type"], "DPoP");
    let access = renewed["access_token"].as_str().unwrap();
    let ok = me(
        &server,
        "DPoP",
        access,
        Some(key.proof("GET", &api, Some(access))),
    )
    .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn without_a_proof_tokens_stay_bearer_tokens() {
    let server = Server::start(|_| {}).await;
    let tokens = support::approved_tokens(&server, ("tv-app", None), "profile").await;
    assert_eq!(tokens["token_type"], "Bearer");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(me(&server, "Bearer", access, None).await.status(), 200);
    // An unbound token is not a DPoP token.
    let key = Key::generate();
    let proof = key.proof("GET", &server.url("/api/me"), Some(access));
    assert_eq!(me(&server, "DPoP", access, Some(proof)).await.status(), 401);
}

#[tokio::test]
async fn the_metadata_lists_the_dpop_algorithms() {
    let server = Server::start(|_| {}).await;
    let metadata: Value = reqwest::get(server.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "RS256", "PS256"])
    );
}

/// With device codes bound (`--dpop-bind-device-codes on`): a device that
/// proves its key at `/device_authorization` is the only one that can poll
/// its device code; a thief holding the code alone gets `invalid_dpop_proof`
/// and takes nothing.
#[tokio::test]
async fn a_device_code_bound_at_device_authorization_needs_its_key() {
    let server = Server::start(|options| options.dpop_bind_device_codes = true).await;
    let (key, thief) = (Key::generate(), Key::generate());
    let response = reqwest::Client::new()
        .post(server.url("/device_authorization"))
        .header(
            "DPoP",
            key.proof("POST", &server.url("/device_authorization"), None),
        )
        .form(&[("client_id", "tv-app"), ("scope", "profile")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let codes: Value = response.json().await.unwrap();
    alice_approves(&server, &codes).await;
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", "tv-app"),
        ("device_code", codes["device_code"].as_str().unwrap()),
    ];
    let token_url = server.url("/token");
    for proof in [None, Some(thief.proof("POST", &token_url, None))] {
        let (status, refused) = post_token(&server, &form, proof).await;
        assert_eq!(
            (status, refused["error"].as_str()),
            (400, Some("invalid_dpop_proof")),
            "{refused}"
        );
    }
    assert_eq!(server.issued(), 0);
    let (status, tokens) =
        post_token(&server, &form, Some(key.proof("POST", &token_url, None))).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "DPoP");
    let (_, me_body) = {
        let access = tokens["access_token"].as_str().unwrap();
        let api = server.url("/api/me");
        let response = me(
            &server,
            "DPoP",
            access,
            Some(key.proof("GET", &api, Some(access))),
        )
        .await;
        (response.status(), response.json::<Value>().await.unwrap())
    };
    assert_eq!(me_body["cnf"]["jkt"], key.thumbprint());
}
