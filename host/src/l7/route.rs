//! Which route takes a request: host, path prefix and the other conditions,
//! in config order (the first match wins, as in Envoy's route tables), and
//! what the route does with it.
//!
//! The table does not try every route per request: routes are indexed by
//! host (exact names in a hash map, wildcards by suffix, routes without a
//! host in a list of their own), so a request looks at the routes of its
//! own host and the host-less ones only, merged back into config order.
//! With 1,000 host routes, a request tries the one or two that can match
//! (BENCHMARKS.md measures it).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, StatusCode};

use super::HeaderFilter;
use super::conditions::{AbsentHeaders, Conditions};
use super::headers::Forwarding;
use super::path::PathPolicy;
use super::split::Split;
use crate::config::PathRewrite;
use crate::host_pattern::HostPattern;
use crate::metrics::ResponseSeries;
use crate::upstream::RetryPolicy;

/// One route: what it matches and what it does.
pub struct Route {
    /// Its name (`name`, or `route-N`).
    pub name: Arc<str>,
    /// Its requests and their durations, in metrics.
    pub metrics: Arc<ResponseSeries>,
    /// Host to match; `None` matches any host.
    pub host: Option<HostPattern>,
    /// Path prefix to match.
    pub path_prefix: String,
    /// Everything else a request must meet.
    pub conditions: Conditions,
    /// Where matching requests go.
    pub target: RouteTarget,
    /// The path as forwarded.
    pub rewrite: Option<PathRewrite>,
    /// The `Upgrade` protocols tunnelled (lowercase).
    pub upgrades: Arc<[String]>,
    /// What is retried, and the route's retry budget.
    pub retry: Arc<RetryPolicy>,
    /// The largest request body accepted.
    pub max_body_size: Option<u64>,
    /// The whole request's deadline.
    pub timeout: Option<std::time::Duration>,
    /// The rate limit requests are counted against.
    pub limit: Option<Arc<super::RateLimiter>>,
    /// Header filters, in the order they see requests.
    pub filters: Arc<[Arc<dyn HeaderFilter>]>,
}

// === impl Route ===

impl Route {
    /// A route to `target` with nothing else (no rewrite, filters, limit,
    /// deadline, retries beyond connect failures): what route tests and
    /// benchmarks build.
    #[doc(hidden)]
    pub fn plain(
        host: Option<HostPattern>,
        path_prefix: &str,
        conditions: Conditions,
        target: RouteTarget,
    ) -> Route {
        Route {
            name: Arc::from(""),
            metrics: Arc::new(ResponseSeries::route("", "")),
            host,
            path_prefix: path_prefix.to_owned(),
            conditions,
            target,
            rewrite: None,
            upgrades: Arc::from(Vec::new()),
            retry: Arc::default(),
            max_body_size: None,
            timeout: None,
            limit: None,
            filters: Arc::from(Vec::new()),
        }
    }
}

/// What a route does with a request.
pub enum RouteTarget {
    /// Forward it to one of these pools.
    Pools(Split),
    /// Answer with a redirect to the expanded `location` template.
    Redirect {
        /// 301, 302, 303, 307 or 308.
        status: StatusCode,
        /// `{scheme}`, `{host}`, `{path}`, `{query}`, `{uri}` expanded.
        location: String,
    },
    /// Answer with this response.
    Respond {
        /// Its status.
        status: StatusCode,
        /// Its body.
        body: Bytes,
        /// Its `Content-Type`.
        content_type: HeaderValue,
    },
}

/// A listener's routes, indexed by host.
#[derive(Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    index: HostIndex,
    /// Every route's path regex in one set, run once per request that
    /// reaches a second regex route.
    regexes: Option<regex::RegexSet>,
    /// By route, what is checked before its `Route` is touched: kept
    /// apart and small, so that skipping a route reads a few bytes.
    keys: Vec<MatchKey>,
    paths: PathPolicy,
    forwarding: Forwarding,
}

/// What a lookup checks of one route before touching it.
#[derive(Debug, Clone, Copy)]
struct MatchKey {
    prefix: PrefixKey,
    /// Its path regex's place in the table's `RegexSet`.
    regex_place: Option<usize>,
    /// No condition beyond host and prefix: the prefix decides.
    plain: bool,
}

/// A path prefix's first eight bytes as a masked word: most prefixes a
/// request fails differ there, and one AND and compare decide them where a
/// `memcmp` call per route would cost several times more. Prefixes longer
/// than eight bytes compare the rest only when the word matches.
#[derive(Debug, Default, Clone, Copy)]
struct PrefixKey {
    word: u64,
    mask: u64,
    /// The prefix is at most eight bytes: the word decides.
    short: bool,
}

