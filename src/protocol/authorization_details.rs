//! Rich Authorization Requests (RFC 9396): the `authorization_details` a
//! device asks for, the types a host accepts, and the rule that a person's
//! grant stays within the request.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

/// The most details one request may carry unless the host says otherwise
/// ([`AuthorizationDetailTypes::max_details`]).
const DEFAULT_MAX_DETAILS: usize = 8;

/// One authorization detail (RFC 9396 §2): a JSON object whose `type` member
/// is a string. Its other members are the type's own; the host's
/// [`AuthorizationDetailType`] says what they may be.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "Map<String, Value>", into = "Map<String, Value>")]
pub struct AuthorizationDetail(Map<String, Value>);

impl AuthorizationDetail {
    /// A detail from a JSON object, which must have a string `type`.
    pub fn from_object(object: Map<String, Value>) -> Result<Self, AuthorizationDetailsError> {
        match object.get("type") {
            Some(Value::String(_)) => Ok(Self(object)),
            _ => Err(AuthorizationDetailsError::Malformed),
        }
    }

    /// The `type` member.
    pub fn type_name(&self) -> &str {
        match self.0.get("type") {
            Some(Value::String(t)) => t,
            // Every constructor checks the member.
            _ => "",
        }
    }

    /// A member by name (`type` included).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// Every member, `type` included.
    pub fn members(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The member `name` read as an array of strings: `None` when it is
    /// absent, not an array, or has a member that is not a string.
    pub fn strings(&self, name: &str) -> Option<Vec<&str>> {
        self.0
            .get(name)?
            .as_array()?
            .iter()
            .map(Value::as_str)
            .collect()
    }

    /// The same detail with `name` set to `value` (a narrower `actions` list,
    /// for instance). Setting `type` to anything but a string is refused.
    pub fn with(
        mut self,
        name: impl Into<String>,
        value: Value,
    ) -> Result<Self, AuthorizationDetailsError> {
        self.0.insert(name.into(), value);
        Self::from_object(self.0)
    }
}

impl TryFrom<Map<String, Value>> for AuthorizationDetail {
    type Error = AuthorizationDetailsError;

    fn try_from(object: Map<String, Value>) -> Result<Self, Self::Error> {
        Self::from_object(object)
    }
}

impl From<AuthorizationDetail> for Map<String, Value> {
    fn from(detail: AuthorizationDetail) -> Self {
        detail.0
    }
}

/// The `authorization_details` of a request, an approval or a token response
/// (RFC 9396 §2): a JSON array of [`AuthorizationDetail`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct AuthorizationDetails(Vec<AuthorizationDetail>);

impl AuthorizationDetails {
    /// The details, in order.
    pub fn new(details: Vec<AuthorizationDetail>) -> Self {
        Self(details)
    }

    /// Reads the JSON text of an `authorization_details` parameter: an array
    /// of objects, each with a string `type`. Checks the shape only; the
    /// types' own rules are the host's ([`AuthorizationDetailTypes::parse`]).
    pub fn from_json(text: &str) -> Result<Self, AuthorizationDetailsError> {
        serde_json::from_str(text).map_err(|_| AuthorizationDetailsError::Malformed)
    }

    /// The JSON text, as sent in a form parameter.
    pub fn to_json(&self) -> String {
        // A map of strings to JSON values always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The details, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, AuthorizationDetail> {
        self.0.iter()
    }

