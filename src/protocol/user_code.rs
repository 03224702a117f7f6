//! User codes (RFC 8628 §3.2, §5.1, §6.1): generation, display, normalization of
//! what a person types, and the keyed hash under which they are stored.

use hmac::{Hmac, Mac as _};
use rand::Rng as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

/// The 20 consonants RFC 8628 §6.1 suggests: no vowels (no words), no look-alikes.
pub(crate) const CONSONANTS: &str = "BCDFGHJKLMNPQRSTVWXZ";

/// The least entropy, in bits, that a [`UserCodePolicy`] may have. Nine decimal
/// digits (29.9 bits) pass; eight (26.6 bits) do not. See the README's arithmetic.
pub(crate) const MIN_ENTROPY_BITS: f64 = 29.0;

/// The longest input [`UserCodePolicy::normalize`] reads, in characters.
pub(crate) const MAX_INPUT_CHARS: usize = 64;

/// How user codes are drawn and shown: alphabet, length and grouping.
#[derive(Clone, PartialEq, Eq)]
pub struct UserCodePolicy {
    alphabet: Vec<u8>,
    // Index by ASCII byte: the character's position in the alphabet plus one,
    // or 0 when it is not in the alphabet.
    position: [u8; 128],
    length: usize,
    group: usize,
    check: bool,
}

impl std::fmt::Debug for UserCodePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCodePolicy")
            .field("alphabet", &String::from_utf8_lossy(&self.alphabet))
            .field("length", &self.length)
            .field("group", &self.group)
            .field("check_character", &self.check)
            .field("entropy_bits", &self.entropy_bits())
            .finish()
    }
}

impl Default for UserCodePolicy {
    fn default() -> Self {
        Self::consonants()
    }
}

/// Why a user-code policy was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// The alphabet has a character that is not an ASCII letter or digit.
    #[error("the alphabet may hold only ASCII letters and digits")]
    BadCharacter,
    /// The alphabet repeats a character (case-insensitively).
    #[error("the alphabet repeats a character")]
    RepeatedCharacter,
    /// The policy has less than 29 bits of entropy.
    #[error(
        "a user code of this policy has {bits:.1} bits of entropy, below the floor of {floor} bits"
    )]
    TooLittleEntropy {
        /// The policy's entropy.
        bits: f64,
        /// The floor: 29 bits.
        floor: f64,
    },
    /// The code is longer than a person can be asked to type.
    #[error("a user code may have at most 32 characters")]
    TooLong,
}

/// Why typed input is not a user code of the policy. Refused before any storage
/// look-up, and never counted against the person's attempt budget.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UserCodeError {
    /// The input has a character no user code contains.
    #[error("the code contains a character that cannot occur in a code")]
    InvalidCharacter,
    /// The input has too few or too many characters.
    #[error("the code has the wrong number of characters")]
    WrongLength,
    /// The check character does not match: a typo, not a wrong code.
    #[error("the code has a typo: please check it against the device's screen")]
    Typo,
}

impl UserCodePolicy {
    /// The 20 consonants RFC 8628 §6.1 suggests: no vowels (no words), no
    /// look-alikes. The alphabet of [`UserCodePolicy::consonants`].
    pub const CONSONANTS: &'static str = CONSONANTS;

    /// The default: 8 characters from [`Self::CONSONANTS`], shown `XXXX-XXXX` (34.6 bits).
    pub fn consonants() -> Self {
        Self::new(CONSONANTS, 8, 4).expect("the default policy is valid")
    }

    /// Nine decimal digits shown `XXX-XXX-XXX` (29.9 bits), for devices with a numeric keypad.
    pub fn numeric() -> Self {
        Self::new("0123456789", 9, 3).expect("the numeric policy is valid")
    }

    /// A policy of the given alphabet (ASCII letters and digits, matched
    /// case-insensitively), length, and group size for display (0 for none).
    pub fn new(alphabet: &str, length: usize, group: usize) -> Result<Self, PolicyError> {
        let mut position = [0u8; 128];
        let mut chars = Vec::with_capacity(alphabet.len());
        for c in alphabet.chars() {
            if !c.is_ascii_alphanumeric() {
                return Err(PolicyError::BadCharacter);
            }
            let b = c.to_ascii_uppercase() as u8;
            if position[b as usize] != 0 {
                return Err(PolicyError::RepeatedCharacter);
            }
            chars.push(b);
            // At most 36 distinct ASCII letters and digits: fits a u8.
            position[b as usize] = chars.len() as u8;
        }
        if length > 32 {
            return Err(PolicyError::TooLong);
        }
        let policy = Self {
            alphabet: chars,
            position,
            length,
            group,
            check: false,
        };
        let bits = policy.entropy_bits();
        if bits < MIN_ENTROPY_BITS || policy.alphabet.len() < 2 {
            return Err(PolicyError::TooLittleEntropy {
                bits,
                floor: MIN_ENTROPY_BITS,
            });
        }
        Ok(policy)
    }

