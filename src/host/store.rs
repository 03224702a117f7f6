//! Storage of device authorizations.

use time::OffsetDateTime;

use crate::protocol::authorization::DeviceAuthorization;
use crate::protocol::device_code::DeviceCodeHash;
use crate::protocol::error::BackendError;
use crate::protocol::user_code::UserCodeHash;

/// The outcome of [`Store::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The record is stored.
    Stored,
    /// A live record holds the same user-code hash; nothing was stored. The caller
    /// draws another user code.
    UserCodeTaken,
}

/// Where device authorizations live. Records hold only hashes of the codes.
///
/// # Contract
///
/// Records are keyed by [`DeviceAuthorization::device_code_hash`]. A record's
/// *user-code index entry* maps its [`DeviceAuthorization::user_code_hash`] to it
/// while the record is pending (`status` is `Pending`) and unexpired.
///
/// - **Atomicity.** [`Store::compare_and_set`] replaces the stored record only if the
///   stored version equals `expected_version`, as one atomic step across every
///   instance sharing the store; `next.version` is always `expected_version + 1`.
///   It is the only way a stored record changes, so no transition can be lost or
///   undone by a concurrent one.
/// - **User-code uniqueness.** [`Store::insert`] refuses (with
///   [`Inserted::UserCodeTaken`]) a record whose user-code hash is held by a
///   record that is pending and unexpired at `now`, atomically with the insert.
/// - **The index dies with `Pending`.** Once a record leaves `Pending`,
///   [`Store::by_user_code`] must not return it.
/// - **Retention.** A record may be deleted once `now >= purge_at`, and must be
///   returned until then.
/// - **Failures** are [`BackendError`]s; an operation that fails changed nothing
///   or changed everything, never half.
///
/// The conformance suite (feature `test-util`) checks all of this for an adapter.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Stores a new record (version 0), unless its user code is taken.
    async fn insert(
        &self,
        record: &DeviceAuthorization,
        now: OffsetDateTime,
    ) -> Result<Inserted, BackendError>;

    /// The record of a device code.
    async fn by_device_code(
        &self,
        hash: &DeviceCodeHash,
    ) -> Result<Option<DeviceAuthorization>, BackendError>;

    /// The pending record of a user code, if its index entry is alive.
    async fn by_user_code(
        &self,
        hash: &UserCodeHash,
        now: OffsetDateTime,
    ) -> Result<Option<DeviceAuthorization>, BackendError>;

    /// Replaces the record with `next` if its stored version is `expected_version`.
    /// Returns whether it did.
    async fn compare_and_set(
        &self,
        expected_version: u64,
        next: &DeviceAuthorization,
    ) -> Result<bool, BackendError>;

    /// Deletes records whose `purge_at` has passed; returns how many.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError>;
}
