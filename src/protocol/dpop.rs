//! DPoP ([RFC 9449]): proof-of-possession JWTs that bind tokens to a key the
//! client holds.
//!
//! The types every build has ([`JwkThumbprint`], [`DpopError`]) carry no
//! dependency; checking a proof ([`DpopVerifier`]) needs the `dpop` feature,
//! which verifies signatures, reads JWKs and computes RFC 7638 thumbprints
//! with `jsonwebtoken` on its RustCrypto backend.
//!
//! What a proof must be (RFC 9449 §4.3), and why:
//!
//! - One compact JWS, no more: a header value with a comma is several
//!   `DPoP` fields joined (RFC 9110 §5.3), refused rather than picked from.
//! - `typ` is `dpop+jwt`, so that no other JWT the key signed can serve as a
//!   proof.
//! - `alg` is one of the configured asymmetric algorithms ([`DpopAlgorithm`]):
//!   never `none`, never an HMAC (the "key" would be in the proof itself).
//! - `jwk` is a public key of the type `alg` needs, with no private member: a
//!   client that sends its private key has none worth binding to.
//! - The signature verifies with that key; `htm` and `htu` name this request
//!   (`htu` without query and fragment, after the URL normalization of RFC
//!   3986 §6.2.2 and §6.2.3 that the `url` crate applies); `iat` is within the
//!   leeway of now, both ways; `jti` is present. Whether the `jti` was seen
//!   before is the host's [`ProofReplay`](crate::ProofReplay) store's to say.
//! - With an access token (at a resource server), `ath` is the base64url
//!   SHA-256 of that token (RFC 9449 §7).
//!
//! Server nonces (RFC 9449 §8) are optional: with
//! [`DpopNonces`](crate::DpopNonces) set on the
//! [`DpopConfig`](crate::DpopConfig), a token request's proof must carry a
//! nonce the server issued, or gets `use_dpop_nonce` with one to use.
//!
//! [RFC 9449]: https://www.rfc-editor.org/rfc/rfc9449

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The `token_type` of a DPoP-bound access token (RFC 9449 §5).
pub const DPOP_TOKEN_TYPE: &str = "DPoP";

/// The JWK SHA-256 thumbprint ([RFC 7638]) of a client's DPoP key: what a
/// sender-constrained token is bound to (`cnf.jkt`, RFC 9449 §6.1).
///
/// A digest of a public key: no secret. `Debug` shows its first characters.
///
/// [RFC 7638]: https://www.rfc-editor.org/rfc/rfc7638
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct JwkThumbprint([u8; 32]);

impl JwkThumbprint {
    /// A thumbprint from its wire form (as in `cnf.jkt` or `dpop_jkt`): 43
    /// characters of unpadded base64url encoding 32 bytes. `None` otherwise.
    pub fn from_base64url(text: &str) -> Option<Self> {
        if text.len() != 43 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text.as_bytes()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// The thumbprint as `cnf.jkt` carries it: unpadded base64url.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for JwkThumbprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwkThumbprint({}…)", &self.to_base64url()[..8])
    }
}

/// Stored and sent as its wire form, unpadded base64url.
impl serde::Serialize for JwkThumbprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64url())
    }
}

impl<'de> serde::Deserialize<'de> for JwkThumbprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        Self::from_base64url(&text)
            .ok_or_else(|| serde::de::Error::custom("expected 43 characters of unpadded base64url"))
    }
}

impl std::fmt::Display for JwkThumbprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_base64url())
    }
}