    /// The same policy with a check character appended to every code (Luhn mod N
    /// over the alphabet): a mistyped character, and most swaps of two adjacent
    /// characters, are told apart from a wrong code before any look-up, and cost
    /// the person no attempt. The check character adds one character to type and
    /// no entropy.
    pub fn with_check_character(mut self) -> Self {
        self.check = true;
        self
    }

    /// The entropy of one code in bits: `length × log2(alphabet size)` (a check
    /// character adds none).
    pub fn entropy_bits(&self) -> f64 {
        self.length as f64 * (self.alphabet.len() as f64).log2()
    }

    /// How many distinct codes the policy can draw.
    pub fn code_space(&self) -> f64 {
        (self.alphabet.len() as f64).powi(self.length as i32)
    }

    /// The number of characters a person types, separators excluded (with the
    /// check character, if any).
    pub fn length(&self) -> usize {
        self.length + usize::from(self.check)
    }

    /// Draws a code uniformly from the policy's space with `rand`'s thread-local
    /// CSPRNG. `random_range` rejects out-of-range samples, so there is no modulo bias.
    pub fn generate(&self) -> UserCode {
        let mut rng = rand::rng();
        let mut canonical: String = (0..self.length)
            .map(|_| self.alphabet[rng.random_range(0..self.alphabet.len())] as char)
            .collect();
        if self.check {
            let check = self.luhn_check(canonical.as_bytes());
            canonical.push(self.alphabet[check] as char);
        }
        self.make(canonical)
    }

    /// Reads what a person typed: case-insensitive; spaces, dashes and other
    /// punctuation ignored; full-width forms (as typed with CJK input methods) folded
    /// to ASCII. Anything else that is not in the alphabet is refused.
    pub fn normalize(&self, input: &str) -> Result<UserCode, UserCodeError> {
        let mut canonical = String::with_capacity(self.length);
        for (i, c) in input.chars().enumerate() {
            if i >= MAX_INPUT_CHARS {
                return Err(UserCodeError::WrongLength);
            }
            let c = fold_full_width(c);
            if c.is_ascii_punctuation() || c.is_whitespace() || is_dash(c) {
                continue;
            }
            if !c.is_ascii() {
                return Err(UserCodeError::InvalidCharacter);
            }
            let b = c.to_ascii_uppercase() as u8;
            if self.position[b as usize] == 0 {
                return Err(UserCodeError::InvalidCharacter);
            }
            if canonical.len() == self.length() {
                return Err(UserCodeError::WrongLength);
            }
            canonical.push(b as char);
        }
        if canonical.len() != self.length() {
            return Err(UserCodeError::WrongLength);
        }
        if self.check {
            let (payload, check) = canonical.as_bytes().split_at(self.length);
            if self.alphabet[self.luhn_check(payload)] != check[0] {
                return Err(UserCodeError::Typo);
            }
        }
        Ok(self.make(canonical))
    }

    /// The Luhn mod N check character's index for `payload` (alphabet bytes).
    fn luhn_check(&self, payload: &[u8]) -> usize {
        let n = self.alphabet.len();
        let mut sum = 0;
        for (i, &b) in payload.iter().rev().enumerate() {
            let value = usize::from(self.position[b as usize]) - 1;
            let addend = if i % 2 == 0 { 2 * value } else { value };
            sum += addend / n + addend % n;
        }
        (n - sum % n) % n
    }

    fn make(&self, canonical: String) -> UserCode {
        let display = if self.group == 0 || self.group >= canonical.len() {
            canonical.clone()
        } else {
            let mut s = String::with_capacity(canonical.len() + canonical.len() / self.group);
            for (i, c) in canonical.chars().enumerate() {
                if i > 0 && i % self.group == 0 {
                    s.push('-');
                }
                s.push(c);
            }
            s
        };
        UserCode { canonical, display }
    }
}

