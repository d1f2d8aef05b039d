//! Header fields: the table a parsed head's fields are built from, the
//! framing fields read the same way on both sides, and fields written out.

use bytes::{BufMut, Bytes};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Header fields a head may carry; more is refused, as hyper did.
pub const MAX_HEADERS: usize = 100;

/// Why the fields of a head could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldError {
    /// A field lies past what 16-bit offsets reach (a head is at most
    /// 16 KiB plus one read, so this does not happen).
    TooFar,
    /// A name `http` refuses.
    Name,
    /// A value `http` refuses (a NUL, a control byte).
    Value,
}

/// Where each field's name and value sit in a head's bytes: recorded
/// while `httparse`'s borrowed fields are alive, then turned into a
/// [`HeaderMap`] whose values share the head's bytes (no copy per field).
/// Start and length fit `u16`, so the table stays small enough to zero
/// cheaply.
pub struct FieldTable {
    at: [((u16, u16), (u16, u16)); MAX_HEADERS],
    count: usize,
}

// === impl FieldTable ===

impl FieldTable {
    /// Records `fields`, which `httparse` parsed from `head`.
    pub fn record(head: &[u8], fields: &[httparse::Header<'_>]) -> Result<Self, FieldError> {
        let offset = |bytes: &[u8]| Self::offset(head, bytes);
        let mut table = FieldTable {
            at: [((0, 0), (0, 0)); MAX_HEADERS],
            count: fields.len().min(MAX_HEADERS),
        };
        for (slot, field) in table.at.iter_mut().zip(fields) {
            *slot = (offset(field.name.as_bytes())?, offset(field.value)?);
        }
        Ok(table)
    }

    /// Where `part`, a slice of `head`, sits in it: (start, length).
    pub fn offset(head: &[u8], part: &[u8]) -> Result<(u16, u16), FieldError> {
        let start = u16::try_from((part.as_ptr() as usize).wrapping_sub(head.as_ptr() as usize));
        let len = u16::try_from(part.len());
        start
            .and_then(|start| Ok((start, len?)))
            .map_err(|_| FieldError::TooFar)
    }

    /// A slice of `head` recorded as (start, length).
    pub fn slice(head: &Bytes, (start, len): (u16, u16)) -> Bytes {
        let (start, len) = (usize::from(start), usize::from(len));
        if start + len <= head.len() {
            head.slice(start..start + len)
        } else {
            Bytes::new()
        }
    }

    /// The fields as a map over `head`, the bytes they were recorded from,
    /// with room for `extra` more (the forwarded fields the proxy adds).
    pub fn into_map(self, head: &Bytes, extra: usize) -> Result<HeaderMap, FieldError> {
        let mut headers = HeaderMap::with_capacity(self.count + extra);
        for &(name, value) in self.at.iter().take(self.count) {
            let name =
                HeaderName::from_bytes(&Self::slice(head, name)).map_err(|_| FieldError::Name)?;
            let value = HeaderValue::from_maybe_shared(Self::slice(head, value))
                .map_err(|_| FieldError::Value)?;
            headers.append(name, value);
        }
        Ok(headers)
    }
}

/// The items of a comma-separated field, trimmed, empty ones skipped.
fn items(value: &HeaderValue) -> impl Iterator<Item = &[u8]> {
    value
        .as_bytes()
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|item| !item.is_empty())
}

/// The body length the fields state: every `Content-Length` (repeated or
/// listed) must be the same number, written as plain digits.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, &'static str> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let item = item.trim_ascii();
            if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
                return Err("content-length is not a number");
            }
            let parsed = std::str::from_utf8(item)
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
                .ok_or("content-length overflows")?;
            if length.is_some_and(|seen| seen != parsed) {
                return Err("content-lengths disagree");
            }
            length = Some(parsed);
        }
    }
    Ok(length)
}

/// The transfer codings, in order, over every `Transfer-Encoding` field.
pub fn codings(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(items)
}

/// Whether a field `name` lists `token` (case-insensitively).
pub fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &[u8]) -> bool {
    headers
        .get_all(name)
        .iter()
        .flat_map(items)
        .any(|item| item.eq_ignore_ascii_case(token))
}

/// Appends `name: value` lines for `fields`.
pub fn write_fields<'a>(
    fields: impl IntoIterator<Item = (&'a HeaderName, &'a HeaderValue)>,
    out: &mut Vec<u8>,
) {
    for (name, value) in fields {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
}

/// A header map of `fields` in order, for tests of the rules read from it.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub fn field_map(fields: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::field_map as map;
    use super::*;

    #[test]
    fn lengths_must_agree_and_be_digits() {
        assert_eq!(content_length(&map(&[])), Ok(None));
        assert_eq!(
            content_length(&map(&[("content-length", "5, 05")])),
            Ok(Some(5))
        );
        assert!(content_length(&map(&[("content-length", "5"), ("content-length", "6")])).is_err());
        assert!(content_length(&map(&[("content-length", "+5")])).is_err());
        assert!(content_length(&map(&[("content-length", "")])).is_err());
    }

    #[test]
    fn codings_and_tokens_are_read_across_fields() {
        let headers = map(&[
            ("transfer-encoding", "gzip, "),
            ("transfer-encoding", " Chunked"),
            ("connection", "keep-alive, Close"),
        ]);
        let listed: Vec<&[u8]> = codings(&headers).collect();
        assert_eq!(listed, [&b"gzip"[..], b"Chunked"]);
        assert!(has_token(&headers, header::CONNECTION, b"close"));
        assert!(!has_token(&headers, header::CONNECTION, b"upgrade"));
    }
}
