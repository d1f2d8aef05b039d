//! `builtin:headers`: sets, appends and removes request and response
//! headers, the work of NGINX's `proxy_set_header` / `add_header` and
//! HAProxy's `http-request set-header` / `http-response del-header`.
//!
//! ```toml
//! [filters.edge]
//! plugin = "builtin:headers"
//! options.request = { set = { "x-real-ip" = "{client-ip}" }, remove = ["x-debug"] }
//! options.response = { set = { "strict-transport-security" = "max-age=63072000" } }
//! ```
//!
//! Each side applies `remove`, then `set` (replacing every value), then
//! `append` (adding a value). Values may name the request's fields in
//! braces: `{client-ip}`, `{client-port}`, `{method}`, `{host}`, `{path}`,
//! `{query}`, `{listener}`, and on responses `{status}`; `{{` and `}}` are
//! literal braces.

use std::collections::BTreeMap;

use bascule_guest_sdk::{Error, HeaderFilter, Headers, Options, Request, Verdict};
use serde::Deserialize;

/// The plugin: one rule set for requests, one for responses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRules {
    #[serde(default)]
    request: Edits,
    #[serde(default)]
    response: Edits,
}

/// Changes to one message's headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edits {
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    set: BTreeMap<String, Template>,
    #[serde(default)]
    append: BTreeMap<String, Template>,
}

/// A header value with `{field}` placeholders, parsed at configure time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Template(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(Field),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    ClientIp,
    ClientPort,
    Method,
    Host,
    Path,
    Query,
    Listener,
    Status,
}

impl HeaderFilter for HeaderRules {
    fn configure(options: &Options) -> Result<Self, Error> {
        let rules: HeaderRules = options.parse()?;
        for edits in [&rules.request, &rules.response] {
            let names = edits
                .remove
                .iter()
                .chain(edits.set.keys())
                .chain(edits.append.keys());
            for name in names {
                check_name(name)?;
            }
        }
        if rules.request.uses(Field::Status) {
            return Err(Error::new(
                "`{status}` is only known on responses, not in `request` edits",
            ));
        }
        Ok(rules)
    }

    fn on_request(&mut self, request: &Request, headers: &mut Headers) -> Result<Verdict, Error> {
        self.request.apply(headers, request, None)?;
        Ok(Verdict::Forward)
    }

    fn on_response(
        &mut self,
        status: u16,
        request: &Request,
        headers: &mut Headers,
    ) -> Result<(), Error> {
        self.response.apply(headers, request, Some(status))
    }
}

bascule_guest_sdk::export_header_filter!(HeaderRules);

// === impl Edits ===

impl Edits {
    fn apply(
        &self,
        headers: &mut Headers,
        request: &Request,
        status: Option<u16>,
    ) -> Result<(), Error> {
        for name in &self.remove {
            headers.remove(name)?;
        }
        for (name, value) in &self.set {
            headers.set(name, &value.render(request, status))?;
        }
        for (name, value) in &self.append {
            headers.append(name, &value.render(request, status))?;
        }
        Ok(())
    }

    fn uses(&self, field: Field) -> bool {
        self.set
            .values()
            .chain(self.append.values())
            .any(|template| template.0.contains(&Piece::Field(field)))
    }
}

// === impl Template ===

impl TryFrom<String> for Template {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(['{', '}']) {
            let (before, after) = rest.split_at(at);
            literal.push_str(before);
            if let Some(tail) = after.strip_prefix("{{") {
                literal.push('{');
                rest = tail;
            } else if let Some(tail) = after.strip_prefix("}}") {
                literal.push('}');
                rest = tail;
            } else if let Some(tail) = after.strip_prefix('{') {
                let (name, tail) = tail
                    .split_once('}')
                    .ok_or_else(|| format!("unclosed `{{` in `{text}`"))?;
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Field(Field::named(name)?));
                rest = tail;
            } else {
                return Err(format!("lone `}}` in `{text}` (write `}}}}` for a brace)"));
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template(pieces))
    }
}

impl Template {
    fn render(&self, request: &Request, status: Option<u16>) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Field(field) => out.push_str(&field.value(request, status)),
            }
        }
        out
    }
}

// === impl Field ===