fn fold_full_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

fn is_dash(c: char) -> bool {
    matches!(
        c,
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{30FC}' | '\u{FE58}' | '\u{FE63}'
    )
}

/// A user code: the short code a person types on another device.
///
/// `Debug` redacts it. [`UserCode::display`] is the form shown to people
/// (`WDJB-MJHT`), [`UserCode::canonical`] the normalized form that is hashed.
#[derive(Clone, PartialEq, Eq)]
pub struct UserCode {
    canonical: String,
    display: String,
}

impl UserCode {
    /// The code as shown to a person, with group separators.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The normalized code: upper-case alphabet characters only.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }
}

impl std::fmt::Debug for UserCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserCode([redacted])")
    }
}

/// The host's secret key for hashing user codes (HMAC-SHA-256).
///
/// A user code has only ~35 bits of entropy: a plain hash of it would fall to an
/// offline brute force in seconds. Keyed with a secret kept outside the store, a
/// leaked store reveals nothing. `Debug` redacts it.
#[derive(Clone)]
pub struct UserCodeKey(Hmac<Sha256>);

/// The least length of a [`UserCodeKey`] in bytes.
pub(crate) const MIN_KEY_BYTES: usize = 32;

impl UserCodeKey {
    /// A key from secret bytes; refuses fewer than 32 (256 bits).
    pub fn new(secret: &[u8]) -> Result<Self, KeyTooShort> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(KeyTooShort(secret.len()));
        }
        Hmac::new_from_slice(secret)
            .map(Self)
            .map_err(|_| KeyTooShort(secret.len()))
    }

    /// A random key, for a single-instance server (hashes do not survive a restart
    /// with another key: pending requests are lost, which a memory store loses anyway).
    pub fn generate() -> Self {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
        Self(Hmac::new_from_slice(&secret).expect("HMAC takes any key length"))
    }

    /// A fresh MAC under this key, for the crate's other keyed digests (each
    /// domain-separated by a prefix of its own).
    pub(crate) fn mac(&self) -> Hmac<Sha256> {
        self.0.clone()
    }

    /// A digest that tells keys apart without revealing them: the MAC of a
    /// fixed, domain-separated message.
    pub(crate) fn fingerprint(&self) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(b"device-grant:key-fingerprint");
        mac.finalize().into_bytes().into()
    }

    /// The keyed hash of a user code: the only form in which it is stored.
    pub fn hash(&self, code: &UserCode) -> UserCodeHash {
        let mut mac = self.0.clone();
        mac.update(code.canonical.as_bytes());
        UserCodeHash(mac.finalize().into_bytes().into())
    }
}

impl std::fmt::Debug for UserCodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserCodeKey([redacted])")
    }
}

/// A secret key ([`UserCodeKey`], [`DpopNonces`](crate::DpopNonces)) shorter
/// than 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a secret key needs at least 32 bytes, got {0}")]
pub struct KeyTooShort(pub usize);

/// The keyed hash of a [`UserCode`]: the key of the user-code index.
#[derive(Clone, Copy, Eq)]
pub struct UserCodeHash(pub(crate) [u8; 32]);

impl PartialEq for UserCodeHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::hash::Hash for UserCodeHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from_le_bytes(
            self.0[..8].try_into().unwrap_or_default(),
        ));
    }
}

impl std::fmt::Debug for UserCodeHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UserCodeHash({})", crate::protocol::hex(&self.0[..6]))
    }
}

