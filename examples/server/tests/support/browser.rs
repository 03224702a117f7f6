//! A person's browser, over plain HTTP: keeps cookies, follows redirects, finds
//! forms in pages and submits them with every field they carry (hidden ones
//! included), as a browser does.
// Shared by several test binaries: `pub` for them, not for a public API.
#![allow(unreachable_pub)]

use reqwest::header::HeaderMap;

pub struct Browser {
    http: reqwest::Client,
}

/// A page as the browser ended up on it.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub url: String,
    pub headers: HeaderMap,
    pub html: String,
}

/// A form found in a page.
#[derive(Debug, Clone)]
pub struct Form {
    pub action: String,
    pub method: String,
    /// Named inputs with their values, in document order.
    pub fields: Vec<(String, String)>,
    /// Named submit buttons: (name, value).
    pub buttons: Vec<(String, String)>,
    /// Checkboxes not ticked: (name, value). A browser sends none of them;
    /// [`Form::check`] ticks one.
    pub unchecked: Vec<(String, String)>,
}

impl Browser {
    pub fn new() -> Self {
        Self::with_headers(HeaderMap::new())
    }

    /// A browser whose requests reach the server through a trusted proxy (the
    /// app's `ClientAddress::ForwardedFor`) from `ip`: how a test puts the
    /// person on another network than the device.
    pub fn from_address(ip: &str) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", ip.parse().unwrap());
        Self::with_headers(headers)
    }

    fn with_headers(headers: HeaderMap) -> Self {
        Self {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .user_agent("Mozilla/5.0 (e2e test phone)")
                .default_headers(headers)
                .build()
                .unwrap(),
        }
    }

    /// The browser's HTTP client, with its cookies: for a page's script
    /// calling a JSON API.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub async fn get(&self, url: &str) -> Page {
        Page::read(self.http.get(url).send().await.unwrap()).await
    }

    /// Submits `form` of `page`, with `button` pressed (its name and value are
    /// sent, as browsers do for the button that submitted).
    pub async fn submit(&self, page: &Page, form: &Form, button: Option<(&str, &str)>) -> Page {
        if let Some(pressed) = button {
            assert!(
                form.buttons
                    .iter()
                    .any(|(n, v)| (n.as_str(), v.as_str()) == pressed),
                "no button {pressed:?} in form {form:?}"
            );
        }
        assert_eq!(form.method, "post", "{form:?}");
        let action = reqwest::Url::parse(&page.url)
            .unwrap()
            .join(&form.action)
            .unwrap();
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &form.fields {
            body.append_pair(name, value);
        }
        if let Some((name, value)) = button {
            body.append_pair(name, value);
        }
        let response = self
            .http
            .post(action)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.finish())
            .send()
            .await
            .unwrap();
        Page::read(response).await
    }
}

impl Page {
    async fn read(response: reqwest::Response) -> Page {
        Page {
            status: response.status().as_u16(),
            url: response.url().to_string(),
            headers: response.headers().clone(),
            html: response.text().await.unwrap(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The path the browser ended on.
    pub fn path(&self) -> String {
        reqwest::Url::parse(&self.url).unwrap().path().to_owned()
    }

    /// Whether the page's text (entities decoded) contains `text`.
    pub fn contains(&self, text: &str) -> bool {
        decode_entities(&self.html).contains(text)
    }

    /// Every form on the page.
    pub fn forms(&self) -> Vec<Form> {
        let dom = tl::parse(&self.html, tl::ParserOptions::default()).unwrap();
        let parser = dom.parser();
        let attr = |tag: &tl::HTMLTag<'_>, name: &str| {
            tag.attributes()
                .get(name)
                .flatten()
                .map(|v| decode_entities(&v.as_utf8_str()))
        };
        let mut forms = Vec::new();
        for handle in dom.query_selector("form").unwrap() {
            let Some(form) = handle.get(parser).and_then(|n| n.as_tag()) else {
                continue;
            };
            let mut fields = Vec::new();
            let mut unchecked = Vec::new();
            for input in form.query_selector(parser, "input").unwrap() {
                let Some(input) = input.get(parser).and_then(|n| n.as_tag()) else {
                    continue;
                };
                let Some(name) = attr(input, "name") else {
                    continue;
                };
                let kind = attr(input, "type").unwrap_or_default().to_lowercase();
                // A checkbox sends its value ("on" without one) only when ticked.
                let value = attr(input, "value").unwrap_or_else(|| {
                    if kind == "checkbox" {
                        "on".to_owned()
                    } else {
                        String::new()
                    }
                });
                let ticked = input.attributes().contains("checked");
                if (kind == "checkbox" || kind == "radio") && !ticked {
                    unchecked.push((name, value));
                } else {
                    fields.push((name, value));
                }
            }
            let mut buttons = Vec::new();
            for button in form.query_selector(parser, "button").unwrap() {
                let Some(button) = button.get(parser).and_then(|n| n.as_tag()) else {
                    continue;
                };
                if let Some(name) = attr(button, "name") {
                    buttons.push((name, attr(button, "value").unwrap_or_default()));
                }
            }
            forms.push(Form {
                action: attr(form, "action").unwrap_or_default(),
                method: attr(form, "method").unwrap_or_default().to_lowercase(),
                fields,
                buttons,
                unchecked,
            });
        }
        forms
    }

    /// The form that posts to `action`; fails the test, showing the page, if none.
    pub fn form(&self, action: &str) -> Form {
        self.forms()
            .into_iter()
            .find(|f| f.action == action)
            .unwrap_or_else(|| {
                panic!(
                    "no form posting to {action} on {}:\n{}",
                    self.url, self.html
                )
            })
    }
}

impl Form {
    pub fn value(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Ticks the checkbox `name`, which must exist and not be ticked.
    pub fn check(mut self, name: &str) -> Self {
        let at = self
            .unchecked
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no unticked checkbox {name} in {:?}", self.action));
        let ticked = self.unchecked.remove(at);
        self.fields.push(ticked);
        self
    }

    /// Unticks the checkbox `name`, which must exist and be ticked.
    pub fn uncheck(mut self, name: &str) -> Self {
        let at = self
            .fields
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no ticked checkbox {name} in {:?}", self.action));
        let unticked = self.fields.remove(at);
        self.unchecked.push(unticked);
        self
    }

    /// Types `value` into the input `name`, which must exist.
    pub fn fill(mut self, name: &str, value: &str) -> Self {
        let field = self
            .fields
            .iter_mut()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no input {name} in {:?}", self.action));
        field.1 = value.to_owned();
        self
    }
}

/// Decodes the entities the server's template engine writes.
fn decode_entities(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
