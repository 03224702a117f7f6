//! The one authorization details type (RFC 9396) this server accepts:
//! `media_library`, what a device may do with the person's media.

use device_grant::{
    AuthorizationDetail, AuthorizationDetailType, AuthorizationDetailTypes, AuthorizationDetails,
    DetailRefused,
};

/// The type's name, as devices send it in `type`.
pub(crate) const MEDIA_LIBRARY: &str = "media_library";

/// The actions a `media_library` detail may ask for, with the words the
/// consent page uses for them.
pub(crate) const ACTIONS: &[(&str, &str)] = &[
    ("list", "see the titles in your library"),
    ("play", "play your media"),
    ("download", "download copies of your media"),
];

/// The members a `media_library` detail may have besides `type`.
const MEMBERS: &[&str] = &["actions", "locations", "identifier"];

/// `actions` is a non-empty list of known actions without repeats;
/// `locations` is a list of strings and `identifier` a string, both optional.
/// Narrowing uses the crate's default rule: fewer actions or locations, the
/// same identifier.
#[derive(Debug)]
struct MediaLibrary;

impl AuthorizationDetailType for MediaLibrary {
    fn validate(&self, detail: &AuthorizationDetail) -> Result<(), DetailRefused> {
        if detail
            .members()
            .keys()
            .any(|k| k != "type" && !MEMBERS.contains(&k.as_str()))
        {
            return Err(DetailRefused::new("media_library has an unknown member"));
        }
        let actions = detail
            .strings("actions")
            .ok_or(DetailRefused::new("media_library needs a list of actions"))?;
        if actions.is_empty() {
            return Err(DetailRefused::new(
                "media_library needs at least one action",
            ));
        }
        for (i, action) in actions.iter().enumerate() {
            if !ACTIONS.iter().any(|(a, _)| a == action) {
                return Err(DetailRefused::new(
                    "media_library actions are list, play and download",
                ));
            }
            if actions[..i].contains(action) {
                return Err(DetailRefused::new("media_library repeats an action"));
            }
        }
        if detail.get("locations").is_some() && detail.strings("locations").is_none() {
            return Err(DetailRefused::new(
                "media_library locations must be strings",
            ));
        }
        if detail.get("identifier").is_some_and(|i| !i.is_string()) {
            return Err(DetailRefused::new(
                "media_library identifier must be a string",
            ));
        }
        Ok(())
    }
}

/// The types this server registers with the grant.
pub(crate) fn detail_types() -> AuthorizationDetailTypes {
    AuthorizationDetailTypes::new().register(MEDIA_LIBRARY, MediaLibrary)
}

/// A detail in plain words for the consent page and the headless API: what
/// it asks for, one line per action.
pub(crate) fn describe(detail: &AuthorizationDetail) -> Vec<String> {
    if detail.type_name() != MEDIA_LIBRARY {
        return vec![format!("access of type {}", detail.type_name())];
    }
    let place = match (
        detail.get("identifier").and_then(|i| i.as_str()),
        detail.strings("locations"),
    ) {
        (Some(id), _) => format!(" (library {id})"),
        (None, Some(l)) if !l.is_empty() => format!(" (at {})", l.join(", ")),
        _ => String::new(),
    };
    detail
        .strings("actions")
        .unwrap_or_default()
        .iter()
        .filter_map(|a| ACTIONS.iter().find(|(name, _)| name == a))
        .map(|(_, words)| format!("{words}{place}"))
        .collect()
}

/// The actions of a detail that the consent page offers to narrow, as
/// `(action, words)`: those it asks for, in the server's order. Empty for a
/// type other than `media_library`.
pub(crate) fn actions_of(detail: &AuthorizationDetail) -> Vec<(&'static str, &'static str)> {
    if detail.type_name() != MEDIA_LIBRARY {
        return Vec::new();
    }
    let asked = detail.strings("actions").unwrap_or_default();
    ACTIONS
        .iter()
        .filter(|(a, _)| asked.contains(a))
        .copied()
        .collect()
}

/// The details the person grants: each `media_library` detail keeps the
/// actions `ticked(index, action)` says were left ticked, and is left out when
/// none are; other details are granted as requested.
pub(crate) fn narrowed(
    requested: &AuthorizationDetails,
    ticked: impl Fn(usize, &str) -> bool,
) -> AuthorizationDetails {
    requested
        .iter()
        .enumerate()
        .filter_map(|(i, detail)| {
            if detail.type_name() != MEDIA_LIBRARY {
                return Some(detail.clone());
            }
            let kept: Vec<serde_json::Value> = actions_of(detail)
                .into_iter()
                .filter(|(a, _)| ticked(i, a))
                .map(|(a, _)| a.into())
                .collect();
            if kept.is_empty() {
                return None;
            }
            detail.clone().with("actions", kept.into()).ok()
        })
        .collect()
}