crate::protocol::serde_bytes32!(UserCodeHash);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_shape_and_entropy() {
        let p = UserCodePolicy::default();
        let code = p.generate();
        assert_eq!(code.canonical().len(), 8);
        assert_eq!(code.display().len(), 9);
        assert_eq!(&code.display()[4..5], "-");
        assert!(code.canonical().chars().all(|c| CONSONANTS.contains(c)));
        assert!((p.entropy_bits() - 34.57).abs() < 0.01);
        let n = UserCodePolicy::numeric().generate();
        assert_eq!(n.display().len(), 11);
        assert!(n.canonical().chars().all(|c| c.is_ascii_digit()));
    }

    #[test]
    fn policy_floor_and_validation() {
        assert!(matches!(
            UserCodePolicy::new("0123456789", 8, 4),
            Err(PolicyError::TooLittleEntropy { .. })
        ));
        assert!(UserCodePolicy::new("0123456789", 9, 3).is_ok());
        assert_eq!(
            UserCodePolicy::new("ABCa", 20, 4),
            Err(PolicyError::RepeatedCharacter)
        );
        assert_eq!(
            UserCodePolicy::new("AB-", 20, 4),
            Err(PolicyError::BadCharacter)
        );
        assert_eq!(UserCodePolicy::new("AB", 40, 4), Err(PolicyError::TooLong));
    }

    #[test]
    fn normalization_accepts_what_people_type() {
        let p = UserCodePolicy::default();
        for input in [
            "WDJB-MJHT",
            "wdjbmjht",
            " wdjb mjht ",
            "W.D.J.B_M/J/H\tT",
            "WDJB\u{2014}MJHT",
            "ＷＤＪＢ－ＭＪＨＴ",
        ] {
            let c = p.normalize(input).unwrap();
            assert_eq!(c.canonical(), "WDJBMJHT", "{input:?}");
            assert_eq!(c.display(), "WDJB-MJHT");
        }
    }

    #[test]
    fn normalization_refuses_impossible_input() {
        let p = UserCodePolicy::default();
        assert_eq!(
            p.normalize("WDJB-MJHA"),
            Err(UserCodeError::InvalidCharacter)
        );
        assert_eq!(p.normalize("WDJB-MJH"), Err(UserCodeError::WrongLength));
        assert_eq!(p.normalize("WDJB-MJHTT"), Err(UserCodeError::WrongLength));
        assert_eq!(p.normalize(""), Err(UserCodeError::WrongLength));
        assert_eq!(
            p.normalize("WDJBMJHé"),
            Err(UserCodeError::InvalidCharacter)
        );
        assert_eq!(
            p.normalize(&"-".repeat(10_000)),
            Err(UserCodeError::WrongLength)
        );
    }

    #[test]
    fn keyed_hash_depends_on_key_and_code() {
        assert_eq!(UserCodeKey::new(&[1; 31]).unwrap_err(), KeyTooShort(31));
        let k1 = UserCodeKey::new(&[1; 32]).unwrap();
        let k2 = UserCodeKey::new(&[2; 32]).unwrap();
        let p = UserCodePolicy::default();
        let a = p.normalize("WDJB-MJHT").unwrap();
        let b = p.normalize("wdjbmjht").unwrap();
        let c = p.normalize("WDJB-MJHV").unwrap();
        assert_eq!(k1.hash(&a), k1.hash(&b));
        assert_ne!(k1.hash(&a), k1.hash(&c));
        assert_ne!(k1.hash(&a), k2.hash(&a));
        assert!(!format!("{a:?}{k1:?}").contains("WDJB"));
    }

    #[test]
    fn check_character_catches_typos() {
        let p = UserCodePolicy::default().with_check_character();
        assert_eq!(p.length(), 9);
        assert!((p.entropy_bits() - 34.57).abs() < 0.01);
        let alphabet: Vec<char> = CONSONANTS.chars().collect();
        for _ in 0..200 {
            let code = p.generate();
            assert_eq!(code.canonical().len(), 9);
            assert_eq!(p.normalize(code.display()).unwrap(), code);
            let chars: Vec<char> = code.canonical().chars().collect();
            // Every single substitution is caught.
            for i in 0..9 {
                for &c in &alphabet {
                    if c == chars[i] {
                        continue;
                    }
                    let mut typo = chars.clone();
                    typo[i] = c;
                    let typo: String = typo.into_iter().collect();
                    assert_eq!(p.normalize(&typo), Err(UserCodeError::Typo), "{typo}");
                }
            }
        }
        // Without the check character the same input is a (wrong) code, not a typo.
        assert!(UserCodePolicy::default().normalize("BCDF-GHJK").is_ok());
    }

    #[test]
    fn generation_is_roughly_uniform() {
        // 20 symbols × 8 positions × 2000 codes: each symbol expected 800 times.
        let p = UserCodePolicy::default();
        let mut counts = std::collections::HashMap::new();
        for _ in 0..2000 {
            for c in p.generate().canonical().chars() {
                *counts.entry(c).or_insert(0u32) += 1;
            }
        }
        assert_eq!(counts.len(), 20);
        assert!(
            counts.values().all(|&n| (650..950).contains(&n)),
            "{counts:?}"
        );
    }
}
