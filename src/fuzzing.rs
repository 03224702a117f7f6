//! Hooks for the fuzz targets (`fuzz/`) and their regression tests: the parsers
//! under the endpoints, which the public API reaches only through whole
//! requests. Not part of the API: hidden from the docs, and no semver promise.

pub use crate::protocol::client::ClientCredentials;
use crate::protocol::error::RequestError;
use crate::protocol::form::{Form, Limits};

/// [`Form`]'s parser with any limits.
pub fn parse_form<'a>(body: &'a [u8], limits: &Limits) -> Result<Form<'a>, RequestError> {
    Form::parse(body, limits)
}