/// Route numbers (config order) by the hosts they can match.
#[derive(Default)]
struct HostIndex {
    exact: HashMap<String, Vec<usize>>,
    /// By suffix with its leading dot (`.example.com`).
    wildcard: HashMap<String, Vec<usize>>,
    /// Routes without `host`.
    any: Vec<usize>,
    /// The `exact` lists hold the `any` routes too, merged in order (when
    /// that stays under [`MAX_MERGED`] entries): a request to a known
    /// host without wildcard routes walks one list.
    exact_includes_any: bool,
}

/// Most route numbers kept in exact-host lists merged with the host-less
/// routes (8 bytes each).
const MAX_MERGED: usize = 1_000_000;

/// Most index lists a request merges: its exact host, the host-less routes
/// and one wildcard list per label of its host, up to this many.
const MAX_LISTS: usize = 10;

// === impl RouteTable ===

impl RouteTable {
    /// Routes in matching order, matched on paths normalised by `paths`.
    pub fn new(mut routes: Vec<Route>, paths: PathPolicy) -> Self {
        let mut header_names = Vec::new();
        for route in &mut routes {
            route.conditions.number_headers(&mut header_names);
        }
        let mut index = HostIndex::default();
        for (number, route) in routes.iter().enumerate() {
            match &route.host {
                None => index.any.push(number),
                Some(HostPattern::Exact(name)) => {
                    index.exact.entry(name.clone()).or_default().push(number);
                }
                Some(HostPattern::Wildcard(suffix)) => {
                    index
                        .wildcard
                        .entry(suffix.clone())
                        .or_default()
                        .push(number);
                }
            }
        }
        let merged: usize = index
            .exact
            .values()
            .map(|list| list.len() + index.any.len())
            .sum();
        if !index.any.is_empty() && merged <= MAX_MERGED {
            for list in index.exact.values_mut() {
                list.extend_from_slice(&index.any);
                list.sort_unstable();
            }
            index.exact_includes_any = true;
        }
        let (regexes, places) = regex_set(&routes);
        let keys = routes
            .iter()
            .zip(places)
            .map(|(route, regex_place)| MatchKey {
                prefix: PrefixKey::new(&route.path_prefix),
                regex_place,
                plain: route.conditions.is_empty(),
            })
            .collect();
        RouteTable {
            routes,
            index,
            regexes,
            keys,
            paths,
            forwarding: Forwarding::default(),
        }
    }

    /// The same table telling backends about clients as `forwarding` says.
    #[must_use]
    pub fn with_forwarding(mut self, forwarding: Forwarding) -> Self {
        self.forwarding = forwarding;
        self
    }

    /// What backends are told about the client.
    pub fn forwarding(&self) -> &Forwarding {
        &self.forwarding
    }

    /// How paths are normalised before [`RouteTable::find`] sees them.
    pub fn paths(&self) -> &PathPolicy {
        &self.paths
    }

    /// The routes in matching order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The first route that takes a request to `host` (lowercase, no port)
    /// with `head` (its path normalised).
    pub fn find(&self, host: Option<&str>, head: &Parts) -> Option<&Route> {
        let mut lists: [&[usize]; MAX_LISTS] = [&[]; MAX_LISTS];
        let mut count = 0;
        let index = &self.index;
        let exact = host.and_then(|host| index.exact.get(host));
        if !(index.exact_includes_any && exact.is_some()) {
            push(&mut lists, &mut count, &index.any);
        }
        if let Some(list) = exact {
            push(&mut lists, &mut count, list);
        }
        if let Some(host) = host
            && !index.wildcard.is_empty()
        {
            // Every proper suffix starting at a dot: `.b.example.com`,
            // `.example.com`, `.com` for `a.b.example.com`.
            for (at, _) in host.match_indices('.').filter(|(at, _)| *at > 0) {
                if let Some(list) = host.get(at..).and_then(|suffix| index.wildcard.get(suffix))
                    && !push(&mut lists, &mut count, list)
                {
                    // More wildcard levels than lists: try every route.
                    return self.scan(host, head);
                }
            }
        }
        let mut lookup = Lookup::new(head);
        if count <= 1 {
            let only = lists.first().copied().unwrap_or_default();
            return only
                .iter()
                .find_map(|&number| self.take(number, &mut lookup));
        }
        let mut heads = [0usize; MAX_LISTS];
        loop {
            // The smallest route number not yet tried, across the lists.
            let mut next: Option<(usize, usize)> = None;
            let open = lists.get(..count).unwrap_or(&lists);
            for (list, (routes, position)) in open.iter().zip(heads.iter()).enumerate() {
                if let Some(&number) = routes.get(*position)
                    && next.is_none_or(|(_, best)| number < best)
                {
                    next = Some((list, number));
                }
            }
            let (list, number) = next?;
            if let Some(position) = heads.get_mut(list) {
                *position += 1;
            }
            if let Some(route) = self.take(number, &mut lookup) {
                return Some(route);
            }
        }
    }

