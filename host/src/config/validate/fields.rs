//! Leaf values: names, addresses, host patterns, plugin references,
//! bounded integers, durations and keywords, each parsed in one place so
//! that every section reports them the same way.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::Validator;
use crate::config::*;

// === impl Validator ===

impl Validator<'_> {
    /// `10.0.0.0/8`, `::1/128`, or a bare address (a single host).
    pub(super) fn network(&mut self, field: String, raw: &Spanned<String>) -> Option<IpNet> {
        let text = raw.get_ref();
        let parsed = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
        match parsed {
            Ok(net) => Some(net.trunc()),
            Err(_) => self.fail(
                field,
                raw.span(),
                format!(
                    "invalid network `{text}`, expected an address or CIDR such as `10.0.0.0/8`"
                ),
            ),
        }
    }

    /// A name for listeners, pools and backends: letters, digits, `-`, `_`, `.`.
    pub(super) fn name(&mut self, field: String, raw: &Spanned<String>) -> Option<String> {
        let name = raw.get_ref();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if valid {
            Some(name.clone())
        } else {
            self.fail(
                field,
                raw.span(),
                format!("invalid name `{name}`: use 1-64 letters, digits, `-`, `_` or `.`"),
            )
        }
    }

    pub(super) fn socket_addr(
        &mut self,
        field: String,
        raw: &Spanned<String>,
    ) -> Option<SocketAddr> {
        match raw.get_ref().parse() {
            Ok(address) => Some(address),
            Err(_) => self.fail(
                field,
                raw.span(),
                format!(
                    "invalid socket address `{}`, expected `ip:port` such as `127.0.0.1:8080`",
                    raw.get_ref()
                ),
            ),
        }
    }

    /// `ip:port` or `name:port` with a non-zero port.
    pub(super) fn host_port(
        &mut self,
        field: String,
        raw: &Spanned<String>,
    ) -> Option<BackendAddress> {
        let text = raw.get_ref();
        let parsed = BackendAddress::parse(text).filter(|address| match address {
            BackendAddress::Socket(socket) => socket.port() != 0,
            BackendAddress::Name { port, .. } => *port != 0,
        });
        if let Some(address) = parsed {
            Some(address)
        } else {
            self.fail(
                field,
                raw.span(),
                format!("invalid backend address `{text}`, expected `host:port`"),
            )
        }
    }

    pub(super) fn host_pattern(
        &mut self,
        field: String,
        raw: &Spanned<String>,
    ) -> Option<HostPattern> {
        let host = raw.get_ref().to_ascii_lowercase();
        let (wildcard, name) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host.as_str()),
        };
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !valid {
            return self.fail(
                field,
                raw.span(),
                format!(
                    "invalid host `{}`: expected a DNS name or `*.suffix`, without port",
                    raw.get_ref()
                ),
            );
        }
        Some(if wildcard {
            HostPattern::Wildcard(format!(".{name}"))
        } else {
            HostPattern::Exact(name.to_owned())
        })
    }

    pub(super) fn balancer_ref(
        &mut self,
        field: String,
        raw: &Spanned<String>,
    ) -> Option<BalancerRef> {
        let text = raw.get_ref();
        if let Some(name) = text.strip_prefix("native:") {
            return match name {
                "round-robin" => Some(BalancerRef::NativeRoundRobin),
                _ => self.fail(
                    field,
                    raw.span(),
                    format!("no native balancer `{name}` (native balancers: round-robin)"),
                ),
            };
        }
        self.plugin_ref(field, raw).map(BalancerRef::Plugin)
    }

    pub(super) fn plugin_ref(&mut self, field: String, raw: &Spanned<String>) -> Option<PluginRef> {
        let text = raw.get_ref();
        match text.strip_prefix("builtin:") {
            Some(name) if !name.is_empty() => Some(PluginRef::Builtin(name.to_owned())),
            Some(_) => self.fail(
                field,
                raw.span(),
                "`builtin:` needs a plugin name, such as `builtin:round-robin`",
            ),
            None if text.ends_with(".wasm") => {
                let path = PathBuf::from(text);
                Some(PluginRef::File(if path.is_relative() {
                    self.source.dir().join(path)
                } else {
                    path
                }))
            }
            None => self.fail(
                field,
                raw.span(),
                format!("`{text}` is neither `builtin:<name>` nor a path to a `.wasm` file"),
            ),
        }
    }

    pub(super) fn bounded(
        &mut self,
        field: String,
        raw: &Spanned<i64>,
        min: i64,
        max: i64,
    ) -> Option<u32> {
        let value = *raw.get_ref();
        match u32::try_from(value) {
            Ok(n) if (min..=max).contains(&value) => Some(n),
            _ => self.fail(
                field,
                raw.span(),
                format!("{value} is out of range {min}..={max}"),
            ),
        }
    }

    /// A duration such as `250ms` or `2s` within `range`; `default` when
    /// the key is absent.
    pub(super) fn duration_or(
        &mut self,
        field: String,
        raw: Option<&Spanned<String>>,
        default: Duration,
        range: RangeInclusive<Duration>,
    ) -> Option<Duration> {
        match raw {
            None => Some(default),
            Some(raw) => self.duration(field, raw, range),
        }
    }

    /// [`Self::duration_or`] for a key whose absence means "off".
    pub(super) fn optional_duration(
        &mut self,
        field: String,
        raw: Option<&Spanned<String>>,
        range: RangeInclusive<Duration>,
    ) -> Option<Option<Duration>> {
        match raw {
            None => Some(None),
            Some(raw) => self.duration(field, raw, range).map(Some),
        }
    }

    pub(super) fn duration(
        &mut self,
        field: String,
        raw: &Spanned<String>,
        range: RangeInclusive<Duration>,
    ) -> Option<Duration> {
        match humantime::parse_duration(raw.get_ref()) {
            Ok(d) if range.contains(&d) => Some(d),
            Ok(_) => self.fail(
                field,
                raw.span(),
                format!(
                    "`{}` is out of range {}..={}",
                    raw.get_ref(),
                    humantime::format_duration(*range.start()),
                    humantime::format_duration(*range.end())
                ),
            ),
            Err(e) => self.fail(
                field,
                raw.span(),
                format!(
                    "invalid duration `{}` ({e}); use units such as `250ms` or `2s`",
                    raw.get_ref()
                ),
            ),
        }
    }

    /// One of a fixed set of keywords (`v1` or `v2`); `what` names the
    /// kind of value in the error.
    pub(super) fn keyword<T: Copy>(
        &mut self,
        field: String,
        raw: &Spanned<String>,
        what: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let text = raw.get_ref().as_str();
        if let Some((_, value)) = choices.iter().find(|(name, _)| *name == text) {
            return Some(*value);
        }
        let names: Vec<String> = choices
            .iter()
            .map(|(name, _)| format!("`{name}`"))
            .collect();
        let expected = match names.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => "nothing".to_owned(),
        };
        self.fail(
            field,
            raw.span(),
            format!("unknown {what} `{text}`, expected {expected}"),
        )
    }
}

/// A plugin's options table as the JSON its `configure` receives (`{}`
/// when absent), and where it was written (the owning table when absent).
pub(super) fn plugin_options(
    field: String,
    raw: Option<&Spanned<toml::Table>>,
    owner: &Spanned<String>,
) -> (String, FieldLocation) {
    match raw {
        Some(options) => (
            serde_json::to_string(options.get_ref()).unwrap_or_else(|_| "{}".to_owned()),
            FieldLocation::new(field, options.span()),
        ),
        None => ("{}".to_owned(), FieldLocation::new(field, owner.span())),
    }
}
