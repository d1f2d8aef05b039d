//! The admin token: with `[admin] token` set, every request carries it as
//! `Authorization: Bearer TOKEN` or is answered 401.

use http::{HeaderMap, header};

/// Whether `headers` carry `token` as a bearer token. Compared in time
/// that does not depend on where the first difference is, so the token
/// cannot be guessed a character at a time.
pub fn carries(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, credentials) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| credentials.trim())
        })
    else {
        return false;
    };
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |differs, (a, b)| differs | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, authorization.parse().unwrap());
        headers
    }

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let token = "s3cret-s3cret-s3cret";
        assert!(carries(&with("Bearer s3cret-s3cret-s3cret"), token));
        assert!(carries(&with("bearer s3cret-s3cret-s3cret"), token));
        assert!(!carries(&with("Bearer s3cret-s3cret-s3creT"), token));
        assert!(!carries(&with("Bearer s3cret"), token));
        assert!(!carries(&with("Basic s3cret-s3cret-s3cret"), token));
        assert!(!carries(&HeaderMap::new(), token));
    }
}