    /// Route `number` when the request meets it (its host already did).
    fn take<'t>(&'t self, number: usize, lookup: &mut Lookup<'_>) -> Option<&'t Route> {
        let key = self.keys.get(number)?;
        if !key.prefix.accepts(lookup.path_word) {
            return None;
        }
        let route = self.routes.get(number)?;
        if !key.prefix.short && !lookup.path.starts_with(&route.path_prefix) {
            return None;
        }
        if key.plain {
            return Some(route);
        }
        let mut verdict = None;
        if let (Some(set), Some(place)) = (&self.regexes, key.regex_place) {
            // The first regex route runs its own regex; from the second
            // on, the whole set runs once and answers for every one.
            lookup.regex_routes_seen += 1;
            if lookup.regex_routes_seen > 1 {
                let path = lookup.path;
                let matches = lookup.set_matches.get_or_insert_with(|| set.matches(path));
                verdict = Some(matches.matched(place));
            }
        }
        route
            .conditions
            .accept_with(lookup.head, lookup.path, verdict, &mut lookup.absent)
            .then_some(route)
    }
}

/// What one lookup learns as it goes, for the routes after.
struct Lookup<'r> {
    head: &'r Parts,
    path: &'r str,
    path_word: u64,
    regex_routes_seen: usize,
    set_matches: Option<regex::SetMatches>,
    absent: AbsentHeaders,
}

impl<'r> Lookup<'r> {
    fn new(head: &'r Parts) -> Self {
        let path = head.uri.path();
        Lookup {
            head,
            path,
            path_word: PrefixKey::word_of(path),
            regex_routes_seen: 0,
            set_matches: None,
            absent: AbsentHeaders::default(),
        }
    }
}

// === impl PrefixKey ===

impl PrefixKey {
    fn new(prefix: &str) -> Self {
        let len = prefix.len().min(8);
        let mask = if len == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * len)) - 1
        };
        PrefixKey {
            word: Self::word_of(prefix),
            mask,
            short: prefix.len() <= 8,
        }
    }

    /// The first eight bytes of `text`, zero-padded, little-endian. Paths
    /// hold no NUL byte, so padding never matches a prefix byte.
    fn word_of(text: &str) -> u64 {
        if let Some(first) = text.as_bytes().first_chunk::<8>() {
            return u64::from_le_bytes(*first);
        }
        let mut bytes = [0u8; 8];
        for (to, from) in bytes.iter_mut().zip(text.bytes()) {
            *to = from;
        }
        u64::from_le_bytes(bytes)
    }

    fn accepts(&self, path_word: u64) -> bool {
        path_word & self.mask == self.word
    }
}

/// The path regexes of `routes` as one set, when there are two or more,
/// and by route, its place in the set.
fn regex_set(routes: &[Route]) -> (Option<regex::RegexSet>, Vec<Option<usize>>) {
    let mut patterns = Vec::new();
    let places: Vec<Option<usize>> = routes
        .iter()
        .map(|route| {
            route.conditions.path_regex().map(|regex| {
                patterns.push(regex.as_str().to_owned());
                patterns.len() - 1
            })
        })
        .collect();
    if patterns.len() < 2 {
        return (None, places);
    }
    // Each pattern compiled alone when the config loaded; together they
    // only fail past the size limit, and then each runs alone.
    (regex::RegexSet::new(&patterns).ok(), places)
}

/// Adds `list` to the lists a request merges; `false` when they are full.
fn push<'a>(lists: &mut [&'a [usize]; MAX_LISTS], count: &mut usize, list: &'a [usize]) -> bool {
    let Some(slot) = lists.get_mut(*count) else {
        return false;
    };
    *slot = list;
    *count += 1;
    true
}

// === impl RouteTable (linear) ===

impl RouteTable {
    /// Every route in order: for a host with more wildcard levels matched
    /// than the merge takes.
    fn scan(&self, host: &str, head: &Parts) -> Option<&Route> {
        let path = head.uri.path();
        self.routes.iter().find(|route| {
            HostPattern::accepts(route.host.as_ref(), Some(host))
                && path.starts_with(&route.path_prefix)
                && route.conditions.accept(head)
        })
    }
}

#[cfg(test)]
mod tests;
