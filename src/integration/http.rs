//! `http::Response` conversions (feature `http`): what axum and hyper return as is.

use crate::protocol::response::HttpResponse;

impl From<HttpResponse> for http::Response<String> {
    fn from(r: HttpResponse) -> Self {
        let mut builder = http::Response::builder().status(r.status);
        for (name, value) in &r.headers {
            builder = builder.header(*name, value.as_str());
        }
        // Status and header values come from the crate's own constants.
        builder.body(r.body).unwrap_or_else(|_| {
            let mut fallback = http::Response::new(String::new());
            *fallback.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::protocol::error::OAuthError;

    #[test]
    fn converts_status_headers_and_body() {
        let r: http::Response<String> = OAuthError::invalid_client(true).to_http().into();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert!(r.headers().contains_key("www-authenticate"));
        assert!(r.body().contains("invalid_client"));
    }
}