/// Why a DPoP proof was refused. Each is sent as `invalid_dpop_proof` (RFC
/// 9449 §12.2, HTTP 400) and changes nothing: the proof is checked before the
/// device code's state is read. The texts never quote the proof.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    /// More than one `DPoP` header field (RFC 9449 §4.3: exactly one).
    #[error("more than one DPoP proof")]
    Multiple,
    /// Not a compact JWS with a JSON header and claims, or too large.
    #[error("the DPoP proof is not a well-formed JWT")]
    Malformed,
    /// `typ` is not `dpop+jwt`.
    #[error("the DPoP proof's typ is not dpop+jwt")]
    Type,
    /// `alg` is not one of the supported asymmetric algorithms (`none` and
    /// HMAC never are).
    #[error("the DPoP proof's alg is not supported")]
    Algorithm,
    /// `jwk` is missing, not a public key of the type `alg` needs, or
    /// unusable.
    #[error("the DPoP proof's jwk is missing or unusable")]
    Key,
    /// `jwk` carries private key members.
    #[error("the DPoP proof's jwk contains a private key")]
    PrivateKey,
    /// The signature does not verify with `jwk`.
    #[error("the DPoP proof's signature is invalid")]
    Signature,
    /// `htm` is missing or not this request's method.
    #[error("the DPoP proof's htm does not match the request")]
    Method,
    /// `htu` is missing or not this request's URL.
    #[error("the DPoP proof's htu does not match the request")]
    Url,
    /// `iat` is missing, or further from now than the leeway allows.
    #[error("the DPoP proof's iat is missing or outside the accepted window")]
    IssuedAt,
    /// `jti` is missing, empty or longer than 256 bytes.
    #[error("the DPoP proof's jti is missing or malformed")]
    Jti,
    /// The proof was used before.
    #[error("the DPoP proof was already used")]
    Replayed,
    /// `ath` is missing or is not the hash of the presented access token.
    #[error("the DPoP proof's ath does not match the access token")]
    AccessTokenHash,
    /// A proof was required (the token is DPoP-bound) and none was sent.
    #[error("a DPoP proof is required")]
    Missing,
    /// The proof's key is not the key the token or code is bound to.
    #[error("the DPoP proof's key is not the bound key")]
    WrongKey,
}

#[cfg(feature = "dpop")]
pub use verify::{DpopAlgorithm, DpopVerifier, ProofId, VerifiedProof};

#[cfg(feature = "dpop")]
mod verify {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use sha2::{Digest as _, Sha256};
    use subtle::ConstantTimeEq as _;
    use time::{Duration, OffsetDateTime};

    use super::{DpopError, JwkThumbprint};

    /// The longest proof accepted: an RSA-4096 key and signature fit with
    /// room to spare.
    const MAX_PROOF_BYTES: usize = 8 * 1024;
    /// The longest `jti` accepted: the replay store keeps only a digest, but
    /// nothing legitimate needs more.
    const MAX_JTI_BYTES: usize = 256;
    /// RFC 7518 §3.3: RSA keys of at least 2048 bits.
    const MIN_RSA_MODULUS_BYTES: usize = 256;
    /// JWK members that only private (or symmetric) keys have (RFC 7518 §6).
    const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

    /// A DPoP proof signing algorithm the verifier can accept: asymmetric
    /// only (RFC 9449 §4.3).
    #[non_exhaustive]
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum DpopAlgorithm {
        /// ECDSA with P-256 and SHA-256 (`kty` `EC`, `crv` `P-256`).
        Es256,
        /// Ed25519 (`kty` `OKP`, `crv` `Ed25519`, RFC 8037).
        EdDsa,
        /// RSASSA-PKCS1-v1_5 with SHA-256 (`kty` `RSA`, at least 2048 bits).
        Rs256,
        /// RSASSA-PSS with SHA-256 (`kty` `RSA`, at least 2048 bits).
        Ps256,
    }

    impl DpopAlgorithm {
        /// Every algorithm, in the order the metadata lists them.
        pub const ALL: [Self; 4] = [Self::Es256, Self::EdDsa, Self::Rs256, Self::Ps256];

        /// The `alg` value, as in `dpop_signing_alg_values_supported`.
        pub const fn as_str(self) -> &'static str {
            match self {
                Self::Es256 => "ES256",
                Self::EdDsa => "EdDSA",
                Self::Rs256 => "RS256",
                Self::Ps256 => "PS256",
            }
        }

        fn from_name(name: &str) -> Option<Self> {
            Self::ALL.into_iter().find(|a| a.as_str() == name)
        }

        fn jose(self) -> Algorithm {
            match self {
                Self::Es256 => Algorithm::ES256,
                Self::EdDsa => Algorithm::EdDSA,
                Self::Rs256 => Algorithm::RS256,
                Self::Ps256 => Algorithm::PS256,
            }
        }

