//! `[[listeners.routes]]`: what a route matches (host, path prefix, exact
//! path, path regex, methods, headers, query; SNI on TCP listeners), where
//! it sends (a pool, weighted pools, a redirect, a local answer), its path
//! rewrite, TLS mode and filters.

use std::collections::HashMap;

use toml::Spanned;

use super::raw::{RawFieldCondition, RawListener, RawRetry, RawRoute};
use super::{Known, Validator};
use crate::config::*;

/// The upgrade every HTTP route tunnels unless it lists its own.
const DEFAULT_UPGRADE: &str = "websocket";
/// Statuses a `redirect` may have.
const REDIRECTS: [u16; 5] = [301, 302, 303, 307, 308];
/// Weights of a split are relative; the cap keeps their sum far from
/// overflow.
const MAX_SPLIT_WEIGHT: i64 = 1_000_000;

// === impl Validator ===

impl Validator<'_> {
    pub(super) fn route(
        &mut self,
        field: String,
        index: usize,
        raw: &RawRoute,
        known: &Known<'_>,
        tcp: Option<bool>,
        listener_tls: bool,
    ) -> Option<RouteConfig> {
        if tcp == Some(true) {
            self.tcp_route_keys(&field, raw)?;
        } else if let (Some(false), Some(sni)) = (tcp, &raw.sni) {
            return self.fail(
                format!("{field}.sni"),
                sni.span(),
                "only `mode = \"tcp\"` listeners route by `sni`; HTTP routes match `host`",
            );
        }
        let name = match &raw.name {
            Some(name) => self.name(format!("{field}.name"), name),
            None => Some(format!("route-{index}")),
        };
        let terminate_tls = self.route_tls(&field, raw, tcp, listener_tls);
        let sni = match &raw.sni {
            Some(sni) => Some(self.host_pattern(format!("{field}.sni"), sni)?),
            None => None,
        };
        let host = match &raw.host {
            Some(host) => Some(self.host_pattern(format!("{field}.host"), host)?),
            None => None,
        };
        let path_prefix = match &raw.path_prefix {
            Some(prefix) if !prefix.get_ref().starts_with('/') => {
                return self.fail(
                    format!("{field}.path-prefix"),
                    prefix.span(),
                    "must start with `/`",
                );
            }
            Some(prefix) => prefix.get_ref().clone(),
            None => "/".to_owned(),
        };
        let conditions = self.conditions(&field, raw);
        let (pools, answer) = self.destination(&field, raw, known)?;
        let sticky = self.sticky(&field, raw, &pools);
        let rewrite = self.rewrite(&field, raw);
        let upgrades = self.upgrades(&field, raw);
        let max_body_size = match &raw.max_body_size {
            None => Some(None),
            Some(size) => match u64::try_from(*size.get_ref()) {
                Ok(bytes) => Some(Some(bytes)),
                Err(_) => self.fail(
                    format!("{field}.max-body-size"),
                    size.span(),
                    "a size in bytes, 0 or more",
                ),
            },
        };
        let timeout = self.optional_duration(
            format!("{field}.timeout"),
            raw.timeout.as_ref(),
            std::time::Duration::from_millis(1)..=std::time::Duration::from_secs(24 * 3600),
        );
        let limit = match &raw.limit {
            None => Some(None),
            Some(name) => self
                .known(format!("{field}.limit"), name, "limit", &known.limits)
                .map(|()| Some(name.get_ref().clone())),
        };
        let retry = match &raw.retry {
            None => Some(RetryConfig::default()),
            Some(retry) => self.retry(&field, retry),
        };
        let mut filters = Vec::new();
        for (k, filter) in raw.filters.iter().flat_map(|f| f.get_ref()).enumerate() {
            let field = format!("{field}.filters[{k}]");
            self.known(field, filter, "filter", &known.filters)?;
            filters.push(filter.get_ref().clone());
        }
        Some(RouteConfig {
            name: name?,
            host,
            path_prefix,
            conditions: conditions?,
            sni,
            terminate_tls: terminate_tls?,
            pools,
            sticky: sticky?,
            rewrite: rewrite?,
            answer,
            upgrades: upgrades?,
            retry: retry?,
            max_body_size: max_body_size?,
            timeout: timeout?,
            limit: limit?,
            filters,
        })
    }

    /// Route names are unique in their listener, given or not: a given
    /// `route-N` may not take the name another route has by its place.
    pub(super) fn unique_route_names(&mut self, listener_index: usize, listener: &RawListener) {
        // By name, the first route that has it and where its `name` is.
        let mut taken: HashMap<String, (usize, Option<std::ops::Range<usize>>)> = HashMap::new();
        for (j, route) in listener.routes.iter().enumerate() {
            let span = route.name.as_ref().map(Spanned::span);
            let name = route
                .name
                .as_ref()
                .map_or_else(|| format!("route-{j}"), |name| name.get_ref().clone());
            let Some((first, first_span)) = taken.get(&name).cloned() else {
                taken.insert(name, (j, span));
                continue;
            };
            // Blame a route that wrote the name (one of the two did).
            let (at, span) = match span {
                Some(span) => (j, span),
                None => (first, first_span.unwrap_or_default()),
            };
            let _: Option<()> = self.fail(
                format!("listeners[{listener_index}].routes[{at}].name"),
                span,
                format!("another route of this listener is named `{name}`"),
            );
        }
    }

    /// `retry = { on, max-attempts, per-try-timeout, budget-ratio,
    /// budget-min-per-second, buffer }`.
    fn retry(&mut self, field: &str, raw: &Spanned<RawRetry>) -> Option<RetryConfig> {
        let field = |key: &str| format!("{field}.retry.{key}");
        let table = raw.get_ref();
        let mut config = RetryConfig::default();
        let mut ok = true;
        if let Some(list) = &table.on {
            config.on = RetryOn {
                connect_failure: false,
                reset: false,
                timeout: false,
                statuses: Vec::new(),
            };
            for (i, condition) in list.get_ref().iter().enumerate() {
                match condition.get_ref().as_str() {
                    "connect-failure" => config.on.connect_failure = true,
                    "reset" => config.on.reset = true,
                    "timeout" => config.on.timeout = true,
                    other => match other.parse::<u16>() {
                        Ok(status) if (500..=599).contains(&status) || status == 429 => {
                            config.on.statuses.push(status);
                        }
                        _ => {
                            ok = false;
                            self.fail::<()>(
                                field(&format!("on[{i}]")),
                                condition.span(),
                                format!("unknown retry condition `{other}`, expected `connect-failure`, `reset`, `timeout`, `429` or a 5xx status"),
                            );
                        }
                    },
                }
            }
        }
        if let Some(attempts) = &table.max_attempts {
            config.max_attempts = self.bounded(field("max-attempts"), attempts, 1, 16);
            ok &= config.max_attempts.is_some();
        }
        match self.optional_duration(
            field("per-try-timeout"),
            table.per_try_timeout.as_ref(),
            std::time::Duration::from_millis(1)..=std::time::Duration::from_secs(3600),
        ) {
            Some(timeout) => config.per_try_timeout = timeout,
            None => ok = false,
        }
        if let Some(ratio) = &table.budget_ratio {
            let value = *ratio.get_ref();
            if (0.0..=10.0).contains(&value) {
                // Rounded to thousandths, which is what the budget counts in.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let permille = (value * 1000.0).round() as u32;
                config.budget_permille = permille;
            } else {
                ok = false;
                self.fail::<()>(
                    field("budget-ratio"),
                    ratio.span(),
                    "a ratio of retries to requests, 0.0 to 10.0",
                );
            }
        }
        if let Some(floor) = &table.budget_min_per_second {
            match self.bounded(field("budget-min-per-second"), floor, 0, 100_000) {
                Some(floor) => config.budget_min_per_second = floor,
                None => ok = false,
            }
        }
        if let Some(buffer) = &table.buffer {
            match self.bounded(field("buffer"), buffer, 0, 64 << 20) {
                Some(bytes) => config.buffer = bytes as usize,
                None => ok = false,
            }
        }
        ok.then_some(config)
    }

    /// `upgrades`: the protocols a route tunnels, `["websocket"]` unless
    /// given; `h2c` never (it would switch the client's connection to
    /// HTTP/2 past the proxy's routing).
    fn upgrades(&mut self, field: &str, raw: &RawRoute) -> Option<Vec<String>> {
        let Some(list) = &raw.upgrades else {
            return Some(vec![DEFAULT_UPGRADE.to_owned()]);
        };
        let mut upgrades = Vec::new();
        let mut ok = true;
        for (i, protocol) in list.get_ref().iter().enumerate() {
            let name = protocol.get_ref().to_ascii_lowercase();
            let field = format!("{field}.upgrades[{i}]");
            if name.starts_with("h2c") {
                ok = false;
                self.fail::<()>(
                    field,
                    protocol.span(),
                    "`h2c` is never tunnelled: it would switch the client's connection to HTTP/2 past the proxy's routing",
                );
            } else if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b",;".contains(&b))
            {
                ok = false;
                self.fail::<()>(
                    field,
                    protocol.span(),
                    format!("`{name}` is not a protocol name"),
                );
            } else {
                upgrades.push(name);
            }
        }
        ok.then_some(upgrades)
    }

    /// A TCP route takes no HTTP key.
    fn tcp_route_keys(&mut self, field: &str, raw: &RawRoute) -> Option<()> {
        let http_only = [
            ("host", raw.host.as_ref().map(Spanned::span)),
            ("path-prefix", raw.path_prefix.as_ref().map(Spanned::span)),
            ("path", raw.path.as_ref().map(Spanned::span)),
            ("path-regex", raw.path_regex.as_ref().map(Spanned::span)),
            ("methods", raw.methods.as_ref().map(Spanned::span)),
            ("headers", raw.headers.as_ref().map(Spanned::span)),
            ("query", raw.query.as_ref().map(Spanned::span)),
            ("pools", raw.pools.as_ref().map(Spanned::span)),
            ("sticky", raw.sticky.as_ref().map(Spanned::span)),
            ("strip-prefix", raw.strip_prefix.as_ref().map(Spanned::span)),
            ("rewrite-path", raw.rewrite_path.as_ref().map(Spanned::span)),
            ("redirect", raw.redirect.as_ref().map(Spanned::span)),
            ("respond", raw.respond.as_ref().map(Spanned::span)),
            ("upgrades", raw.upgrades.as_ref().map(Spanned::span)),
            ("retry", raw.retry.as_ref().map(Spanned::span)),
            (
                "max-body-size",
                raw.max_body_size.as_ref().map(Spanned::span),
            ),
        ];
        for (key, span) in http_only {
            if let Some(span) = span {
                return self.fail(
                    format!("{field}.{key}"),
                    span,
                    "tcp listeners route by `sni` to one `pool`; this key is for HTTP routes",
                );
            }
        }
        if let Some(filters) = &raw.filters {
            return self.fail(
                format!("{field}.filters"),
                filters.span(),
                "header filters apply to HTTP routes; tcp listeners forward bytes untouched",
            );
        }
        Some(())
    }

    /// `path`, `path-regex`, `methods`, `headers`, `query`.
    fn conditions(&mut self, field: &str, raw: &RawRoute) -> Option<RouteConditions> {
        let mut ok = true;
        let path = match &raw.path {
            Some(path) if !path.get_ref().starts_with('/') => {
                ok = false;
                self.fail::<()>(format!("{field}.path"), path.span(), "must start with `/`");
                None
            }
            other => other.as_ref().map(|path| path.get_ref().clone()),
        };
        let path_regex = raw.path_regex.as_ref().and_then(|pattern| {
            let checked = self.regex(
                format!("{field}.path-regex"),
                pattern.span(),
                pattern.get_ref(),
            );
            ok &= checked.is_some();
            checked
        });
        let mut methods = Vec::new();
        for (i, method) in raw.methods.iter().flat_map(|m| m.get_ref()).enumerate() {
            let name = method.get_ref().to_ascii_uppercase();
            if http::Method::from_bytes(name.as_bytes()).is_err() || name.is_empty() {
                ok = false;
                self.fail::<()>(
                    format!("{field}.methods[{i}]"),
                    method.span(),
                    format!("`{}` is not an HTTP method", method.get_ref()),
                );
            }
            methods.push(name);
        }
        let headers = self.field_conditions(format!("{field}.headers"), raw.headers.as_ref(), true);
        let query = self.field_conditions(format!("{field}.query"), raw.query.as_ref(), false);
        let (headers, query) = (headers?, query?);
        ok.then_some(RouteConditions {
            path,
            path_regex,
            methods,
            headers,
            query,
        })
    }

    /// `headers` (names lowercased and checked) or `query`.
    fn field_conditions(
        &mut self,
        field: String,
        raw: Option<&Spanned<Vec<Spanned<RawFieldCondition>>>>,
        header: bool,
    ) -> Option<Vec<FieldCondition>> {
        let mut conditions = Vec::new();
        let mut ok = true;
        for (i, entry) in raw.iter().flat_map(|list| list.get_ref()).enumerate() {
            let field = format!("{field}[{i}]");
            let span = entry.span();
            let raw = entry.get_ref();
            let name = if header {
                raw.name.to_ascii_lowercase()
            } else {
                raw.name.clone()
            };
            if name.is_empty() || (header && http::HeaderName::from_bytes(name.as_bytes()).is_err())
            {
                ok = false;
                self.fail::<()>(field, span, format!("`{}` is not a valid name", raw.name));
                continue;
            }
            let test = match (&raw.value, &raw.regex, raw.present) {
                (None, None, None | Some(true)) => ValueTest::Present,
                (None, None, Some(false)) => ValueTest::Absent,
                (Some(value), None, None) => ValueTest::Exact(value.clone()),
                (None, Some(pattern), None) => match self.regex(field, span, pattern) {
                    Some(pattern) => ValueTest::Regex(pattern),
                    None => {
                        ok = false;
                        continue;
                    }
                },
                _ => {
                    ok = false;
                    self.fail::<()>(field, span, "give one of `value`, `regex` or `present`");
                    continue;
                }
            };
            conditions.push(FieldCondition { name, test });
        }
        ok.then_some(conditions)
    }

    /// `pattern` compiled as routes match it.
    fn regex(
        &mut self,
        field: String,
        span: std::ops::Range<usize>,
        pattern: &str,
    ) -> Option<Pattern> {
        match Pattern::new(pattern) {
            Ok(pattern) => Some(pattern),
            Err(error) => self.fail(field, span, format!("invalid regular expression: {error}")),
        }
    }

    /// Exactly one of `pool`, `pools`, `redirect` and `respond`.
    fn destination(
        &mut self,
        field: &str,
        raw: &RawRoute,
        known: &Known<'_>,
    ) -> Option<(Vec<WeightedPool>, Option<LocalAnswer>)> {
        let given = [
            raw.pool.is_some(),
            raw.pools.is_some(),
            raw.redirect.is_some(),
            raw.respond.is_some(),
        ];
        match given.iter().filter(|given| **given).count() {
            1 => {}
            0 => {
                // The route itself has no span: point at a key it has.
                let span = [
                    raw.host.as_ref().map(Spanned::span),
                    raw.path_prefix.as_ref().map(Spanned::span),
                    raw.path.as_ref().map(Spanned::span),
                    raw.path_regex.as_ref().map(Spanned::span),
                    raw.sni.as_ref().map(Spanned::span),
                    raw.filters.as_ref().map(Spanned::span),
                ]
                .into_iter()
                .flatten()
                .next()
                .unwrap_or_default();
                return self.fail(
                    format!("{field}.pool"),
                    span,
                    "a route needs one of `pool`, `pools`, `redirect` or `respond`",
                );
            }
            _ => {
                let span = [
                    raw.pools.as_ref().map(Spanned::span),
                    raw.redirect.as_ref().map(Spanned::span),
                    raw.respond.as_ref().map(Spanned::span),
                ]
                .into_iter()
                .flatten()
                .next()
                .unwrap_or_default();
                return self.fail(
                    field.to_owned(),
                    span,
                    "give only one of `pool`, `pools`, `redirect` and `respond`",
                );
            }
        }
        if let Some(pool) = &raw.pool {
            self.known(format!("{field}.pool"), pool, "pool", &known.pools)?;
            let only = WeightedPool {
                pool: pool.get_ref().clone(),
                weight: 1,
            };
            return Some((vec![only], None));
        }
        if let Some(pools) = &raw.pools {
            return self.split(field, pools, known).map(|pools| (pools, None));
        }
        if let Some(redirect) = &raw.redirect {
            let span = redirect.span();
            let redirect = redirect.get_ref();
            let status = redirect.status.unwrap_or(301);
            let status = u16::try_from(status).ok().filter(|s| REDIRECTS.contains(s));
            let Some(status) = status else {
                return self.fail(
                    format!("{field}.redirect.status"),
                    span,
                    "a redirect status is 301, 302, 303, 307 or 308",
                );
            };
            let answer = LocalAnswer::Redirect {
                status,
                location: redirect.location.clone(),
            };
            return Some((Vec::new(), Some(answer)));
        }
        let respond = raw.respond.as_ref()?;
        let span = respond.span();
        let respond = respond.get_ref();
        let Some(status) = u16::try_from(respond.status)
            .ok()
            .filter(|s| (200..=599).contains(s))
        else {
            return self.fail(
                format!("{field}.respond.status"),
                span,
                "a response status is 200 to 599",
            );
        };
        let answer = LocalAnswer::Respond {
            status,
            body: respond.body.clone(),
            content_type: respond
                .content_type
                .clone()
                .unwrap_or_else(|| "text/plain; charset=utf-8".to_owned()),
        };
        Some((Vec::new(), Some(answer)))
    }

    /// `pools = [{ pool, weight }, ...]`: known pools, each once, weights
    /// 0 to 1,000,000 of which one at least is above 0.
    fn split(
        &mut self,
        field: &str,
        raw: &Spanned<Vec<Spanned<super::raw::RawWeightedPool>>>,
        known: &Known<'_>,
    ) -> Option<Vec<WeightedPool>> {
        let mut pools = Vec::new();
        let mut ok = true;
        for (i, entry) in raw.get_ref().iter().enumerate() {
            let entry = entry.get_ref();
            let field = format!("{field}.pools[{i}]");
            let pool = self.known(format!("{field}.pool"), &entry.pool, "pool", &known.pools);
            let weight = self.bounded(
                format!("{field}.weight"),
                &entry.weight,
                0,
                MAX_SPLIT_WEIGHT,
            );
            if pools
                .iter()
                .any(|p: &WeightedPool| p.pool == *entry.pool.get_ref())
            {
                ok = false;
                self.fail::<()>(
                    format!("{field}.pool"),
                    entry.pool.span(),
                    format!("pool `{}` is listed twice", entry.pool.get_ref()),
                );
            }
            match (pool, weight) {
                (Some(()), Some(weight)) => pools.push(WeightedPool {
                    pool: entry.pool.get_ref().clone(),
                    weight,
                }),
                _ => ok = false,
            }
        }
        if ok && pools.iter().all(|pool| pool.weight == 0) {
            return self.fail(
                format!("{field}.pools"),
                raw.span(),
                "a split needs at least one pool with a weight above 0",
            );
        }
        ok.then_some(pools)
    }

    /// `sticky = "client-ip" | "header:NAME" | "cookie:NAME"`, for splits.
    fn sticky(
        &mut self,
        field: &str,
        raw: &RawRoute,
        pools: &[WeightedPool],
    ) -> Option<Option<SplitKey>> {
        let Some(sticky) = &raw.sticky else {
            return Some(None);
        };
        let field = format!("{field}.sticky");
        if pools.len() < 2 {
            return self.fail(
                field,
                sticky.span(),
                "`sticky` keeps a client on one side of a split: it needs `pools`",
            );
        }
        let text = sticky.get_ref();
        let header = text.strip_prefix("header:").map(str::to_ascii_lowercase);
        let cookie = text.strip_prefix("cookie:").filter(|name| !name.is_empty());
        let key = match (text.as_str(), header, cookie) {
            ("client-ip", _, _) => Some(SplitKey::ClientIp),
            (_, Some(name), _) => http::HeaderName::from_bytes(name.as_bytes())
                .ok()
                .map(|_| SplitKey::Header(name)),
            (_, _, Some(name)) => Some(SplitKey::Cookie(name.to_owned())),
            _ => None,
        };
        match key {
            Some(key) => Some(Some(key)),
            None => self.fail(
                field,
                sticky.span(),
                format!("unknown sticky key `{text}`, expected `client-ip`, `header:NAME` or `cookie:NAME`"),
            ),
        }
    }

    /// `strip-prefix = true` or `rewrite-path = "..."`, not both.
    fn rewrite(&mut self, field: &str, raw: &RawRoute) -> Option<Option<PathRewrite>> {
        match (&raw.strip_prefix, &raw.rewrite_path) {
            (Some(_), Some(path)) => self.fail(
                format!("{field}.rewrite-path"),
                path.span(),
                "give `strip-prefix` or `rewrite-path`, not both",
            ),
            (Some(strip), None) => Some(strip.get_ref().then_some(PathRewrite::StripPrefix)),
            (None, Some(path)) if !path.get_ref().starts_with('/') => self.fail(
                format!("{field}.rewrite-path"),
                path.span(),
                "must start with `/`",
            ),
            (None, Some(path)) => Some(Some(PathRewrite::Replace(path.get_ref().clone()))),
            (None, None) => Some(None),
        }
    }

    /// A route's `tls`: on TCP listeners with `[listeners.tls]`, whether
    /// it terminates (the default) or passes TLS through.
    fn route_tls(
        &mut self,
        field: &str,
        raw: &RawRoute,
        tcp: Option<bool>,
        listener_tls: bool,
    ) -> Option<bool> {
        let Some(mode) = &raw.tls else {
            return Some(tcp == Some(true) && listener_tls);
        };
        let field = format!("{field}.tls");
        if tcp != Some(true) {
            return self.fail(
                field,
                mode.span(),
                "HTTP listeners terminate TLS on every route (`[listeners.tls]`); `tls` is for tcp routes",
            );
        }
        let terminate = self.keyword(
            field.clone(),
            mode,
            "TLS mode",
            &[("terminate", true), ("passthrough", false)],
        )?;
        if terminate && !listener_tls {
            return self.fail(
                field,
                mode.span(),
                "`terminate` needs the listener's certificates: add `[listeners.tls]`",
            );
        }
        Some(terminate)
    }
}
