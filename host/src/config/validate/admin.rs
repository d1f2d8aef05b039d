//! `[admin]`: where the admin API listens, and the token it asks for.

use super::Validator;
use super::raw::RawAdmin;
use crate::config::*;

/// Shorter tokens are guessable; 16 characters of a random alphabet are
/// about 96 bits.
const MIN_TOKEN_LENGTH: usize = 16;

// === impl Validator ===

impl Validator<'_> {
    pub(super) fn admin(&mut self, raw: &RawAdmin) -> Option<AdminConfig> {
        let address = self.socket_addr("admin.address".to_owned(), &raw.address);
        let token = match &raw.token {
            None => None,
            Some(token) => {
                let text = token.get_ref();
                if text.len() < MIN_TOKEN_LENGTH || !text.bytes().all(|b| b.is_ascii_graphic()) {
                    return self.fail(
                        "admin.token".to_owned(),
                        token.span(),
                        format!(
                            "a token must be at least {MIN_TOKEN_LENGTH} printable characters, without spaces"
                        ),
                    );
                }
                Some(std::sync::Arc::from(text.as_str()))
            }
        };
        let address = address?;
        if token.is_none() && !address.ip().is_loopback() {
            // The admin API drains backends and reloads the config: off the
            // loopback interface nobody may reach it without the token.
            return self.fail(
                "admin.address".to_owned(),
                raw.address.span(),
                format!(
                    "`{address}` is not a loopback address: set `admin.token`, which every request must then carry"
                ),
            );
        }
        Some(AdminConfig { address, token })
    }
}
