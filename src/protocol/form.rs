//! `application/x-www-form-urlencoded` request bodies, with the limits and the
//! RFC 6749 §3.1 rules: repeated parameters are refused, empty ones count as absent,
//! unknown ones are ignored.

use std::borrow::Cow;

use crate::protocol::error::RequestError;

/// Size limits on a request, each refused with `invalid_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest body in bytes. Default 8 KiB.
    pub max_body_bytes: usize,
    /// Most parameters in a body. Default 32.
    pub max_parameters: usize,
    /// Longest value of a parameter the crate reads, in bytes. Default 1024.
    pub max_value_bytes: usize,
    /// Most values in `scope`. Default 32.
    pub max_scopes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 8 * 1024,
            max_parameters: 32,
            max_value_bytes: 1024,
            max_scopes: 32,
        }
    }
}

/// The parameters of a form-encoded request body, decoded with the rules of
/// RFC 6749 §3.1 and §3.2 (a parameter sent twice or empty is refused, names
/// and values are UTF-8) within the configured [`Limits`].
///
/// The host gets one from [`DeviceGrant::form`](crate::DeviceGrant::form), to
/// read the parameters of its own grants at the same token endpoint.
/// `Debug` shows the names only: values may be secrets.
#[derive(Clone)]
pub struct Form<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    max_value_bytes: usize,
}

impl std::fmt::Debug for Form<'_> {
    // Values may be secrets (client_secret, device_code): print names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.pairs.iter().map(|(k, _)| k))
            .finish()
    }
}

/// form_urlencoded decodes invalid UTF-8 lossily into U+FFFD; no OAuth parameter
/// can contain U+FFFD, so its presence means the input was bad.
fn checked<'a>(
    (k, v): (Cow<'a, str>, Cow<'a, str>),
) -> Result<(Cow<'a, str>, Cow<'a, str>), RequestError> {
    if k.contains('\u{FFFD}') || v.contains('\u{FFFD}') {
        return Err(RequestError::InvalidUtf8);
    }
    Ok((k, v))
}

/// Whether a `Content-Type` value names a form body (parameters such as
/// `charset=UTF-8` are allowed).
pub(crate) fn is_form_content_type(value: &str) -> bool {
    value.split(';').next().is_some_and(|t| {
        t.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

impl<'a> Form<'a> {
    /// Decodes a body within `limits`.
    pub(crate) fn parse(body: &'a [u8], limits: &Limits) -> Result<Self, RequestError> {
        if body.len() > limits.max_body_bytes {
            return Err(RequestError::BodyTooLarge(limits.max_body_bytes));
        }
        let mut pairs = Vec::new();
        for pair in form_urlencoded::parse(body) {
            if pairs.len() == limits.max_parameters {
                return Err(RequestError::TooManyParameters(limits.max_parameters));
            }
            pairs.push(checked(pair)?);
        }
        Ok(Self {
            pairs,
            max_value_bytes: limits.max_value_bytes,
        })
    }

    /// The value of `name`: `None` when absent or empty, an error when repeated or
    /// longer than the limit.
    pub fn get(&self, name: &'static str) -> Result<Option<&str>, RequestError> {
        let mut found: Option<&str> = None;
        for (k, v) in &self.pairs {
            if k == name {
                if found.is_some() {
                    return Err(RequestError::RepeatedParameter(name));
                }
                found = Some(v);
            }
        }
        match found {
            Some(v) if v.len() > self.max_value_bytes => Err(RequestError::ValueTooLong(name)),
            Some("") => Ok(None),
            other => Ok(other),
        }
    }

    /// The value of `name`, which must be present.
    pub fn require(&self, name: &'static str) -> Result<&str, RequestError> {
        self.get(name)?.ok_or(RequestError::MissingParameter(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8]) -> Result<Form<'_>, RequestError> {
        Form::parse(body, &Limits::default())
    }

    #[test]
    fn reads_values_and_applies_rules() {
        let f = parse(b"client_id=tv%20app&scope=a+b&empty=&x=1&x=2").unwrap();
        assert_eq!(f.get("client_id").unwrap(), Some("tv app"));
        assert_eq!(f.get("scope").unwrap(), Some("a b"));
        assert_eq!(f.get("empty").unwrap(), None);
        assert_eq!(f.get("absent").unwrap(), None);
        assert_eq!(f.get("x"), Err(RequestError::RepeatedParameter("x")));
        assert_eq!(
            f.require("absent"),
            Err(RequestError::MissingParameter("absent"))
        );
        assert_eq!(
            parse(b"").unwrap().require("empty"),
            Err(RequestError::MissingParameter("empty"))
        );
    }

    #[test]
    fn refuses_bad_encoding_and_oversize() {
        assert_eq!(parse(b"a=%FF").err(), Some(RequestError::InvalidUtf8));
        assert_eq!(parse(b"a=\xC3").err(), Some(RequestError::InvalidUtf8));
        let big = vec![b'a'; 9000];
        assert_eq!(parse(&big).err(), Some(RequestError::BodyTooLarge(8192)));
        let many = "a=1&".repeat(33);
        assert_eq!(
            parse(many.as_bytes()).err(),
            Some(RequestError::TooManyParameters(32))
        );
        let long = format!("scope={}", "s".repeat(1025));
        assert_eq!(
            parse(long.as_bytes()).unwrap().get("scope"),
            Err(RequestError::ValueTooLong("scope"))
        );
        assert!(!format!("{:?}", parse(b"client_secret=hunter2").unwrap()).contains("hunter2"));
    }

    #[test]
    fn parses_exactly_as_form_urlencoded() {
        let bodies: [&[u8]; 14] = [
            b"a=1&b=2",
            b"&&a=1&&",
            b"a&b=&=c&==",
            b"a=x%20y+z&%61=%zz",
            b"k=v=w&k2==v",
            b"a=\xC3\xA9&b=c",
            b"a%3Db=c&d=%E2%82%AC+%2B",
            b"grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code=abc-_",
            b"",
            b"=",
            b"&",
            b"a=1&",
            b"+=+&%=%",
            b"x=\xE2\x82\xAC&y=%20",
        ];
        for body in bodies {
            let ours = parse(body).unwrap().pairs;
            let theirs: Vec<_> = form_urlencoded::parse(body).collect();
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(body));
        }
        // Invalid UTF-8, raw or percent-encoded, in either path.
        for body in [
            &b"a=%FF&b=1"[..],
            b"a=1&b=%C3",
            b"a=\xFF",
            b"\xEF\xBF\xBD=1",
        ] {
            assert_eq!(parse(body).err(), Some(RequestError::InvalidUtf8));
        }
    }

    #[test]
    fn content_type() {
        assert!(is_form_content_type("application/x-www-form-urlencoded"));
        assert!(is_form_content_type(
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8"
        ));
        assert!(!is_form_content_type("application/json"));
        assert!(!is_form_content_type("multipart/form-data"));
    }
}
