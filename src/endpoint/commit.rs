//! The commit point of a transition: one compare-and-set, with an ambiguous
//! reply settled by reading the record back instead of guessed.

use crate::grant::DeviceGrant;
use crate::protocol::authorization::DeviceAuthorization;
use crate::protocol::error::BackendError;

/// Reads tried when a compare-and-set's reply is lost.
const SETTLE_READS: usize = 3;

/// Whether a transition's compare-and-set took effect.
#[derive(Debug)]
pub(crate) enum Commit {
    /// It did: the operation has happened, whatever follows.
    Done,
    /// It did not: the stored record had moved on (another request won), or the
    /// write never landed. Nothing changed; the caller reads again and retries.
    Lost,
    /// The store failed around the write and could not be read back: whether it
    /// took effect is unknown.
    Unknown(BackendError),
}

impl DeviceGrant {
    /// Writes `next` over the stored record if it is still at `expected`.
    ///
    /// A store error around the write (a timeout, a cut connection) does not
    /// say whether it landed, so the record is read back: the write landed when
    /// the stored record carries it (`landed`, which recognizes this write's own
    /// status, even if later transitions followed), and did not when the stored
    /// record is still at `expected` or shows another write.
    pub(crate) async fn commit(
        &self,
        expected: u64,
        next: &DeviceAuthorization,
        landed: impl Fn(&DeviceAuthorization) -> bool,
    ) -> Commit {
        let store = &self.inner.store;
        let error = match store.compare_and_set(expected, next).await {
            Ok(true) => return Commit::Done,
            Ok(false) => return Commit::Lost,
            Err(e) => e,
        };
        for _ in 0..SETTLE_READS {
            match store.by_device_code(&next.device_code_hash).await {
                Ok(Some(stored)) if stored.version >= next.version && landed(&stored) => {
                    return Commit::Done;
                }
                Ok(_) => return Commit::Lost,
                Err(_) => continue,
            }
        }
        Commit::Unknown(error)
    }
}