        /// Whether `jwk` is the kind of public key this algorithm signs with.
        /// Checked before the key is used: `jsonwebtoken` builds a key from
        /// the coordinates alone, and its thumbprint panics on a curve that
        /// does not fit the key type.
        fn fits(self, jwk: &Jwk) -> bool {
            match (self, &jwk.algorithm) {
                (Self::Es256, AlgorithmParameters::EllipticCurve(ec)) => {
                    ec.curve == EllipticCurve::P256
                }
                (Self::EdDsa, AlgorithmParameters::OctetKeyPair(okp)) => {
                    okp.curve == EllipticCurve::Ed25519
                }
                (Self::Rs256 | Self::Ps256, AlgorithmParameters::RSA(rsa)) => URL_SAFE_NO_PAD
                    .decode(rsa.n.as_bytes())
                    .is_ok_and(|n| n.len() >= MIN_RSA_MODULUS_BYTES),
                _ => false,
            }
        }
    }

    impl std::fmt::Display for DpopAlgorithm {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.as_str())
        }
    }

    /// The identity of one proof for replay detection: a SHA-256 digest of
    /// the key's thumbprint and the proof's `jti`, so that one client's `jti`
    /// values cannot collide with another's and the replay store keeps 32
    /// bytes per proof whatever the client sent.
    #[derive(Clone, Copy, PartialEq, Eq, Hash)]
    pub struct ProofId([u8; 32]);

    impl ProofId {
        /// The digest's bytes, for a shared store's key.
        pub fn as_bytes(&self) -> &[u8; 32] {
            &self.0
        }
    }

    impl std::fmt::Debug for ProofId {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "ProofId({}…)", &URL_SAFE_NO_PAD.encode(self.0)[..8])
        }
    }

    /// A proof that passed [`DpopVerifier::verify`].
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct VerifiedProof {
        /// The thumbprint of the proof's key: what tokens are bound to.
        pub jkt: JwkThumbprint,
        /// The proof's identity, for the replay check.
        pub id: ProofId,
        /// Until when the proof would be accepted (`iat` plus the leeway):
        /// how long the replay store must remember it.
        pub valid_until: OffsetDateTime,
        /// The proof's `nonce` claim (RFC 9449 §8), if any: for
        /// [`DpopNonces::check`](crate::DpopNonces::check).
        pub nonce: Option<String>,
    }

    /// Checks DPoP proofs (RFC 9449 §4.3), with no I/O: the replay check is
    /// the caller's, with the returned [`VerifiedProof::id`].
    ///
    /// Defaults: every [`DpopAlgorithm`], and a leeway of 60 s both ways on
    /// `iat` (clocks of devices drift; a proof is only usable within that
    /// window, and the replay store must keep its `jti` as long).
    #[derive(Debug, Clone)]
    pub struct DpopVerifier {
        leeway: Duration,
        algorithms: Vec<DpopAlgorithm>,
    }

    impl Default for DpopVerifier {
        fn default() -> Self {
            Self {
                leeway: Duration::seconds(60),
                algorithms: DpopAlgorithm::ALL.to_vec(),
            }
        }
    }

    #[derive(serde::Deserialize)]
    struct RawHeader {
        typ: Option<String>,
        alg: Option<String>,
        jwk: Option<serde_json::Map<String, serde_json::Value>>,
        crit: Option<serde_json::Value>,
    }

    #[derive(serde::Deserialize)]
    struct Claims {
        jti: Option<String>,
        htm: Option<String>,
        htu: Option<String>,
        iat: Option<serde_json::Number>,
        ath: Option<String>,
        nonce: Option<String>,
    }

    impl DpopVerifier {
        /// The defaults.
        pub fn new() -> Self {
            Self::default()
        }

        /// How far `iat` may be from now, either way. Kept within 1 s ..= 5
        /// min: a longer window lets a stolen proof live longer and the
        /// replay store grow.
        pub fn leeway(mut self, leeway: Duration) -> Self {
            self.leeway = leeway.clamp(Duration::seconds(1), Duration::minutes(5));
            self
        }

        /// The algorithms accepted (an empty list accepts none).
        pub fn algorithms(mut self, algorithms: &[DpopAlgorithm]) -> Self {
            self.algorithms = algorithms.to_vec();
            self
        }

        /// The accepted algorithms, for `dpop_signing_alg_values_supported`.
        pub fn supported_algorithms(&self) -> &[DpopAlgorithm] {
            &self.algorithms
        }

        /// The `iat` leeway.
        pub fn iat_leeway(&self) -> Duration {
            self.leeway
        }

        /// Checks `proof` (the `DPoP` header value) for a request with
        /// `method` to `url` (the request's absolute URL as the client
        /// addressed it), at `now`. With `access_token` (a resource server's
        /// request), `ath` must be that token's hash.
        pub fn verify(
            &self,
            proof: &str,
            method: &str,
            url: &str,
            access_token: Option<&str>,
            now: OffsetDateTime,
        ) -> Result<VerifiedProof, DpopError> {
            let proof = proof.trim();
            if proof.contains(',') {
                return Err(DpopError::Multiple);
            }
            if proof.len() > MAX_PROOF_BYTES {
                return Err(DpopError::Malformed);
            }
            // The header is read as JSON here only for what `jsonwebtoken`'s
            // typed `Header` drops: the `alg` name as sent (so that `none`
            // is told apart from garbage) and the `jwk`'s private members.
            // The JWS itself is verified by `jsonwebtoken::decode` below.
            let header = proof.split('.').next().unwrap_or_default();
            let header: RawHeader = URL_SAFE_NO_PAD
                .decode(header.as_bytes())
                .ok()
                .and_then(|json| serde_json::from_slice(&json).ok())
                .ok_or(DpopError::Malformed)?;
            if header.crit.is_some() {
                // No extension is understood, so none may be critical.
                return Err(DpopError::Malformed);
            }
            if !header
                .typ
                .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
            {
                return Err(DpopError::Type);
            }
            let algorithm = header
                .alg
                .as_deref()
                .and_then(DpopAlgorithm::from_name)
                .filter(|a| self.algorithms.contains(a))
                .ok_or(DpopError::Algorithm)?;
            let members = header.jwk.ok_or(DpopError::Key)?;
            if PRIVATE_MEMBERS.iter().any(|m| members.contains_key(*m)) {
                return Err(DpopError::PrivateKey);
            }
            let jwk: Jwk = serde_json::from_value(serde_json::Value::Object(members))
                .map_err(|_| DpopError::Key)?;
            if !algorithm.fits(&jwk) {
                return Err(DpopError::Key);
            }
            let key = DecodingKey::from_jwk(&jwk).map_err(|_| DpopError::Key)?;
            let mut validation = Validation::new(algorithm.jose());
            // A proof has no `exp`, `aud` or `iss`: its lifetime is `iat` plus
            // the leeway, checked below against the grant's clock.
            validation.required_spec_claims.clear();
            validation.validate_exp = false;
            validation.validate_nbf = false;
            validation.validate_aud = false;
            let claims = jsonwebtoken::decode::<Claims>(proof, &key, &validation)
                .map_err(|e| {
                    use jsonwebtoken::errors::ErrorKind;
                    match e.kind() {
                        ErrorKind::InvalidSignature => DpopError::Signature,
                        ErrorKind::InvalidEcdsaKey
                        | ErrorKind::InvalidEddsaKey
                        | ErrorKind::InvalidRsaKey(_)
                        | ErrorKind::InvalidKeyFormat => DpopError::Key,
                        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                            DpopError::Algorithm
                        }
                        _ => DpopError::Malformed,
                    }
                })?
                .claims;
            if claims.htm.as_deref() != Some(method) {
                return Err(DpopError::Method);
            }
            if !claims
                .htu
                .as_deref()
                .is_some_and(|htu| same_target(htu, url))
            {
                return Err(DpopError::Url);
            }
            let iat = claims
                .iat
                .as_ref()
                .and_then(serde_json::Number::as_f64)
                .filter(|s| s.is_finite())
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s.floor() as i64).ok())
                .ok_or(DpopError::IssuedAt)?;
            if (iat - now).abs() > self.leeway {
                return Err(DpopError::IssuedAt);
            }
            let jti = claims
                .jti
                .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_BYTES)
                .ok_or(DpopError::Jti)?;
            if let Some(token) = access_token {
                let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
                let matches = claims
                    .ath
                    .is_some_and(|ath| bool::from(ath.as_bytes().ct_eq(expected.as_bytes())));
                if !matches {
                    return Err(DpopError::AccessTokenHash);
                }
            }
            let jkt = JwkThumbprint::from_base64url(&jwk.thumbprint(ThumbprintHash::SHA256))
                .ok_or(DpopError::Key)?;
            let mut id = Sha256::new();
            id.update(jkt.as_bytes());
            id.update(jti.as_bytes());
            Ok(VerifiedProof {
                jkt,
                id: ProofId(id.finalize().into()),
                valid_until: iat + self.leeway,
                nonce: claims.nonce,
            })
        }
    }

    /// RFC 9449 §4.3 step 9: `htu` names the request's URL, ignoring query
    /// and fragment, after syntax-based normalization (the `url` crate
    /// lower-cases scheme and host, drops a default port and resolves dot
    /// segments).
    fn same_target(htu: &str, url: &str) -> bool {
        let strip = |text: &str| {
            url::Url::parse(text).ok().map(|mut u| {
                u.set_query(None);
                u.set_fragment(None);
                u
            })
        };
        match (strip(htu), strip(url)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }
}
