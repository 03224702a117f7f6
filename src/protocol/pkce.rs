//! PKCE ([RFC 7636]) on the device grant, as Keycloak and PingAM deploy it: the
//! device sends an `S256` code challenge with its device authorization request,
//! keeps the verifier, and every token request for that device code must carry
//! the verifier. A device code stolen in transit or from a log is then useless
//! without the verifier, which never left the device before the first poll.
//!
//! The rules, and why:
//!
//! - Only `S256`. `plain` sends the verifier itself as the challenge, so it
//!   protects nothing against whoever saw the device authorization request
//!   (RFC 9700 §2.1.1: use `S256`). Any other method is refused too.
//! - A `code_challenge` without `code_challenge_method` is refused: RFC 7636
//!   §4.3 defaults the method to `plain`, and the crate does not serve `plain`.
//!   Reading an absent method as `S256` instead would accept requests whose
//!   sender meant `plain`, and whose verifier would then never match.
//! - A `code_challenge_method` without a `code_challenge`, or a challenge that
//!   is not 43 characters of unpadded base64url of 32 bytes, is refused.
//! - A token request whose verifier is missing or wrong, or which carries a
//!   verifier although the request was made without a challenge, is
//!   `invalid_grant` and changes nothing (see [`CodeVerifierError`]).
//!
//! [RFC 7636]: https://www.rfc-editor.org/rfc/rfc7636

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::protocol::error::RequestError;

/// A PKCE code challenge method (RFC 7636 §4.3). The crate serves `S256` only.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum CodeChallengeMethod {
    /// `S256`: the challenge is `BASE64URL(SHA-256(code_verifier))`.
    #[serde(rename = "S256")]
    S256,
}

impl CodeChallengeMethod {
    /// The method's name on the wire, as in `code_challenge_method` and in the
    /// metadata's `code_challenge_methods_supported`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::S256 => "S256",
        }
    }
}

impl std::fmt::Display for CodeChallengeMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The shortest `code_verifier` (RFC 7636 §4.1).
const MIN_VERIFIER_CHARS: usize = 43;
/// The longest `code_verifier` (RFC 7636 §4.1).
const MAX_VERIFIER_CHARS: usize = 128;
/// The length of an `S256` challenge: unpadded base64url of 32 bytes.
const S256_CHALLENGE_CHARS: usize = 43;

/// Whether `verifier` is a well-formed `code_verifier` (RFC 7636 §4.1): 43 to
/// 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
pub(crate) fn is_well_formed_verifier(verifier: &str) -> bool {
    (MIN_VERIFIER_CHARS..=MAX_VERIFIER_CHARS).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An `S256` code challenge (RFC 7636 §4.2), kept with a device authorization
/// request: the SHA-256 digest of the device's `code_verifier`.
///
/// Holds no secret: the digest of a verifier of at least 256 bits of entropy
/// reveals nothing of it. `Debug` shows the method and the challenge's first
/// characters, as the record's hashes do.
///
/// Stored in the record's `request` as `"code_challenge": {"method": "S256",
/// "value": "<43 characters of unpadded base64url>"}`; a record with another
/// method is refused as unreadable rather than misread.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CodeChallenge {
    method: CodeChallengeMethod,
    digest: [u8; 32],
}

impl CodeChallenge {
    /// An `S256` challenge from its wire form, the `code_challenge` parameter:
    /// exactly 43 characters of unpadded base64url encoding 32 bytes (with the
    /// unused low bits zero, as every encoder writes them). `None` otherwise.
    pub fn s256(challenge: &str) -> Option<Self> {
        if challenge.len() != S256_CHALLENGE_CHARS {
            return None;
        }
        // The engine refuses padding, characters outside the URL-safe
        // alphabet, and a last character with non-zero unused bits.
        let bytes = URL_SAFE_NO_PAD.decode(challenge.as_bytes()).ok()?;
        Some(Self {
            method: CodeChallengeMethod::S256,
            digest: bytes.try_into().ok()?,
        })
    }

    /// The `S256` challenge of a `code_verifier`, as a device computes it
    /// before its device authorization request. `None` if the verifier is not
    /// well formed (RFC 7636 §4.1: 43 to 128 unreserved characters).
    pub fn from_verifier(verifier: &str) -> Option<Self> {
        is_well_formed_verifier(verifier).then(|| Self {
            method: CodeChallengeMethod::S256,
            digest: Sha256::digest(verifier.as_bytes()).into(),
        })
    }

    /// The method, `S256`.
    pub fn method(&self) -> CodeChallengeMethod {
        self.method
    }

