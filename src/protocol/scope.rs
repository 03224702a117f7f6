//! Scopes (RFC 6749 §3.3): validated tokens and ordered, duplicate-free sets of them.

use std::collections::BTreeSet;
use std::sync::Arc;

/// One scope token: `1*( %x21 / %x23-5B / %x5D-7E )` (RFC 6749 §3.3).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct Scope(String);

impl Scope {
    /// Validates a scope token.
    pub fn new(token: impl Into<String>) -> Result<Self, MalformedScope> {
        let token = token.into();
        let valid = !token.is_empty()
            && token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if valid {
            Ok(Self(token))
        } else {
            Err(MalformedScope)
        }
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Scope::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A string that is not a valid scope token or scope list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed scope")]
pub struct MalformedScope;

/// A set of scopes; on the wire a space-separated list (RFC 6749 §3.3).
///
/// Immutable and shared: a clone is a reference-count increment, so that the
/// many requests made with one client's scopes hold one copy of them, not one
/// each (a set of two scopes on the heap is larger than the rest of a record).
#[derive(Clone, Default, PartialEq, Eq, Hash, Debug)]
pub struct ScopeSet(Arc<BTreeSet<Scope>>);

impl ScopeSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a space-separated list. Repeated spaces are tolerated; repeated
    /// scopes are merged.
    pub fn parse(list: &str) -> Result<Self, MalformedScope> {
        list.split(' ')
            .filter(|s| !s.is_empty())
            .map(Scope::new)
            .collect::<Result<BTreeSet<_>, _>>()
            .map(|set| Self(Arc::new(set)))
    }

    /// Whether every scope of `self` is in `other`.
    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// Whether the set holds `scope`.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s.as_str() == scope)
    }

    /// The number of scopes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }
}

impl std::fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(s.as_str())?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ScopeSet {
    type Err = MalformedScope;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(Arc::new(iter.into_iter().collect()))
    }
}

impl serde::Serialize for ScopeSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ScopeSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_validates_and_orders() {
        let s = ScopeSet::parse("profile  openid profile").unwrap();
        assert_eq!(s.to_string(), "openid profile");
        assert_eq!(s.len(), 2);
        assert!(ScopeSet::parse("").unwrap().is_empty());
        assert_eq!(ScopeSet::parse("a\"b"), Err(MalformedScope));
        assert_eq!(ScopeSet::parse("a\\b"), Err(MalformedScope));
        assert_eq!(ScopeSet::parse("a\tb"), Err(MalformedScope));
        assert_eq!(ScopeSet::parse("é"), Err(MalformedScope));
        assert!(ScopeSet::parse("openid").unwrap().is_subset(&s));
        assert!(!s.is_subset(&ScopeSet::parse("openid").unwrap()));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"openid profile\"");
        assert_eq!(serde_json::from_str::<ScopeSet>(&json).unwrap(), s);
    }
}
