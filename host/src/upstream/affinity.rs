//! Client affinity requested by a balancer: the cookie the host sets so
//! that a client returns to the backend that served it.

use http::HeaderValue;

/// A cookie to set on the response, valued with the serving backend's
/// token. Built only through [`AffinityCookie::new`], which validates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinityCookie {
    name: String,
    max_age_seconds: Option<u32>,
    path: String,
    secure: bool,
    http_only: bool,
    same_site: Option<SameSite>,
}

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent only on requests from the same site.
    Strict,
    /// Also on top-level navigations from other sites.
    Lax,
    /// Sent on cross-site requests too; browsers require `Secure` with it.
    None,
}

/// Why a balancer's cookie was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AffinityCookieError {
    /// Not an RFC 6265 token of letters, digits, `-` and `_`.
    #[error("cookie name `{0}` must be letters, digits, `-` or `_`")]
    Name(String),
    /// Not starting with `/`, or holding `;` or control characters.
    #[error("cookie path `{0}` must start with `/` and hold no `;` or control characters")]
    Path(String),
    /// `SameSite=None` without `Secure`: browsers drop such a cookie.
    #[error("cookie `{0}` has SameSite=None without Secure, which browsers refuse")]
    SameSiteNoneWithoutSecure(String),
}

// === impl AffinityCookie ===

impl AffinityCookie {
    /// Validates the attributes a balancer asked for.
    pub fn new(
        name: String,
        max_age_seconds: Option<u32>,
        path: String,
        secure: bool,
        http_only: bool,
    ) -> Result<Self, AffinityCookieError> {
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(AffinityCookieError::Name(name));
        }
        let path_ok = path.starts_with('/')
            && path
                .bytes()
                .all(|b| b != b';' && b.is_ascii_graphic() || b == b' ');
        if !path_ok {
            return Err(AffinityCookieError::Path(path));
        }
        Ok(AffinityCookie {
            name,
            max_age_seconds,
            path,
            secure,
            http_only,
            same_site: None,
        })
    }

    /// The same cookie with a `SameSite` attribute.
    pub fn with_same_site(self, same_site: SameSite) -> Result<Self, AffinityCookieError> {
        if same_site == SameSite::None && !self.secure {
            return Err(AffinityCookieError::SameSiteNoneWithoutSecure(self.name));
        }
        Ok(AffinityCookie {
            same_site: Some(same_site),
            ..self
        })
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `Set-Cookie` value naming the backend with `token`.
    pub fn set_cookie(&self, token: &str) -> Option<HeaderValue> {
        let mut value = format!("{}={token}; Path={}", self.name, self.path);
        if let Some(seconds) = self.max_age_seconds {
            value.push_str(&format!("; Max-Age={seconds}"));
        }
        if self.http_only {
            value.push_str("; HttpOnly");
        }
        if self.secure {
            value.push_str("; Secure");
        }
        match self.same_site {
            Some(SameSite::Strict) => value.push_str("; SameSite=Strict"),
            Some(SameSite::Lax) => value.push_str("; SameSite=Lax"),
            Some(SameSite::None) => value.push_str("; SameSite=None"),
            None => {}
        }
        HeaderValue::from_str(&value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_attribute() {
        let cookie =
            AffinityCookie::new("srv".into(), Some(60), "/app".into(), true, true).unwrap();
        assert_eq!(
            cookie.set_cookie("00ff").unwrap(),
            "srv=00ff; Path=/app; Max-Age=60; HttpOnly; Secure"
        );
        let session = AffinityCookie::new("srv".into(), None, "/".into(), false, false).unwrap();
        assert_eq!(session.set_cookie("1").unwrap(), "srv=1; Path=/");
        let lax = session.clone().with_same_site(SameSite::Lax).unwrap();
        assert_eq!(lax.set_cookie("1").unwrap(), "srv=1; Path=/; SameSite=Lax");
    }

    #[test]
    fn same_site_none_needs_secure() {
        let plain = AffinityCookie::new("srv".into(), None, "/".into(), false, false).unwrap();
        assert_eq!(
            plain.with_same_site(SameSite::None),
            Err(AffinityCookieError::SameSiteNoneWithoutSecure("srv".into()))
        );
        let secure = AffinityCookie::new("srv".into(), None, "/".into(), true, false).unwrap();
        assert_eq!(
            secure
                .with_same_site(SameSite::None)
                .unwrap()
                .set_cookie("1")
                .unwrap(),
            "srv=1; Path=/; Secure; SameSite=None"
        );
    }

    #[test]
    fn refuses_names_and_paths_that_would_break_the_header() {
        assert!(AffinityCookie::new("a b".into(), None, "/".into(), false, false).is_err());
        assert!(AffinityCookie::new("a=b".into(), None, "/".into(), false, false).is_err());
        assert!(
            AffinityCookie::new("ok".into(), None, "/x; Domain=evil".into(), false, false).is_err()
        );
        assert!(AffinityCookie::new("ok".into(), None, "x".into(), false, false).is_err());
        assert!(AffinityCookie::new("ok".into(), None, "/a\r\nb".into(), false, false).is_err());
    }
}
