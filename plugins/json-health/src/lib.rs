//! `builtin:json-health`: reads a JSON health document (Spring Boot's
//! `/actuator/health`, a `{"status":"ok"}` endpoint) and maps it to a
//! verdict, a numeric load field to a degraded weight.
//!
//! Options:
//! - `field`: the status field, a dotted path (default `"status"`).
//! - `healthy`: values of it that mean healthy (default `["ok", "pass",
//!   "up", "healthy"]`, compared case-insensitively).
//! - `degraded`: values that mean degraded (default `["degraded", "warn"]`).
//! - `load-field`: a dotted path to a number in [0, 1]; a degraded backend
//!   keeps `1 - load` of its weight (at least 0.01).
//! - `degraded-weight`: the weight factor of a degraded backend when no
//!   load is given (default 0.5).
//!
//! Anything else (another value, no such field, a status outside 200-399,
//! a body that is not JSON) is unhealthy, with the reason saying which.

use bascule_guest_sdk::health::{HealthInterpreter, ProbeKind, ProbeNeeds, ProbeOutcome, Verdict};
use bascule_guest_sdk::{Error, Options};
use serde::Deserialize;
use serde_json::Value;

/// The configured reading of the document.
#[derive(Debug, Clone)]
pub struct JsonHealth {
    field: Vec<String>,
    healthy: Vec<String>,
    degraded: Vec<String>,
    load_field: Option<Vec<String>>,
    degraded_weight: f32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Raw {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    healthy: Option<Vec<String>>,
    #[serde(default)]
    degraded: Option<Vec<String>>,
    #[serde(default)]
    load_field: Option<String>,
    #[serde(default)]
    degraded_weight: Option<f32>,
}

/// The smallest weight factor a load maps to: a fully loaded backend still
/// gets a trickle, so that it is seen to recover.
const MIN_FACTOR: f32 = 0.01;

fn path(dotted: &str) -> Result<Vec<String>, Error> {
    let parts: Vec<String> = dotted.split('.').map(str::to_owned).collect();
    if parts.iter().any(String::is_empty) {
        return Err(Error::new(format!("`{dotted}` is not a dotted field path")));
    }
    Ok(parts)
}

fn lookup<'a>(document: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(document, |value, key| value.get(key))
}

impl HealthInterpreter for JsonHealth {
    fn configure(options: &Options, kind: ProbeKind) -> Result<Self, Error> {
        if kind != ProbeKind::Http {
            return Err(Error::new("json-health reads HTTP response bodies"));
        }
        let raw: Raw = options.parse()?;
        let lower = |values: Vec<String>| values.into_iter().map(|v| v.to_lowercase()).collect();
        let degraded_weight = raw.degraded_weight.unwrap_or(0.5);
        if !(degraded_weight > 0.0 && degraded_weight <= 1.0) {
            return Err(Error::new("`degraded-weight` must be in (0, 1]"));
        }
        Ok(JsonHealth {
            field: path(raw.field.as_deref().unwrap_or("status"))?,
            healthy: lower(
                raw.healthy
                    .unwrap_or_else(|| ["ok", "pass", "up", "healthy"].map(str::to_owned).to_vec()),
            ),
            degraded: lower(
                raw.degraded
                    .unwrap_or_else(|| ["degraded", "warn"].map(str::to_owned).to_vec()),
            ),
            load_field: raw.load_field.as_deref().map(path).transpose()?,
            degraded_weight,
        })
    }

    fn needs(&self) -> ProbeNeeds {
        ProbeNeeds::default().body()
    }

