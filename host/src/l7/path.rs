//! The one path of a request, normalised before routing.
//!
//! A prefix route for `/admin` must also catch `/%61dmin`, `//admin`,
//! `/./admin` and `/z/../admin`, which backends serve as `/admin`. So the
//! path is normalised once (percent-decoding of unreserved characters,
//! merging of repeated slashes, dot-segment removal per RFC 3986 §5.2.4;
//! each switchable per listener, as Envoy's `normalize_path` and
//! `merge_slashes`), routes match the result, and the backend receives the
//! same result. Encoded slashes (`%2F`, `%5C`) are never decoded: they are
//! kept as data (and not routed on as separators) or refused, by policy. A
//! raw backslash, a broken escape or an encoded control byte is refused.
//! The query is not touched.

use std::borrow::Cow;

/// How a listener normalises request paths. Every step is on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathPolicy {
    /// `%61` → `a`: escapes of letters, digits, `-`, `.`, `_`, `~` are
    /// decoded; other escapes get uppercase hex digits.
    pub decode_unreserved: bool,
    /// `/a/./b/../c` → `/a/c`.
    pub remove_dot_segments: bool,
    /// `//a///b` → `/a/b`.
    pub merge_slashes: bool,
    /// What an encoded `/` or `\` gets.
    pub encoded_slashes: EncodedSlashes,
}

/// The policy for `%2F` and `%5C` in a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodedSlashes {
    /// Forwarded encoded (uppercase hex), as data inside a segment: routes
    /// see `/a%2Fb` as one segment. Most backends do the same.
    Keep,
    /// Refused with 400, for backends that would decode them into
    /// separators after routing.
    Reject,
}

/// Why a path was refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not an absolute path.
    #[error("the path does not start with `/`")]
    NotAbsolute,
    /// `%` not followed by two hex digits.
    #[error("the path has a broken percent-escape")]
    BadEscape,
    /// A raw `\`, which some backends read as `/`.
    #[error("the path has a backslash")]
    Backslash,
    /// `%2F` or `%5C` under [`EncodedSlashes::Reject`].
    #[error("the path has an encoded slash")]
    EncodedSlash,
    /// An escape of a control byte (`%00`, `%0A`, ...).
    #[error("the path has an encoded control character")]
    EncodedControl,
}

// === impl PathPolicy ===

impl Default for PathPolicy {
    fn default() -> Self {
        PathPolicy {
            decode_unreserved: true,
            remove_dot_segments: true,
            merge_slashes: true,
            encoded_slashes: EncodedSlashes::Keep,
        }
    }
}

impl PathPolicy {
    /// `path` normalised, borrowed when it already was (the usual case).
    pub fn normalize<'a>(&self, path: &'a str) -> Result<Cow<'a, str>, PathError> {
        if !path.starts_with('/') {
            return Err(PathError::NotAbsolute);
        }
        if path.contains('\\') {
            return Err(PathError::Backslash);
        }
        let mut normal = Cow::Borrowed(path);
        if path.contains('%') {
            normal = Cow::Owned(self.unescape(path)?);
        }
        if self.merge_slashes && normal.contains("//") {
            normal = Cow::Owned(merge_slashes(&normal));
        }
        if self.remove_dot_segments && has_dot_segment(&normal) {
            normal = Cow::Owned(remove_dot_segments(&normal));
        }
        Ok(normal)
    }

    /// Decodes unreserved escapes (when asked), uppercases the others,
    /// applies the encoded-slash policy, refuses broken and control escapes.
    fn unescape(&self, path: &str) -> Result<String, PathError> {
        let mut out = String::with_capacity(path.len());
        let mut chars = path.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let (high, low) = match (chars.next(), chars.next()) {
                (Some(high), Some(low)) => (high, low),
                _ => return Err(PathError::BadEscape),
            };
            let (Some(h), Some(l)) = (high.to_digit(16), low.to_digit(16)) else {
                return Err(PathError::BadEscape);
            };
            // Two hex digits: always below 256.
            let byte = u8::try_from(h * 16 + l).unwrap_or(0);
            match byte {
                b'/' | b'\\' if self.encoded_slashes == EncodedSlashes::Reject => {
                    return Err(PathError::EncodedSlash);
                }
                0..=0x1f | 0x7f => return Err(PathError::EncodedControl),
                _ if self.decode_unreserved && is_unreserved(byte) => out.push(char::from(byte)),
                _ => {
                    out.push('%');
                    out.push(high.to_ascii_uppercase());
                    out.push(low.to_ascii_uppercase());
                }
            }
        }
        Ok(out)
    }
}

/// RFC 3986 §2.3.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

fn has_dot_segment(path: &str) -> bool {
    path.split('/')
        .any(|segment| segment == "." || segment == "..")
}

/// RFC 3986 §5.2.4 on an absolute path: `.` segments dropped, `..` drops
/// the segment before it (never above the root); a path ending in a dot
/// segment keeps its trailing slash.
fn remove_dot_segments(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path.split('/').skip(1) {
        trailing_slash = false;
        match segment {
            "." => trailing_slash = true,
            ".." => {
                kept.pop();
                trailing_slash = true;
            }
            segment => kept.push(segment),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests;