    /// The challenge as sent in `code_challenge`: unpadded base64url.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.digest)
    }

    /// Whether `verifier` is the verifier of this challenge (RFC 7636 §4.6).
    /// A malformed verifier matches nothing; a well-formed one is hashed and
    /// compared with the challenge in constant time.
    pub fn verify(&self, verifier: &str) -> bool {
        if !is_well_formed_verifier(verifier) {
            return false;
        }
        let derived: [u8; 32] = match self.method {
            CodeChallengeMethod::S256 => Sha256::digest(verifier.as_bytes()).into(),
        };
        derived.ct_eq(&self.digest).into()
    }

    /// The challenge a device authorization request carries, under the rules
    /// of the module: `Ok(None)` for a request without PKCE (refused with
    /// [`RequestError::CodeChallengeRequired`] when `required`).
    pub(crate) fn from_request(
        challenge: Option<&str>,
        method: Option<&str>,
        required: bool,
    ) -> Result<Option<Self>, RequestError> {
        match (challenge, method) {
            (None, None) if required => Err(RequestError::CodeChallengeRequired),
            (None, None) => Ok(None),
            (None, Some(_)) => Err(RequestError::MissingParameter("code_challenge")),
            // Absent, the method is `plain` (RFC 7636 §4.3): refused as `plain` is.
            (Some(challenge), Some("S256")) => Self::s256(challenge)
                .map(Some)
                .ok_or(RequestError::MalformedCodeChallenge),
            (Some(_), _) => Err(RequestError::UnsupportedCodeChallengeMethod),
        }
    }
}

impl std::fmt::Debug for CodeChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.to_base64url();
        write!(f, "CodeChallenge({}, {}…)", self.method, &text[..8])
    }
}

/// The stored form of a [`CodeChallenge`].
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored<'a> {
    method: CodeChallengeMethod,
    #[serde(borrow)]
    value: std::borrow::Cow<'a, str>,
}

impl serde::Serialize for CodeChallenge {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Stored {
            method: self.method,
            value: self.to_base64url().into(),
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for CodeChallenge {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let stored = Stored::deserialize(d)?;
        match stored.method {
            CodeChallengeMethod::S256 => Self::s256(&stored.value).ok_or_else(|| {
                serde::de::Error::custom("expected 43 characters of unpadded base64url")
            }),
        }
    }
}

/// Why a token request's `code_verifier` was refused. Each is sent as
/// `invalid_grant` (RFC 7636 §4.6) and changes nothing: the verifier is checked
/// before the request's state is looked at, so the record is not written, no
/// `slow_down` is counted, no replay is reported, and the real device, which
/// holds the verifier, can still redeem the code.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeVerifierError {
    /// The request was made with a code challenge, and the token request has
    /// no `code_verifier`.
    #[error("`code_verifier` is missing: the device authorization carried a code challenge")]
    Missing,
    /// The `code_verifier` is malformed or is not the challenge's verifier.
    #[error("`code_verifier` does not match the code challenge")]
    Mismatch,
    /// The token request carries a `code_verifier`, but the request was made
    /// without a challenge. Refused rather than ignored: the device believes
    /// PKCE protects its code when it does not (the challenge was lost or
    /// stripped on the way), and a server that ignored the verifier would hide
    /// that downgrade (the spirit of RFC 7636 §4.5 and RFC 9700 §2.1.1).
    #[error("`code_verifier` was sent, but the device authorization carried no code challenge")]
    Unexpected,
}

