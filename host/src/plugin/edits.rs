//! Header edits a filter asks for: static edits declared once (values are
//! templates the host renders, with no guest call), and the edits a call
//! returns, checked as a whole before any is applied.

use std::net::SocketAddr;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::bindings::filter;
use crate::upstream::{RequestFacts, RequestField, RequestNeeds, RequestView};

/// One checked edit, ready to apply.
#[derive(Debug, Clone)]
pub struct Edit {
    action: Action,
    name: HeaderName,
    value: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Set,
    Append,
    Remove,
}

/// An edit's value: a literal, built once, or a template rendered per
/// message.
#[derive(Debug, Clone)]
enum Value {
    Literal(HeaderValue),
    Template(Vec<Piece>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Client(ClientPart),
    Field(RequestField),
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientPart {
    Ip,
    Port,
}

/// Where a template's values come from: the request itself (request
/// phase), or what was kept of it (response phase).
pub enum Values<'a> {
    /// The request being filtered.
    Request(&'a RequestView),
    /// The values kept for the response phase, taken for `needs`, and the
    /// response status.
    Kept {
        /// The kept values.
        facts: &'a RequestFacts,
        /// What they were taken for.
        needs: &'a RequestNeeds,
        /// The response status.
        status: StatusCode,
    },
}

/// The template fields, as operators write them.
const FIELDS: &str = "client-ip, client-port, method, host, path, query, listener, sni, status";

// === impl Edit ===

impl Edit {
    /// A static edit as declared: the value is a template. `response`
    /// allows `{status}`.
    pub fn declared(edit: filter::HeaderEdit, response: bool) -> Result<Self, String> {
        let name = edit_name(&edit.name)?;
        let pieces = parse_template(&edit.value)?;
        if !response && pieces.contains(&Piece::Status) {
            return Err(format!(
                "`{{status}}` is only known on responses, not in request edit `{name}`"
            ));
        }
        let value = match pieces.as_slice() {
            [] => Value::Literal(HeaderValue::from_static("")),
            [Piece::Text(text)] => Value::Literal(
                HeaderValue::try_from(text.as_str())
                    .map_err(|_| format!("invalid value for header `{name}`"))?,
            ),
            _ => Value::Template(pieces),
        };
        Ok(Edit {
            action: action(edit.action),
            name,
            value,
        })
    }

    /// An edit a call returned: the value is literal.
    pub fn returned(edit: filter::HeaderEdit) -> Result<Self, String> {
        let name = edit_name(&edit.name)?;
        let value = HeaderValue::try_from(edit.value)
            .map_err(|_| format!("invalid value for header `{name}`"))?;
        Ok(Edit {
            action: action(edit.action),
            name,
            value: Value::Literal(value),
        })
    }

    /// Every request field this edit's template reads.
    pub fn fields(&self) -> impl Iterator<Item = RequestField> + '_ {
        let pieces = match &self.value {
            Value::Template(pieces) => pieces.as_slice(),
            Value::Literal(_) => &[],
        };
        pieces.iter().filter_map(|piece| match piece {
            Piece::Field(field) => Some(*field),
            _ => None,
        })
    }

    fn render(&self, values: &Values<'_>) -> Result<HeaderValue, String> {
        let pieces = match &self.value {
            Value::Literal(value) => return Ok(value.clone()),
            Value::Template(pieces) => pieces,
        };
        let mut out = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Client(part) => {
                    let client = values.client();
                    match part {
                        ClientPart::Ip => out.push_str(&client.ip().to_string()),
                        ClientPart::Port => out.push_str(&client.port().to_string()),
                    }
                }
                Piece::Field(field) => {
                    if let Some(value) = values.field(*field) {
                        out.push_str(&value);
                    }
                }
                Piece::Status => {
                    if let Values::Kept { status, .. } = values {
                        out.push_str(status.as_str());
                    }
                }
            }
        }
        HeaderValue::try_from(out)
            .map_err(|_| format!("the rendered value of header `{}` is invalid", self.name))
    }
}

/// Applies `edits` to `headers`, all or nothing: every value is rendered
/// before the first change is made.
pub fn apply(edits: &[Edit], headers: &mut HeaderMap, values: &Values<'_>) -> Result<(), String> {
    let rendered = edits
        .iter()
        .map(|edit| edit.render(values))
        .collect::<Result<Vec<_>, _>>()?;
    for (edit, value) in edits.iter().zip(rendered) {
        match edit.action {
            Action::Set => {
                headers.insert(edit.name.clone(), value);
            }
            Action::Append => {
                headers.append(edit.name.clone(), value);
            }
            Action::Remove => {
                headers.remove(&edit.name);
            }
        }
    }
    Ok(())
}

/// Checks every edit a call returned; one bad edit refuses them all.
pub fn check_returned(edits: Vec<filter::HeaderEdit>) -> Result<Vec<Edit>, String> {
    edits.into_iter().map(Edit::returned).collect()
}

fn action(action: filter::EditAction) -> Action {
    match action {
        filter::EditAction::Set => Action::Set,
        filter::EditAction::Append => Action::Append,
        filter::EditAction::Remove => Action::Remove,
    }
}