    /// How many details there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a AuthorizationDetails {
    type Item = &'a AuthorizationDetail;
    type IntoIter = std::slice::Iter<'a, AuthorizationDetail>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<AuthorizationDetail> for AuthorizationDetails {
    fn from_iter<I: IntoIterator<Item = AuthorizationDetail>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// Why `authorization_details` were refused: sent as
/// `invalid_authorization_details` (RFC 9396 §5). The texts never echo what
/// the client sent.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationDetailsError {
    /// Not a JSON array of objects that each have a string `type`, or an
    /// empty array.
    #[error("`authorization_details` is not a JSON array of objects with a string `type`")]
    Malformed,
    /// More details than the host accepts in one request.
    #[error("`authorization_details` has more than {0} entries")]
    TooMany(usize),
    /// A detail's `type` is not one the host registered.
    #[error("`authorization_details` has a type this server does not accept")]
    UnknownType,
    /// The type's validator refused a detail.
    #[error("`authorization_details`: {0}")]
    Refused(DetailRefused),
}

/// A validator's reason for refusing a detail, in the host's words, sent as
/// the `error_description`: a fixed text, never a value the client sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DetailRefused(&'static str);

impl DetailRefused {
    /// A refusal with a fixed reason.
    pub const fn new(reason: &'static str) -> Self {
        Self(reason)
    }

    /// The reason.
    pub fn reason(&self) -> &'static str {
        self.0
    }
}

/// One authorization details type the host accepts (RFC 9396 §2): the rules
/// for its members, and when a granted detail is within a requested one.
///
/// # Contract
///
/// Both methods are pure, quick and must not block: they run inside the
/// device authorization and token endpoints and inside the approval's
/// compare-and-set loop, possibly more than once for one request.
///
/// - [`validate`](Self::validate) sees one detail whose `type` is the name this
///   type was registered under. `Ok` accepts it; `Err` refuses the whole
///   request with `invalid_authorization_details`, the reason as its
///   description. It checks requested details at the device authorization
///   endpoint and granted ones at approval.
/// - [`is_within`](Self::is_within) sees a granted and a requested detail of
///   this type, both validated, and answers whether the grant asks for
///   nothing the request did not. It must never answer `true` for a grant
///   wider than the request: the crate relies on it to refuse such approvals,
///   and tokens for records a store hands back widened. The default is
///   [`default_is_within`].
pub trait AuthorizationDetailType: Send + Sync {
    /// Checks one detail of this type.
    fn validate(&self, detail: &AuthorizationDetail) -> Result<(), DetailRefused>;

    /// Whether `granted` is within `requested`.
    fn is_within(&self, granted: &AuthorizationDetail, requested: &AuthorizationDetail) -> bool {
        default_is_within(granted, requested)
    }
}

/// The default "granted ⊆ requested" rule for one detail: the same `type` and
/// the same member names; every member that is an array in both holds only
/// values the requested array holds (a narrower `actions` or `locations`);
/// every other member is equal.
pub fn default_is_within(granted: &AuthorizationDetail, requested: &AuthorizationDetail) -> bool {
    // Same names both ways: a member left out could read as "unrestricted".
    granted.members().len() == requested.members().len()
        && granted
            .members()
            .iter()
            .all(|(name, g)| match (g, requested.get(name)) {
                (Value::Array(g), Some(Value::Array(r))) => g.iter().all(|v| r.contains(v)),
                (g, Some(r)) => g == r,
                (_, None) => false,
            })
}

/// The authorization details types a host accepts, each with its
/// [`AuthorizationDetailType`], and how many details one request may carry.
/// Set on [`DeviceGrantBuilder::authorization_detail_types`](crate::DeviceGrantBuilder::authorization_detail_types);
/// empty by default, and then every request with `authorization_details` is
/// refused. `Debug` lists the names.
#[derive(Clone)]
pub struct AuthorizationDetailTypes {
    types: BTreeMap<String, Arc<dyn AuthorizationDetailType>>,
    max_details: usize,
}

impl Default for AuthorizationDetailTypes {
    fn default() -> Self {
        Self {
            types: BTreeMap::new(),
            max_details: DEFAULT_MAX_DETAILS,
        }
    }
}

impl std::fmt::Debug for AuthorizationDetailTypes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationDetailTypes")
            .field("types", &self.types.keys().collect::<Vec<_>>())
            .field("max_details", &self.max_details)
            .finish()
    }
}

impl AuthorizationDetailTypes {
    /// No type: `authorization_details` are refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts details whose `type` is `name`, checked by `rules`. Registering
    /// a name again replaces its rules.
    pub fn register(
        mut self,
        name: impl Into<String>,
        rules: impl AuthorizationDetailType + 'static,
    ) -> Self {
        self.types.insert(name.into(), Arc::new(rules));
        self
    }

