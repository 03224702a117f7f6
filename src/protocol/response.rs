//! A framework-agnostic HTTP response: status, headers and a JSON body.

/// An endpoint's reply, ready to be copied into any HTTP framework's response type.
///
/// Every response the crate renders carries `Content-Type: application/json`,
/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1, RFC 8628 §3.2).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lower-case) and values, in order.
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body.
    pub body: String,
}

impl std::fmt::Debug for HttpResponse {
    // The body of a success carries codes and tokens: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &format_args!("[{} bytes]", self.body.len()))
            .finish()
    }
}

impl HttpResponse {
    /// A JSON response with the no-store headers.
    pub(crate) fn json(status: u16, body: &impl serde::Serialize) -> Self {
        // Serializing the crate's own plain structs to a String cannot fail.
        let body = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
        Self {
            status,
            headers: vec![
                ("content-type", "application/json".to_owned()),
                ("cache-control", "no-store".to_owned()),
                ("pragma", "no-cache".to_owned()),
            ],
            body,
        }
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
