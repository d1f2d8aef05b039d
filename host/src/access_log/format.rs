//! An [`Entry`] as a JSON object or a logfmt line.

use std::fmt::Write as _;

use super::{Entry, Kind};
use crate::config::AccessLogFormat;

/// A value of a line.
enum Field<'a> {
    Text(&'a str),
    Number(u64),
    Seconds(f64),
}

/// Appends `entry` to `line` (without the newline).
pub fn write(entry: &Entry, format: AccessLogFormat, line: &mut String) {
    let time = humantime::format_rfc3339_millis(entry.at).to_string();
    let client = entry.client.to_string();
    let kind = match entry.kind {
        Kind::Http => "http",
        Kind::Tcp => "tcp",
    };
    let mut fields: Vec<(&'static str, Field<'_>)> = vec![
        ("time", Field::Text(&time)),
        ("kind", Field::Text(kind)),
        ("listener", Field::Text(&entry.listener)),
        ("client", Field::Text(&client)),
    ];
    fn text<'a>(name: &'static str, value: Option<&'a str>) -> Option<(&'static str, Field<'a>)> {
        value.map(|value| (name, Field::Text(value)))
    }
    fields.extend(text("route", entry.route.as_deref()));
    fields.extend(text("pool", entry.pool.as_deref()));
    fields.extend(text("backend", entry.backend.as_deref()));
    if let Some(method) = &entry.method {
        fields.push(("method", Field::Text(method.as_str())));
    }
    fields.extend(text("path", entry.path.as_deref()));
    if let Some(status) = entry.status {
        fields.push(("status", Field::Number(u64::from(status))));
    }
    if let Some(reason) = entry.close_reason {
        fields.push(("close_reason", Field::Text(reason)));
    }
    fields.push(("duration", Field::Seconds(entry.duration.as_secs_f64())));
    if let Some(upstream) = entry.upstream_duration {
        fields.push(("upstream_duration", Field::Seconds(upstream.as_secs_f64())));
    }
    fields.push(("bytes_in", Field::Number(entry.bytes_in)));
    fields.push(("bytes_out", Field::Number(entry.bytes_out)));
    fields.extend(text("request_id", entry.request_id.as_deref()));
    if entry.kind == Kind::Http {
        fields.push(("retries", Field::Number(u64::from(entry.retries))));
    }
    fields.extend(text("verdict", entry.verdict.as_deref()));
    match format {
        AccessLogFormat::Json => json(&fields, line),
        AccessLogFormat::Logfmt => logfmt(&fields, line),
    }
}

fn json(fields: &[(&str, Field<'_>)], line: &mut String) {
    line.push('{');
    for (n, (name, value)) in fields.iter().enumerate() {
        if n > 0 {
            line.push(',');
        }
        let _ = write!(line, "\"{name}\":");
        match value {
            Field::Text(text) => json_string(text, line),
            Field::Number(number) => {
                let _ = write!(line, "{number}");
            }
            Field::Seconds(seconds) => {
                let _ = write!(line, "{seconds:.6}");
            }
        }
    }
    line.push('}');
}

/// `text` as a JSON string: quotes, backslashes and control characters
/// escaped (a path or header may hold any of them).
fn json_string(text: &str, line: &mut String) {
    line.push('"');
    for c in text.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(line, "\\u{:04x}", u32::from(c));
            }
            c => line.push(c),
        }
    }
    line.push('"');
}

fn logfmt(fields: &[(&str, Field<'_>)], line: &mut String) {
    for (n, (name, value)) in fields.iter().enumerate() {
        if n > 0 {
            line.push(' ');
        }
        let _ = write!(line, "{name}=");
        match value {
            Field::Text(text) if needs_quotes(text) => json_string(text, line),
            Field::Text(text) => line.push_str(text),
            Field::Number(number) => {
                let _ = write!(line, "{number}");
            }
            Field::Seconds(seconds) => {
                let _ = write!(line, "{seconds:.6}");
            }
        }
    }
}

/// Whether a logfmt value must be quoted: empty, or holding a space, `=`,
/// a quote or a control character.
fn needs_quotes(text: &str) -> bool {
    text.is_empty()
        || text
            .chars()
            .any(|c| c == ' ' || c == '=' || c == '"' || c == '\\' || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn entry() -> Entry {
        Entry {
            at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            kind: Kind::Http,
            listener: "web".into(),
            route: Some("api".into()),
            pool: Some("main".into()),
            backend: Some("b1".into()),
            client: "127.0.0.1:4000".parse().unwrap(),
            method: Some(http::Method::GET),
            path: Some("/a b?q=\"1\"".into()),
            status: Some(200),
            close_reason: None,
            duration: Duration::from_micros(1500),
            upstream_duration: Some(Duration::from_micros(1200)),
            bytes_in: 0,
            bytes_out: 2,
            request_id: Some("abc".into()),
            retries: 1,
            verdict: None,
        }
    }

    #[test]
    fn json_lines_parse_with_every_field() {
        let mut line = String::new();
        write(&entry(), AccessLogFormat::Json, &mut line);
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(parsed["path"], "/a b?q=\"1\"");
        assert_eq!(parsed["status"], 200);
        assert_eq!(parsed["retries"], 1);
        assert!((parsed["duration"].as_f64().unwrap() - 0.0015).abs() < 1e-9);
    }

    #[test]
    fn logfmt_quotes_what_needs_it() {
        let mut line = String::new();
        write(&entry(), AccessLogFormat::Logfmt, &mut line);
        assert!(line.starts_with("time=2023-11-14T22:13:20.123Z kind=http listener=web client=127.0.0.1:4000 route=api"), "{line}");
        assert!(
            line.contains(r#" path="/a b?q=\"1\"" status=200 "#),
            "{line}"
        );
        assert!(line.contains(" duration=0.001500 upstream_duration=0.001200 bytes_in=0 bytes_out=2 request_id=abc retries=1"), "{line}");
    }
}
