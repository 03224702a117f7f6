//! For store authors: what a backend implements, the records it keeps, and
//! the suite that checks it.
//!
//! A host picks a store and passes it to
//! [`DeviceGrantBuilder::store`](crate::DeviceGrantBuilder::store); it never
//! needs this module. An adapter (a crate that keeps device authorizations in
//! a database) implements [`Store`] and, to count wrong user codes across
//! instances, [`AttemptLimiter`], and proves both with [`conformance`]
//! (feature `test-util`).
//!
//! - The records: [`DeviceAuthorization`] with its [`Status`], keyed by
//!   [`DeviceCodeHash`] and indexed by [`UserCodeHash`]. They hold hashes of
//!   the codes, never the codes.
//! - The record format: [`encode_record`] and [`decode_record`] give the
//!   versioned JSON form that every 1.x release reads (see
//!   [`DeviceAuthorization`], *Serialized format*).
//! - Each trait documents, per method, the preconditions, the exact result
//!   for each outcome, atomicity, and whether it may block.
//!
//! ```
//! # #[cfg(feature = "test-util")] // `conformance::pending_record`
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use device_grant::store::{decode_record, encode_record, Store};
//! use device_grant::MemoryStore;
//!
//! let record = device_grant::store::conformance::pending_record(
//!     device_grant::store::conformance::base_time(),
//! );
//! let json = encode_record(&record).unwrap();
//! assert!(json.contains(r#""v":1"#));
//! assert_eq!(decode_record(&json).unwrap(), record);
//! # let _ = MemoryStore::new().by_device_code(&record.device_code_hash).await;
//! # });
//! ```
//!
//! A store keeps records; it never changes one's meaning. The state machine's
//! transitions are the endpoints' alone:
//!
//! ```compile_fail
//! # fn f(record: device_grant::store::DeviceAuthorization) {
//! let denied = record.deny(time::OffsetDateTime::now_utc()); // not public
//! # }
//! ```
//!
//! and a hash is built from bytes a store read back, never by reaching into
//! its fields:
//!
//! ```compile_fail
//! # fn f(hash: device_grant::store::DeviceCodeHash) {
//! let bytes: [u8; 32] = hash.0; // private: use `as_bytes`
//! # }
//! ```

#[cfg(feature = "test-util")]
pub mod conformance;

pub use crate::host::limiter::{Admission, AttemptLimiter, LimiterKey};
pub use crate::host::store::{Inserted, PollAttempt, Polled, Store};
pub use crate::protocol::authorization::{DeviceAuthorization, Status};
pub use crate::protocol::device_code::DeviceCodeHash;
pub use crate::protocol::user_code::UserCodeHash;

use time::OffsetDateTime;

use crate::protocol::error::BackendError;
use crate::protocol::polling::Interval;

/// A record as JSON text in the stable format (`"v": 1`), holding only hashes
/// of the codes.
pub fn encode_record(record: &DeviceAuthorization) -> Result<String, BackendError> {
    serde_json::to_string(record).map_err(BackendError::other)
}

/// A record from JSON text that [`encode_record`] (of this or any 1.x
/// release) wrote.
///
/// Text that is not such a record is [`BackendError::Corrupt`], whose message
/// says where the JSON broke, never what it held.
pub fn decode_record(json: &str) -> Result<DeviceAuthorization, BackendError> {
    serde_json::from_str(json).map_err(|e| {
        BackendError::Corrupt(format!(
            "stored record is not a device authorization (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// A record read back with the pace state a store keeps beside its JSON
/// (see [`Store::poll`]): a store that judges polls itself writes the next
/// version, the interval and the last poll in fields of their own rather
/// than rewriting the record. While the stored `version` is ahead of the
/// record's, those fields have the last word; otherwise the record is
/// returned as it is.
///
/// A version ahead on a record out of `Pending` (which no poll writes), or
/// a missing interval, is [`BackendError::Corrupt`].
pub fn with_pace(
    mut record: DeviceAuthorization,
    version: u64,
    interval: Option<Interval>,
    last_poll: Option<OffsetDateTime>,
) -> Result<DeviceAuthorization, BackendError> {
    if version == record.version {
        return Ok(record);
    }
    let corrupt = |what: &str| BackendError::Corrupt(format!("stored record: bad {what}"));
    if version < record.version || !record.status.is_pending() {
        return Err(corrupt("version"));
    }
    record.interval = interval.ok_or_else(|| corrupt("interval"))?;
    record.last_poll = last_poll;
    record.version = version;
    Ok(record)
}

/// A connection URL with its password (and its query, where a password can
/// also hide: `?password=`) replaced by `***`, for an adapter's `Debug` output
/// and errors. Text that is not a URL gives `<unparsable url>`, never itself.
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            if parsed.query().is_some() {
                parsed.set_query(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparsable url>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            redacted_url("redis://user:hunter2@cache:6379/0"),
            "redis://user:***@cache:6379/0"
        );
        let pg = redacted_url("postgres://app:s3cret@db/grant?password=other&sslmode=require");
        assert!(!pg.contains("s3cret") && !pg.contains("other"), "{pg}");
        assert_eq!(redacted_url("not a url s3cret"), "<unparsable url>");
    }

    #[test]
    fn corrupt_records_do_not_echo_their_content() {
        let err = decode_record("{\"device_code_hash\": \"secret-looking\"").unwrap_err();
        assert!(matches!(err, BackendError::Corrupt(_)));
        assert!(!err.to_string().contains("secret-looking"), "{err}");
    }
}
