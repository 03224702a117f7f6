//! ID tokens: JWTs signed with an Ed25519 key (`alg` `EdDSA`, RFC 8037) drawn at
//! start, whose public half is published at `/jwks.json`. Written out by hand
//! because a JWS is three base64url parts and one signature.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer as _, SigningKey};
use sha2::{Digest as _, Sha256};

/// The signing key and its key id.
pub(crate) struct Signer {
    key: SigningKey,
    kid: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer(kid {}, [redacted])", self.kid)
    }
}

impl Signer {
    /// A new random key. Tokens signed before a restart stop verifying: fine for
    /// a demo, where a real server loads its keys from storage and rotates them.
    pub(crate) fn generate() -> Self {
        let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        // The kid is a digest of the public key, so it changes with the key.
        let digest = Sha256::digest(key.verifying_key().as_bytes());
        let kid = URL_SAFE_NO_PAD.encode(&digest[..12]);
        Self { key, kid }
    }

    /// A compact JWS of `claims`.
    pub(crate) fn sign(&self, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({ "alg": "EdDSA", "typ": "JWT", "kid": self.kid });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.key.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    /// The JSON Web Key Set with the public key (RFC 7517, RFC 8037).
    pub(crate) fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "use": "sig",
                "alg": "EdDSA",
                "kid": self.kid,
                "x": URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes()),
            }]
        })
    }
}
