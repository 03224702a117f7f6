//! The stored record format is stable across 1.x: the fixtures under
//! `tests/fixtures/` were written by format 1 and must read, exactly, in every
//! later 1.x; what this release writes must be readable by every earlier 1.x.
//!
//! The fixtures are never edited: a change that breaks these tests breaks
//! records already in stores (or instances of an older release sharing one).

use std::collections::BTreeMap;
use std::sync::Arc;

use device_grant::store::{DeviceAuthorization, DeviceCodeHash, Status, UserCodeHash};
use device_grant::{
    Approval, AuthorizationDetails, AuthorizationId, ClientId, CodeChallenge, Interval,
    JwkThumbprint, RequestContext, RequestDetails, ScopeSet, Subject,
};
use serde_json::{Value, json};
use time::{Date, Month, OffsetDateTime};

/// A time on 2 January 2025, UTC, the day of the fixtures.
fn utc(h: u8, m: u8, s: u8, ms: u16) -> OffsetDateTime {
    Date::from_calendar_date(2025, Month::January, 2)
        .unwrap()
        .with_hms_milli(h, m, s, ms)
        .unwrap()
        .assume_utc()
}

fn bytes(from: u8) -> [u8; 32] {
    std::array::from_fn(|i| from + i as u8)
}

fn approval() -> Arc<Approval> {
    Arc::new(Approval {
        subject: Subject::new("alice@example.com"),
        scopes: ScopeSet::parse("openid").unwrap(),
        approved_at: utc(3, 5, 0, 250),
        data: Some(
            device_grant::ApprovalData::new(&json!({
                "acr": "mfa",
                "amr": ["pwd", "otp"],
                "auth_time": 1_735_787_095,
                "upstream": {"sid": null},
            }))
            .unwrap(),
        ),
        authorization_details: None,
    })
}

/// The record every fixture holds, in the status given.
fn record(status: Status, version: u64) -> DeviceAuthorization {
    let extra = BTreeMap::from([
        ("firmware".to_owned(), "2.1.0".to_owned()),
        ("room".to_owned(), "den ✓".to_owned()),
    ]);
    DeviceAuthorization {
        id: AuthorizationId::from_bytes(std::array::from_fn(|i| i as u8 + 1)),
        device_code_hash: DeviceCodeHash::from_bytes(bytes(0)),
        user_code_hash: UserCodeHash::from_bytes(bytes(100)),
        request: Arc::new(RequestDetails {
            client_id: ClientId::new("tv-app"),
            scopes: ScopeSet::parse("openid profile").unwrap(),
            created_at: utc(3, 4, 5, 0),
            expires_at: utc(3, 14, 5, 0),
            context: RequestContext {
                ip: Some("192.0.2.7".parse().unwrap()),
                user_agent: Some("Living-room TV/2.1 (\"quoted\" \\ back)".to_owned()),
                extra,
            },
            code_challenge: None,
            authorization_details: None,
            dpop_jkt: None,
        }),
        status,
        interval: Interval::from_secs(10).unwrap(),
        last_poll: Some(utc(3, 4, 30, 500)),
        purge_at: utc(3, 19, 5, 0),
        version,
    }
}

