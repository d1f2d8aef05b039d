//! `GET /config`: the config serving now, as the file said it, with
//! secrets redacted.
//!
//! The file's own text is the truth an operator compares against; the
//! validated types have defaults filled in and names resolved, which
//! `/status` shows. Redacted are the admin token, any key whose name says
//! it holds a secret (plugin options included: a plugin's API key is as
//! secret as ours), and any value holding a PEM private key.

use serde_json::{Value, json};

use crate::plan::Plan;

/// What a redacted value reads as.
const REDACTED: &str = "[redacted]";

/// Key names (lowercase, `-` and `_` alike) whose values are secrets.
const SECRET_WORDS: [&str; 6] = [
    "token",
    "password",
    "secret",
    "api-key",
    "apikey",
    "credential",
];

/// The serving config of `plan` as JSON: its file, generation and
/// contents.
pub fn render(plan: &Plan) -> Value {
    let source = plan.source();
    let config = match source.text().parse::<toml::Table>() {
        Ok(table) => {
            let mut value = serde_json::to_value(table).unwrap_or(Value::Null);
            redact(&mut value);
            value
        }
        // A serving config parsed once; this is not reached.
        Err(_) => Value::Null,
    };
    json!({
        "file": source.path().display().to_string(),
        "generation": plan.generation(),
        "config": config,
    })
}

/// Replaces every secret in `value`, at any depth.
fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if is_secret_key(key) && !value.is_object() {
                    *value = Value::from(REDACTED);
                } else {
                    redact(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(text) if text.contains("PRIVATE KEY") => *text = REDACTED.to_owned(),
        _ => {}
    }
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('_', "-");
    SECRET_WORDS.iter().any(|word| key.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth_and_nothing_else() {
        let mut value = json!({
            "admin": { "address": "127.0.0.1:9000", "token": "0123456789abcdef" },
            "filters": { "auth": { "options": {
                "upstream_API_KEY": "k", "db-password": "p", "header": "x-user",
                "keys": ["-----BEGIN PRIVATE KEY-----\nabc"],
            } } },
            "pools": { "web": { "backends": [{ "address": "127.0.0.1:1" }] } },
        });
        redact(&mut value);
        assert_eq!(value["admin"]["token"], REDACTED);
        assert_eq!(value["admin"]["address"], "127.0.0.1:9000");
        let options = &value["filters"]["auth"]["options"];
        assert_eq!(options["upstream_API_KEY"], REDACTED);
        assert_eq!(options["db-password"], REDACTED);
        assert_eq!(options["header"], "x-user");
        assert_eq!(options["keys"][0], REDACTED);
        assert_eq!(
            value["pools"]["web"]["backends"][0]["address"],
            "127.0.0.1:1"
        );
    }
}