    fn interpret(&mut self, outcome: &ProbeOutcome) -> Verdict {
        let status = match (outcome.status, &outcome.error) {
            (Some(status), _) => status,
            (None, Some(error)) => return Verdict::unhealthy(error.clone()),
            (None, None) => return Verdict::unhealthy("no response"),
        };
        if !(200..=399).contains(&status) {
            return Verdict::unhealthy(format!("status {status}"));
        }
        let document: Value = match serde_json::from_slice(&outcome.body) {
            Ok(document) => document,
            Err(e) => return Verdict::unhealthy(format!("body is not JSON: {e}")),
        };
        let field = self.field.join(".");
        let Some(value) = lookup(&document, &self.field).and_then(Value::as_str) else {
            return Verdict::unhealthy(format!("no text field `{field}`"));
        };
        let value = value.to_lowercase();
        if self.healthy.contains(&value) {
            return Verdict::healthy(format!("{field} = {value}"));
        }
        if !self.degraded.contains(&value) {
            return Verdict::unhealthy(format!("{field} = {value}"));
        }
        let load = self
            .load_field
            .as_ref()
            .and_then(|path| lookup(&document, path))
            .and_then(Value::as_f64);
        match load {
            // A load in [0, 1] leaves `1 - load` of the weight.
            #[allow(clippy::cast_possible_truncation)]
            Some(load) if (0.0..=1.0).contains(&load) => {
                let factor = ((1.0 - load) as f32).max(MIN_FACTOR);
                Verdict::degraded(factor, format!("{field} = {value}, load {load}"))
            }
            _ => Verdict::degraded(self.degraded_weight, format!("{field} = {value}")),
        }
    }
}

bascule_guest_sdk::export_health_interpreter!(JsonHealth);

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(options: &str) -> JsonHealth {
        JsonHealth::configure(&Options::from_json(options), ProbeKind::Http).unwrap()
    }

    fn judge(interpreter: &mut JsonHealth, status: u16, body: &str) -> Verdict {
        interpreter.interpret(&ProbeOutcome::http(status).with_body(body))
    }

    #[test]
    fn status_field_decides() {
        let mut json = configured("{}");
        assert_eq!(
            judge(&mut json, 200, r#"{"status":"OK"}"#),
            Verdict::healthy("status = ok")
        );
        assert_eq!(
            judge(&mut json, 200, r#"{"status":"down"}"#),
            Verdict::unhealthy("status = down")
        );
        assert_eq!(
            judge(&mut json, 200, r#"{"state":"ok"}"#),
            Verdict::unhealthy("no text field `status`")
        );
        assert_eq!(
            judge(&mut json, 503, r#"{"status":"ok"}"#),
            Verdict::unhealthy("status 503")
        );
        assert!(matches!(
            judge(&mut json, 200, "<html>"),
            Verdict::Unhealthy { .. }
        ));
    }

    #[test]
    fn load_maps_to_a_degraded_weight() {
        let mut json = configured(r#"{"load-field": "load"}"#);
        let Verdict::Degraded { weight_factor, .. } =
            judge(&mut json, 200, r#"{"status":"degraded","load":0.8}"#)
        else {
            panic!("degraded expected");
        };
        assert!((weight_factor - 0.2).abs() < 1e-6, "{weight_factor}");
        let Verdict::Degraded { weight_factor, .. } =
            judge(&mut json, 200, r#"{"status":"degraded","load":1.0}"#)
        else {
            panic!("degraded expected");
        };
        assert!((weight_factor - MIN_FACTOR).abs() < 1e-6);
        let Verdict::Degraded { weight_factor, .. } = judge(&mut json, 200, r#"{"status":"warn"}"#)
        else {
            panic!("degraded expected");
        };
        assert!((weight_factor - 0.5).abs() < 1e-6);
    }

    #[test]
    fn nested_fields_and_custom_values() {
        let mut json = configured(
            r#"{"field": "health.state", "healthy": ["green"], "degraded": ["yellow"]}"#,
        );
        assert!(matches!(
            judge(&mut json, 200, r#"{"health":{"state":"green"}}"#),
            Verdict::Healthy { .. }
        ));
        assert!(matches!(
            judge(&mut json, 200, r#"{"health":{"state":"yellow"}}"#),
            Verdict::Degraded { .. }
        ));
        assert!(matches!(
            judge(&mut json, 200, r#"{"health":{"state":"red"}}"#),
            Verdict::Unhealthy { .. }
        ));
    }

    #[test]
    fn bad_options_are_refused() {
        for options in [
            r#"{"field": "a..b"}"#,
            r#"{"degraded-weight": 0}"#,
            r#"{"degraded-weight": 1.5}"#,
            r#"{"fields": "x"}"#,
        ] {
            assert!(
                JsonHealth::configure(&Options::from_json(options), ProbeKind::Http).is_err(),
                "{options}"
            );
        }
    }
}