/// Checks a token request's `code_verifier` against the request's challenge.
pub(crate) fn check_verifier(
    challenge: Option<&CodeChallenge>,
    verifier: Option<&str>,
) -> Result<(), CodeVerifierError> {
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (Some(challenge), Some(verifier)) if challenge.verify(verifier) => Ok(()),
        (Some(_), Some(_)) => Err(CodeVerifierError::Mismatch),
        (Some(_), None) => Err(CodeVerifierError::Missing),
        (None, Some(_)) => Err(CodeVerifierError::Unexpected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc_7636_appendix_b() {
        let challenge = CodeChallenge::s256(CHALLENGE).unwrap();
        assert_eq!(
            CodeChallenge::from_verifier(VERIFIER),
            Some(challenge.clone())
        );
        assert_eq!(challenge.to_base64url(), CHALLENGE);
        assert_eq!(challenge.method().as_str(), "S256");
        assert!(challenge.verify(VERIFIER));
        assert!(!challenge.verify(&VERIFIER.replace('d', "e")));
        assert!(!challenge.verify(CHALLENGE), "plain is never accepted");
        assert_eq!(format!("{challenge:?}"), "CodeChallenge(S256, E9Melhoa…)");
    }

    #[test]
    fn verifiers_are_43_to_128_unreserved_characters() {
        let ok = |v: &str| is_well_formed_verifier(v);
        assert!(ok(&"a".repeat(43)));
        assert!(ok(&"-._~AZaz09".repeat(13)[..128]));
        assert!(!ok(&"a".repeat(42)));
        assert!(!ok(&"a".repeat(129)));
        for bad in ['+', '/', '=', ' ', '%', 'é', '\0'] {
            let v = format!("{}{bad}", "a".repeat(43));
            assert!(!ok(&v), "{bad:?}");
            assert!(CodeChallenge::from_verifier(&v).is_none());
        }
        // A malformed verifier matches nothing, even the challenge of its bytes.
        let short = "a".repeat(42);
        let digest: [u8; 32] = Sha256::digest(short.as_bytes()).into();
        let challenge = CodeChallenge::s256(&URL_SAFE_NO_PAD.encode(digest)).unwrap();
        assert!(!challenge.verify(&short));
    }

    #[test]
    fn challenges_are_exactly_43_canonical_base64url_characters() {
        assert!(CodeChallenge::s256(&CHALLENGE[..42]).is_none());
        assert!(CodeChallenge::s256(&format!("{CHALLENGE}A")).is_none());
        assert!(CodeChallenge::s256(&format!("{}=", &CHALLENGE[..42])).is_none());
        assert!(CodeChallenge::s256(&CHALLENGE.replace('-', "+")).is_none());
        assert!(CodeChallenge::s256(&CHALLENGE.replace('-', "/")).is_none());
        // `M` encodes the last 4 bits as 1100: the unused low 2 bits are zero.
        // `N` (1101) sets one of them: not what any encoder writes.
        assert!(CodeChallenge::s256(&CHALLENGE.replace("cM", "cN")).is_none());
        assert!(CodeChallenge::s256(&"A".repeat(43)).is_some());
    }

    #[test]
    fn request_parameters() {
        let from = CodeChallenge::from_request;
        assert_eq!(from(None, None, false), Ok(None));
        assert_eq!(
            from(None, None, true),
            Err(RequestError::CodeChallengeRequired)
        );
        assert!(matches!(
            from(Some(CHALLENGE), Some("S256"), true),
            Ok(Some(_))
        ));
        for method in [
            None,
            Some("plain"),
            Some("s256"),
            Some("S512"),
            Some("S256 "),
        ] {
            assert_eq!(
                from(Some(CHALLENGE), method, false),
                Err(RequestError::UnsupportedCodeChallengeMethod),
                "{method:?}"
            );
        }
        assert_eq!(
            from(Some("short"), Some("S256"), false),
            Err(RequestError::MalformedCodeChallenge)
        );
        for method in ["S256", "plain"] {
            assert_eq!(
                from(None, Some(method), false),
                Err(RequestError::MissingParameter("code_challenge"))
            );
        }
    }

    #[test]
    fn verifier_checks() {
        let challenge = CodeChallenge::s256(CHALLENGE).unwrap();
        assert_eq!(check_verifier(None, None), Ok(()));
        assert_eq!(check_verifier(Some(&challenge), Some(VERIFIER)), Ok(()));
        assert_eq!(
            check_verifier(Some(&challenge), None),
            Err(CodeVerifierError::Missing)
        );
        assert_eq!(
            check_verifier(Some(&challenge), Some(&"a".repeat(43))),
            Err(CodeVerifierError::Mismatch)
        );
        assert_eq!(
            check_verifier(Some(&challenge), Some("short")),
            Err(CodeVerifierError::Mismatch)
        );
        assert_eq!(
            check_verifier(None, Some(VERIFIER)),
            Err(CodeVerifierError::Unexpected)
        );
    }

    #[test]
    fn stored_form() {
        let challenge = CodeChallenge::s256(CHALLENGE).unwrap();
        let json = serde_json::to_value(&challenge).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"method": "S256", "value": CHALLENGE})
        );
        let back: CodeChallenge = serde_json::from_value(json).unwrap();
        assert_eq!(back, challenge);
        for bad in [
            serde_json::json!({"method": "plain", "value": CHALLENGE}),
            serde_json::json!({"method": "S256", "value": "short"}),
            serde_json::json!({"value": CHALLENGE}),
            serde_json::json!(CHALLENGE),
        ] {
            assert!(
                serde_json::from_value::<CodeChallenge>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