/// Each fixture and the record it holds.
fn fixtures() -> Vec<(&'static str, &'static str, DeviceAuthorization)> {
    let mut pending = record(Status::Pending, 0);
    pending.interval = Interval::DEFAULT;
    pending.last_poll = None;
    // A request made with a PKCE code challenge (RFC 7636 Appendix B's).
    let mut pkce = pending.clone();
    Arc::make_mut(&mut pkce.request).code_challenge =
        Some(CodeChallenge::s256("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM").unwrap());
    // A device code bound to a DPoP key (RFC 7638's example thumbprint).
    let mut dpop = pending.clone();
    Arc::make_mut(&mut dpop.request).dpop_jkt =
        JwkThumbprint::from_base64url("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    // A request with authorization details (RFC 9396), approved in part.
    let mut rar = record(
        Status::Approved {
            approval: Arc::new(Approval {
                authorization_details: Some(media(&["list", "play"])),
                ..(*approval()).clone()
            }),
        },
        3,
    );
    Arc::make_mut(&mut rar.request).authorization_details =
        Some(media(&["list", "play", "download"]));
    vec![
        (
            "record-v1-pending.json",
            include_str!("fixtures/record-v1-pending.json"),
            pending,
        ),
        (
            "record-v1-approved.json",
            include_str!("fixtures/record-v1-approved.json"),
            record(
                Status::Approved {
                    approval: approval(),
                },
                3,
            ),
        ),
        (
            "record-v1-denied.json",
            include_str!("fixtures/record-v1-denied.json"),
            record(
                Status::Denied {
                    at: utc(3, 5, 1, 0),
                },
                3,
            ),
        ),
        (
            "record-v1-redeeming.json",
            include_str!("fixtures/record-v1-redeeming.json"),
            record(
                Status::Redeeming {
                    approval: approval(),
                    lease_until: utc(3, 5, 40, 250),
                },
                4,
            ),
        ),
        (
            "record-v1-redeemed.json",
            include_str!("fixtures/record-v1-redeemed.json"),
            record(
                Status::Redeemed {
                    approval: approval(),
                    at: utc(3, 5, 12, 125),
                },
                5,
            ),
        ),
        (
            "record-v1-pkce.json",
            include_str!("fixtures/record-v1-pkce.json"),
            pkce,
        ),
        (
            "record-v1-dpop.json",
            include_str!("fixtures/record-v1-dpop.json"),
            dpop,
        ),
        // Last: `authorization_details_are_optional_…` reads it.
        (
            "record-v1-rar.json",
            include_str!("fixtures/record-v1-rar.json"),
            rar,
        ),
    ]
}

fn media(actions: &[&str]) -> AuthorizationDetails {
    serde_json::from_value(json!([{
        "type": "media_library",
        "actions": actions,
        "locations": ["https://media.example/ü"],
    }]))
    .unwrap()
}

/// The optional `authorization_details` (RFC 9396) are written only when
/// present, in the request and in the approval: older records read as
/// requests without details.
#[test]
fn authorization_details_are_optional_and_only_written_when_present() {
    for (name, json, record) in fixtures() {
        let fixture: Value = serde_json::from_str(json).unwrap();
        let today = serde_json::to_value(&record).unwrap();
        assert_eq!(
            fixture["request"].get("authorization_details"),
            today["request"].get("authorization_details"),
            "{name}"
        );
        assert_eq!(
            fixture
                .get("approval")
                .and_then(|a| a.get("authorization_details")),
            today
                .get("approval")
                .and_then(|a| a.get("authorization_details")),
            "{name}"
        );
        let read = read(json).unwrap();
        assert_eq!(
            read.request.authorization_details, record.request.authorization_details,
            "{name}"
        );
    }
    let (_, json, want) = fixtures().pop().unwrap();
    let read = read(json).unwrap();
    assert_eq!(
        read.status.approval().unwrap().authorization_details,
        Some(media(&["list", "play"]))
    );
    assert_eq!(read, want);
    // A detail without a string `type` is refused, not read as no details.
    let mut bad: Value = serde_json::from_str(json).unwrap();
    bad["request"]["authorization_details"][0]["type"] = json!(7);
    assert!(serde_json::from_value::<DeviceAuthorization>(bad).is_err());
}

fn read(json: &str) -> Result<DeviceAuthorization, serde_json::Error> {
    serde_json::from_str(json)
}

#[test]
fn every_status_has_a_fixture() {
    let names: std::collections::BTreeSet<&str> = fixtures()
        .iter()
        .map(|(_, _, r)| match r.status {
            Status::Pending => "pending",
            Status::Approved { .. } => "approved",
            Status::Denied { .. } => "denied",
            Status::Redeeming { .. } => "redeeming",
            Status::Redeemed { .. } => "redeemed",
            _ => "a status without a fixture",
        })
        .collect();
    assert_eq!(
        names,
        ["pending", "approved", "denied", "redeeming", "redeemed"].into()
    );
}

/// The optional `code_challenge` (PKCE) is written only when present: records
/// without one keep the shape older releases wrote and read.
#[test]
fn the_code_challenge_is_optional_and_only_written_when_present() {
    for (name, json, record) in fixtures() {
        let fixture: Value = serde_json::from_str(json).unwrap();
        let today = serde_json::to_value(&record).unwrap();
        assert_eq!(
            fixture["request"].get("code_challenge").is_some(),
            record.request.code_challenge.is_some(),
            "{name}"
        );
        assert_eq!(
            today["request"].get("code_challenge"),
            fixture["request"].get("code_challenge"),
            "{name}"
        );
    }
    let (_, json, want) = &fixtures()[5];
    assert_eq!(
        read(json).unwrap().request.code_challenge,
        want.request.code_challenge
    );
    assert!(
        want.request
            .code_challenge
            .as_ref()
            .unwrap()
            .verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    );
    // A challenge of a method this release does not know is refused, not
    // read as a request without PKCE.
    let mut other: Value = serde_json::from_str(json).unwrap();
    other["request"]["code_challenge"]["method"] = json!("S512");
    assert!(serde_json::from_value::<DeviceAuthorization>(other).is_err());
}

#[test]
fn fixtures_read_as_the_records_they_hold() {
    for (name, json, want) in fixtures() {
        let got = read(json).unwrap_or_else(|e| panic!("{name} no longer reads: {e}"));
        assert_eq!(got, want, "{name} reads as another record");
        // Debug redacts approval data: compare it apart.
        assert_eq!(
            got.status.approval().map(|a| a.data.clone()),
            want.status.approval().map(|a| a.data.clone()),
            "{name}: the approval data reads differently"
        );
    }
}

/// Every field of `fixture` is in `today` with the same value, at every depth.
fn holds_all_of(today: &Value, fixture: &Value, path: &str) -> Result<(), String> {
    match (today, fixture) {
        (Value::Object(t), Value::Object(f)) => {
            for (key, value) in f {
                let path = format!("{path}.{key}");
                let Some(mine) = t.get(key) else {
                    return Err(format!("{path} is missing"));
                };
                holds_all_of(mine, value, &path)?;
            }
            Ok(())
        }
        _ if today == fixture => Ok(()),
        _ => Err(format!("{path} is {today}, format 1 has {fixture}")),
    }
}

/// What this release writes holds every field of the fixture with the same
/// value, so a format 1 reader (which ignores fields it does not know, as
/// `unknown_fields_are_ignored` checks) reads the same record from it.
#[test]
fn todays_records_serialize_to_format_1() {
    for (name, json, record) in fixtures() {
        let fixture: Value = serde_json::from_str(json).unwrap();
        let today = serde_json::to_value(&record).unwrap();
        holds_all_of(&today, &fixture, "")
            .unwrap_or_else(|e| panic!("today's serialization of {name}'s record: {e}"));
        assert_eq!(today["v"], json!(1), "{name}: the format version written");
        let back = read(&serde_json::to_string(&record).unwrap()).unwrap();
        assert_eq!(back, record, "{name}: the record does not round-trip");
    }
}

/// Records written before the format carried `v` are format 1.
#[test]
fn records_without_a_version_read_as_format_1() {
    for (name, json, want) in fixtures() {
        let mut old: Value = serde_json::from_str(json).unwrap();
        old.as_object_mut().unwrap().remove("v");
        let got = serde_json::from_value::<DeviceAuthorization>(old)
            .unwrap_or_else(|e| panic!("{name} without \"v\" no longer reads: {e}"));
        assert_eq!(got, want, "{name} without \"v\"");
    }
}

/// A later 1.x may add optional fields: this release reads such records,
/// ignoring what it does not know, at every level.
#[test]
fn unknown_fields_are_ignored() {
    for (name, json, want) in fixtures() {
        let mut later: Value = serde_json::from_str(json).unwrap();
        let object = later.as_object_mut().unwrap();
        object.insert("added_later".to_owned(), json!({"any": ["shape"]}));
        object["request"]
            .as_object_mut()
            .unwrap()
            .insert("added_later".to_owned(), json!(1));
        object["request"]["context"]
            .as_object_mut()
            .unwrap()
            .insert("added_later".to_owned(), json!(null));
        if let Some(challenge) = object["request"].get_mut("code_challenge") {
            challenge
                .as_object_mut()
                .unwrap()
                .insert("added_later".to_owned(), json!(true));
        }
        if let Some(approval) = object.get_mut("approval") {
            approval
                .as_object_mut()
                .unwrap()
                .insert("added_later".to_owned(), json!("x"));
        }
        let got = serde_json::from_value::<DeviceAuthorization>(later)
            .unwrap_or_else(|e| panic!("{name} with fields added later no longer reads: {e}"));
        assert_eq!(got, want, "{name} with fields added later");
    }
}

/// A record of a format this release does not know is refused, not misread.
#[test]
fn other_format_versions_are_refused() {
    let (_, json, _) = &fixtures()[1];
    for v in [0, 2, 7] {
        let mut other: Value = serde_json::from_str(json).unwrap();
        other["v"] = json!(v);
        let err = serde_json::from_value::<DeviceAuthorization>(other)
            .expect_err("a record of another format version must not read");
        assert!(
            err.to_string()
                .contains(&format!("record format version {v} is not 1")),
            "the error must name the format versions: {err}"
        );
    }
    assert_eq!(DeviceAuthorization::FORMAT_VERSION, 1);
}