    /// The most details one request may carry. Default 8. The JSON text is
    /// bounded too, by [`Limits::max_value_bytes`](crate::Limits::max_value_bytes).
    pub fn max_details(mut self, max: usize) -> Self {
        self.max_details = max;
        self
    }

    /// The registered type names, in order: the metadata's
    /// `authorization_details_types_supported`.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    /// Whether no type is registered.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// Reads and checks the `authorization_details` parameter of a request.
    pub fn parse(&self, text: &str) -> Result<AuthorizationDetails, AuthorizationDetailsError> {
        let details = AuthorizationDetails::from_json(text)?;
        self.check(&details)?;
        Ok(details)
    }

    /// Checks details: not empty, not too many, each of a registered type and
    /// accepted by its validator.
    pub fn check(&self, details: &AuthorizationDetails) -> Result<(), AuthorizationDetailsError> {
        if details.is_empty() {
            return Err(AuthorizationDetailsError::Malformed);
        }
        if details.len() > self.max_details {
            return Err(AuthorizationDetailsError::TooMany(self.max_details));
        }
        for detail in details {
            self.rules(detail)?
                .validate(detail)
                .map_err(AuthorizationDetailsError::Refused)?;
        }
        Ok(())
    }

    /// Whether every granted detail is within some requested detail of its
    /// type, by that type's rule. No grant is within anything; a grant is
    /// never within an absent request, nor is a detail of a type no longer
    /// registered.
    pub fn is_within(
        &self,
        granted: Option<&AuthorizationDetails>,
        requested: Option<&AuthorizationDetails>,
    ) -> bool {
        let Some(granted) = granted else {
            return true;
        };
        let requested = requested.map(|r| r.0.as_slice()).unwrap_or_default();
        granted.iter().all(|g| {
            self.types.get(g.type_name()).is_some_and(|rules| {
                requested
                    .iter()
                    .filter(|r| r.type_name() == g.type_name())
                    .any(|r| rules.is_within(g, r))
            })
        })
    }

    fn rules(
        &self,
        detail: &AuthorizationDetail,
    ) -> Result<&Arc<dyn AuthorizationDetailType>, AuthorizationDetailsError> {
        self.types
            .get(detail.type_name())
            .ok_or(AuthorizationDetailsError::UnknownType)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn detail(value: Value) -> AuthorizationDetail {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_detail_needs_a_string_type() {
        assert!(serde_json::from_value::<AuthorizationDetail>(json!({"type": 1})).is_err());
        assert!(serde_json::from_value::<AuthorizationDetail>(json!({"actions": []})).is_err());
        assert!(serde_json::from_value::<AuthorizationDetail>(json!(["type"])).is_err());
        assert_eq!(detail(json!({"type": "t"})).type_name(), "t");
        assert!(detail(json!({"type": "t"})).with("type", json!(2)).is_err());
    }

    #[test]
    fn the_default_rule_narrows_arrays_and_keeps_the_rest() {
        let requested = detail(json!({"type": "t", "actions": ["a", "b"], "identifier": "x"}));
        let narrower = detail(json!({"type": "t", "actions": ["b"], "identifier": "x"}));
        assert!(default_is_within(&narrower, &requested));
        assert!(default_is_within(&requested, &requested));
        for wider in [
            json!({"type": "t", "actions": ["a", "c"], "identifier": "x"}),
            json!({"type": "t", "actions": ["a"], "identifier": "y"}),
            json!({"type": "u", "actions": ["a"], "identifier": "x"}),
            json!({"type": "t", "actions": ["a"], "identifier": "x", "more": 1}),
            // Leaving a member out could mean "any".
            json!({"type": "t", "actions": ["a"]}),
        ] {
            assert!(
                !default_is_within(&detail(wider.clone()), &requested),
                "{wider}"
            );
        }
    }
}