fn edit_name(name: &str) -> Result<HeaderName, String> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("invalid header name `{name}`"))?;
    if crate::header_rules::is_proxy_owned(&name) {
        return Err(format!(
            "header `{name}` belongs to the proxy and cannot be changed"
        ));
    }
    Ok(name)
}

/// `text` as pieces: `{field}` placeholders, `{{` and `}}` for braces.
fn parse_template(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
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
            pieces.push(piece_named(name)?);
            rest = tail;
        } else {
            return Err(format!("lone `}}` in `{text}` (write `}}}}` for a brace)"));
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

fn piece_named(name: &str) -> Result<Piece, String> {
    Ok(match name {
        "client-ip" => Piece::Client(ClientPart::Ip),
        "client-port" => Piece::Client(ClientPart::Port),
        "method" => Piece::Field(RequestField::Method),
        "host" => Piece::Field(RequestField::Host),
        "path" => Piece::Field(RequestField::Path),
        "query" => Piece::Field(RequestField::Query),
        "listener" => Piece::Field(RequestField::Listener),
        "sni" => Piece::Field(RequestField::Sni),
        "status" => Piece::Status,
        other => return Err(format!("unknown field `{{{other}}}` (fields: {FIELDS})")),
    })
}

// === impl Values ===

impl Values<'_> {
    fn client(&self) -> SocketAddr {
        match self {
            Values::Request(view) => view.client,
            Values::Kept { facts, .. } => facts.client,
        }
    }

    fn field(&self, field: RequestField) -> Option<String> {
        match self {
            Values::Request(view) => field.read(view),
            Values::Kept { facts, needs, .. } => facts.field(needs, field).map(str::to_owned),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::upstream::Protocol;

    fn edit(action: filter::EditAction, name: &str, value: &str) -> filter::HeaderEdit {
        filter::HeaderEdit {
            action,
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }

    fn view() -> RequestView {
        let (head, ()) = http::Request::builder()
            .method("GET")
            .uri("/cart?x=1")
            .header("host", "shop.test")
            .body(())
            .unwrap()
            .into_parts();
        RequestView {
            protocol: Protocol::Http,
            listener: "web".into(),
            client: "192.0.2.7:4000".parse().unwrap(),
            sni: None,
            tls: None,
            http: Some(Arc::new(head)),
        }
    }

    #[test]
    fn templates_render_request_values_and_braces() {
        use filter::EditAction::Set;
        let edits = [
            Edit::declared(edit(Set, "x-real-ip", "{client-ip}:{client-port}"), false).unwrap(),
            Edit::declared(
                edit(Set, "x-orig", "{method} {host}{path}?{query} {{ok}}"),
                false,
            )
            .unwrap(),
        ];
        let mut headers = HeaderMap::new();
        apply(&edits, &mut headers, &Values::Request(&view())).unwrap();
        assert_eq!(headers["x-real-ip"], "192.0.2.7:4000");
        assert_eq!(headers["x-orig"], "GET shop.test/cart?x=1 {ok}");
    }

    #[test]
    fn response_templates_read_kept_values_and_status() {
        use filter::EditAction::Append;
        let edit = Edit::declared(edit(Append, "x-upstream", "{status} {path}"), true).unwrap();
        let needs = RequestNeeds::default().with(RequestField::Path);
        let facts = needs.extract(&view());
        let mut headers = HeaderMap::new();
        let values = Values::Kept {
            facts: &facts,
            needs: &needs,
            status: StatusCode::BAD_GATEWAY,
        };
        apply(&[edit], &mut headers, &values).unwrap();
        assert_eq!(headers["x-upstream"], "502 /cart");
    }

    #[test]
    fn bad_declarations_are_refused_with_a_reason() {
        use filter::EditAction::Set;
        let cases = [
            ("x", "{nope}", "unknown field `{nope}`"),
            ("x", "{host", "unclosed"),
            ("x", "a}b", "lone"),
            ("x", "{status}", "only known on responses"),
            ("bad name", "v", "invalid header name"),
            ("content-length", "1", "belongs to the proxy"),
            ("x", "line\nbreak", "invalid value"),
        ];
        for (name, value, expected) in cases {
            let error = Edit::declared(edit(Set, name, value), false).unwrap_err();
            assert!(error.contains(expected), "{name}: {value}: {error}");
        }
    }

    #[test]
    fn one_bad_returned_edit_refuses_them_all() {
        use filter::EditAction::{Remove, Set};
        let error = check_returned(vec![
            edit(Set, "x-first", "1"),
            edit(Remove, "x-gone", ""),
            edit(Set, "x-bad", "line\nbreak"),
        ])
        .unwrap_err();
        assert!(error.contains("x-bad"), "{error}");
        let good = check_returned(vec![edit(Set, "x-first", "1"), edit(Remove, "x-gone", "")]);
        let mut headers = HeaderMap::new();
        headers.insert("x-gone", HeaderValue::from_static("v"));
        apply(&good.unwrap(), &mut headers, &Values::Request(&view())).unwrap();
        assert_eq!(headers["x-first"], "1");
        assert!(!headers.contains_key("x-gone"));
    }
}
