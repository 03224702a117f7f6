//! The pages' look: templates and one stylesheet in `examples/server/templates/`
//! (restyling means editing those files only), rendered with minijinja, which
//! escapes every value in `.html` templates. Also the headers every response
//! carries.

use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use minijinja::Environment;

pub(crate) struct Views(Environment<'static>);

impl Views {
    /// The templates, compiled into the binary so that the server runs from any
    /// directory.
    pub(crate) fn new() -> Self {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("../templates/base.html")),
            ("device.html", include_str!("../templates/device.html")),
            ("login.html", include_str!("../templates/login.html")),
            ("consent.html", include_str!("../templates/consent.html")),
            ("done.html", include_str!("../templates/done.html")),
            ("message.html", include_str!("../templates/message.html")),
        ] {
            // A broken template is a bug in this example, found at start.
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name}: {e}"));
        }
        Self(env)
    }

    /// Renders `name` as an HTML page with `status`.
    pub(crate) fn page(
        &self,
        status: StatusCode,
        name: &str,
        context: minijinja::Value,
    ) -> Response {
        let rendered = self
            .0
            .get_template(name)
            .and_then(|template| template.render(context));
        match rendered {
            Ok(html) => (
                status,
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    // Pages carry CSRF tokens and personal data: never cached.
                    (header::CACHE_CONTROL, "no-store"),
                ],
                html,
            )
                .into_response(),
            Err(error) => {
                eprintln!("template {name} failed: {error:#}");
                (StatusCode::INTERNAL_SERVER_ERROR, "page failed to render").into_response()
            }
        }
    }
}

/// `GET /static/style.css`.
pub(crate) async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../templates/style.css"),
    )
}

/// A QR code of `text` as inline SVG markup (no script, no external image, so
/// the Content-Security-Policy stays strict).
pub(crate) fn qr_svg(text: &str) -> Option<minijinja::Value> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(180, 180)
        .quiet_zone(true)
        .build();
    // Markup this server generated from a URL it built: safe to embed as is.
    Some(minijinja::Value::from_safe_string(svg))
}

/// Headers on every response. The pages must never be framed (RFC 9700 §4.16:
/// clickjacking of the consent button), load nothing but this origin's
/// stylesheet, and post forms only to this origin.
pub(crate) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // `verification_uri_complete` puts the user code in the page's address:
    // it must not leak to other sites through the Referer header.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