impl Field {
    fn named(name: &str) -> Result<Self, String> {
        Ok(match name {
            "client-ip" => Field::ClientIp,
            "client-port" => Field::ClientPort,
            "method" => Field::Method,
            "host" => Field::Host,
            "path" => Field::Path,
            "query" => Field::Query,
            "listener" => Field::Listener,
            "status" => Field::Status,
            other => {
                return Err(format!(
                    "unknown field `{{{other}}}` (fields: client-ip, client-port, method, host, path, query, listener, status)"
                ));
            }
        })
    }

    fn value(self, request: &Request, status: Option<u16>) -> String {
        match self {
            Field::ClientIp => request.client_ip(),
            Field::ClientPort => request.client_port().to_string(),
            Field::Method => request.method(),
            Field::Host => request.host().unwrap_or_default(),
            Field::Path => request.path(),
            Field::Query => request.query().unwrap_or_default(),
            Field::Listener => request.listener(),
            Field::Status => status.map(|s| s.to_string()).unwrap_or_default(),
        }
    }
}

/// Header names are HTTP tokens; catching a typo here fails the config load
/// instead of every request.
fn check_name(name: &str) -> Result<(), Error> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(Error::new(format!("`{name}` is not a valid header name")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bascule_guest_sdk::RequestFixture;

    use super::*;

    fn rules(json: &str) -> Result<HeaderRules, Error> {
        HeaderRules::configure(&Options::from_json(json))
    }

    fn request() -> Request {
        Request::fixture(RequestFixture {
            client_ip: "10.0.0.7".to_owned(),
            client_port: 40_000,
            method: "GET".to_owned(),
            host: Some("shop.test".to_owned()),
            path: "/cart".to_owned(),
            listener: "web".to_owned(),
            ..RequestFixture::default()
        })
    }

    #[test]
    fn removes_then_sets_then_appends() {
        let mut filter = rules(
            r#"{"request": {"remove": ["x-debug"], "set": {"x-env": "prod"}, "append": {"via": "bascule"}}}"#,
        )
        .unwrap();
        let mut headers = Headers::fixture([
            ("X-Debug", "1"),
            ("x-env", "dev"),
            ("x-env", "qa"),
            ("via", "edge"),
        ]);
        let verdict = filter.on_request(&request(), &mut headers).unwrap();
        assert_eq!(verdict, Verdict::Forward);
        let pairs: Vec<(&str, &str)> = headers
            .pairs()
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [("via", "edge"), ("x-env", "prod"), ("via", "bascule")]
        );
    }

    #[test]
    fn fills_placeholders_from_the_request_and_status() {
        let mut filter = rules(
            r#"{"request": {"set": {"x-real-ip": "{client-ip}:{client-port}", "x-orig": "{method} {host}{path}"}},
                "response": {"set": {"x-upstream-status": "{status} {{ok}}"}}}"#,
        )
        .unwrap();
        let mut headers = Headers::fixture(Vec::<(String, String)>::new());
        filter.on_request(&request(), &mut headers).unwrap();
        assert_eq!(headers.get("x-real-ip").as_deref(), Some("10.0.0.7:40000"));
        assert_eq!(headers.get("x-orig").as_deref(), Some("GET shop.test/cart"));
        let mut headers = Headers::fixture(Vec::<(String, String)>::new());
        filter.on_response(503, &request(), &mut headers).unwrap();
        assert_eq!(
            headers.get("x-upstream-status").as_deref(),
            Some("503 {ok}")
        );
    }

    #[test]
    fn bad_options_are_config_errors() {
        let cases = [
            (r#"{"request": {"sett": {}}}"#, "sett"),
            (r#"{"response": {"set": {"bad name": "x"}}}"#, "bad name"),
            (r#"{"request": {"set": {"x": "{nope}"}}}"#, "nope"),
            (r#"{"request": {"set": {"x": "{host"}}}"#, "unclosed"),
            (r#"{"request": {"set": {"x": "a}b"}}}"#, "lone"),
            (r#"{"request": {"set": {"x": "{status}"}}}"#, "responses"),
        ];
        for (options, expected) in cases {
            let error = rules(options).unwrap_err();
            assert!(
                error.message().contains(expected),
                "{options}: {}",
                error.message()
            );
        }
        assert_eq!(rules("{}").unwrap(), HeaderRules::default());
    }
}
