//! Integrations with other crates, each behind a feature.

#[cfg(feature = "http")]
mod http;
