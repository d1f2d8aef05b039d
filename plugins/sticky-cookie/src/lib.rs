//! `builtin:sticky-cookie`: client affinity by cookie, as HAProxy's
//! `cookie ... insert` and NGINX Plus's `sticky cookie`.
//!
//! A request without a valid affinity cookie is balanced by the inner
//! algorithm, and the host sets the cookie on the response, valued with the
//! opaque token of the backend that actually served it (never its address
//! or name). A request whose cookie names a backend that is still in the
//! pool and healthy goes there; otherwise it is re-balanced and the cookie
//! is replaced, so a client moves once and stays.
//!
//! Options:
//! - `cookie`: the cookie name (default `"bascule_affinity"`);
//! - `ttl`: the cookie's lifetime, e.g. `"1h"` (default: a session cookie);
//! - `path` (default `"/"`), `secure` (default false), `http-only`
//!   (default true), `same-site` (`"strict"`, `"lax"` or `"none"`, which
//!   needs `secure`; default: no attribute): cookie attributes;
//! - `inner`: `round-robin` (default), `weighted-round-robin`,
//!   `least-connections` or `random`.
//!
//! TCP pools are rejected: a TCP connection carries no cookies.
//!
//! Metric: `bascule_plugin_sticky_cookie_lookups_total{result}`, `hit` (the
//! cookie's backend served), `miss` (no cookie) or `moved` (the cookie named
//! a backend gone or not taking work: re-balanced).

use std::collections::HashMap;

use bascule_guest_sdk::algorithms::{LeastLoaded, RoundRobin, SmoothWeightedRoundRobin};
use bascule_guest_sdk::metrics::{Counter, CounterSeries};
use bascule_guest_sdk::{
    AffinityCookie, Backend, Balancer, Candidates, DurationOption, Error, Options, Request,
    RequestNeeds, SameSite, with_successors,
};
use serde::Deserialize;

const DEFAULT_COOKIE: &str = "bascule_affinity";

/// Cookie affinity over an inner algorithm.
#[derive(Debug)]
pub struct StickyCookie {
    cookie: AffinityCookie,
    inner: Inner,
    by_token: HashMap<String, u32>,
    len: u32,
    lookups: Lookups,
}

/// `sticky_cookie_lookups{result}`, one series per result.
#[derive(Debug)]
struct Lookups {
    hit: CounterSeries,
    miss: CounterSeries,
    moved: CounterSeries,
}

impl Lookups {
    fn declare() -> Result<Self, Error> {
        let lookups = Counter::declare(
            "sticky_cookie_lookups",
            "affinity cookies looked up, by result (hit, miss, moved)",
            &["result"],
        )?;
        Ok(Lookups {
            hit: lookups.series(&["hit"])?,
            miss: lookups.series(&["miss"])?,
            moved: lookups.series(&["moved"])?,
        })
    }
}

/// The algorithm for clients without a usable cookie.
#[derive(Debug)]
enum Inner {
    RoundRobin(RoundRobin),
    WeightedRoundRobin(SmoothWeightedRoundRobin),
    LeastConnections(LeastLoaded),
    Random(fastrand::Rng),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    #[serde(default = "default_cookie")]
    cookie: String,
    ttl: Option<DurationOption>,
    #[serde(default = "default_path")]
    path: String,
    #[serde(default)]
    secure: bool,
    #[serde(default = "default_true")]
    http_only: bool,
    same_site: Option<String>,
    #[serde(default = "default_inner")]
    inner: String,
}

fn default_cookie() -> String {
    DEFAULT_COOKIE.to_owned()
}

fn default_path() -> String {
    "/".to_owned()
}

fn default_true() -> bool {
    true
}

fn default_inner() -> String {
    "round-robin".to_owned()
}

// === impl StickyCookie ===

impl StickyCookie {
    fn from_settings(settings: Settings) -> Result<Self, Error> {
        let valid_name = !settings.cookie.is_empty()
            && settings
                .cookie
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name {
            return Err(Error::new(format!(
                "`cookie` must be letters, digits, `-` or `_`, got `{}`",
                settings.cookie
            )));
        }
        if !settings.path.starts_with('/')
            || settings
                .path
                .bytes()
                .any(|b| b == b';' || b.is_ascii_control())
        {
            return Err(Error::new(format!(
                "`path` must start with `/` and hold no `;`, got `{}`",
                settings.path
            )));
        }
        let max_age_seconds = match settings.ttl {
            None => None,
            Some(ttl) => Some(
                u32::try_from(ttl.get().as_secs())
                    .ok()
                    .filter(|&s| s > 0)
                    .ok_or_else(|| Error::new("`ttl` must be from 1s to about 136 years"))?,
            ),
        };
        let same_site = match settings.same_site.as_deref() {
            None => None,
            Some("strict") => Some(SameSite::Strict),
            Some("lax") => Some(SameSite::Lax),
            Some("none") if settings.secure => Some(SameSite::None),
            Some("none") => {
                return Err(Error::new(
                    "`same-site = \"none\"` needs `secure = true` (browsers refuse it otherwise)",
                ));
            }
            Some(other) => {
                return Err(Error::new(format!(
                    "unknown `same-site` `{other}` (strict, lax or none)"
                )));
            }
        };
        let inner = match settings.inner.as_str() {
            "round-robin" => Inner::RoundRobin(RoundRobin::default()),
            "weighted-round-robin" => {
                Inner::WeightedRoundRobin(SmoothWeightedRoundRobin::default())
            }
            "least-connections" => Inner::LeastConnections(LeastLoaded::default()),
            "random" => Inner::Random(fastrand::Rng::new()),
            other => {
                return Err(Error::new(format!(
                    "unknown `inner` algorithm `{other}` (round-robin, weighted-round-robin, \
                     least-connections or random)"
                )));
            }
        };
        Ok(StickyCookie {
            cookie: AffinityCookie {
                name: settings.cookie,
                max_age_seconds,
                path: settings.path,
                secure: settings.secure,
                http_only: settings.http_only,
                same_site,
            },
            inner,
            by_token: HashMap::new(),
            len: 0,
            lookups: Lookups::declare()?,
        })
    }

    /// The backend a cookie value names, if it is still in the pool.
    pub fn backend_for(&self, token: &str) -> Option<u32> {
        self.by_token.get(token).copied()
    }
}

impl Balancer for StickyCookie {
    fn configure(options: &Options) -> Result<Self, Error> {
        if options.serves_l4() {
            return Err(Error::new(
                "sticky-cookie needs HTTP, but a TCP or UDP listener sends to this pool; use ip-hash",
            ));
        }
        StickyCookie::from_settings(options.parse()?)
    }

    fn set_backends(&mut self, _generation: u64, backends: Vec<Backend>) {
        self.by_token = (0u32..)
            .zip(&backends)
            .map(|(index, backend)| (backend.token.clone(), index))
            .collect();
        self.len = u32::try_from(backends.len()).unwrap_or(u32::MAX);
        match &mut self.inner {
            Inner::RoundRobin(rr) => rr.resize(self.len),
            Inner::WeightedRoundRobin(wrr) => wrr.update(&backends),
            Inner::LeastConnections(lc) => lc.update(&backends),
            Inner::Random(_) => {}
        }
    }

    fn needs(&self) -> RequestNeeds {
        RequestNeeds::nothing().cookie(&self.cookie.name)
    }

    fn select(&mut self, request: &Request) -> Result<Candidates, Error> {
        let sent = request.cookie(&self.cookie.name);
        let pinned = sent
            .as_deref()
            .and_then(|token| self.backend_for(token))
            .filter(|&index| {
                request
                    .backend_stats(index)
                    .is_some_and(|stats| stats.health.accepts_new_work())
            });
        let len = self.len;
        if let Some(index) = pinned {
            self.lookups.hit.inc();
            return Ok(with_successors(index, len));
        }
        if sent.is_some() {
            self.lookups.moved.inc();
        } else {
            self.lookups.miss.inc();
        }
        let candidates = match &mut self.inner {
            Inner::RoundRobin(rr) => rr.pick(),
            Inner::WeightedRoundRobin(wrr) => wrr.pick(),
            Inner::LeastConnections(lc) => lc.pick(&request.all_backend_stats()),
            Inner::Random(_) if len == 0 => Vec::new(),
            Inner::Random(rng) => with_successors(rng.u32(..len), len),
        };
        request.pin_with_cookie(&self.cookie);
        Ok(candidates)
    }
}

bascule_guest_sdk::export_balancer!(StickyCookie);

#[cfg(test)]
mod tests {
    use super::*;
    use bascule_guest_sdk::{BackendStats, Health, Protocol, RequestFixture};

    fn backends(ids: &[&str]) -> Vec<Backend> {
        ids.iter()
            .map(|id| Backend {
                token: format!("t-{id}"),
                ..Backend::named(*id)
            })
            .collect()
    }

    fn sticky(ids: &[&str]) -> StickyCookie {
        let mut sticky = StickyCookie::configure(&Options::from_json(r#"{"ttl": "1h"}"#)).unwrap();
        sticky.set_backends(1, backends(ids));
        sticky
    }

    fn request(cookie: Option<&str>, backends: usize) -> Request {
        Request::fixture(RequestFixture {
            cookies: cookie
                .map(|v| vec![(DEFAULT_COOKIE.to_owned(), v.to_owned())])
                .unwrap_or_default(),
            stats: vec![BackendStats::default(); backends],
            ..RequestFixture::default()
        })
    }

    #[test]
    fn first_request_is_balanced_and_pinned() {
        let mut balancer = sticky(&["a", "b", "c"]);
        let request = request(None, 3);
        assert_eq!(balancer.select(&request).unwrap()[0], 0);
        let cookie = request.pinned_cookie().unwrap();
        assert_eq!(
            (
                cookie.name.as_str(),
                cookie.max_age_seconds,
                cookie.http_only
            ),
            (DEFAULT_COOKIE, Some(3600), true)
        );
    }

    #[test]
    fn lookups_are_counted_by_result() {
        let count = |result: &str| {
            bascule_guest_sdk::metrics::native_value("sticky_cookie_lookups", &[result])
                .unwrap_or(0.0)
        };
        let before = ["hit", "miss", "moved"].map(count);
        let mut balancer = sticky(&["a", "b", "c"]);
        balancer.select(&request(None, 3)).unwrap();
        balancer.select(&request(Some("t-b"), 3)).unwrap();
        balancer.select(&request(Some("t-b"), 3)).unwrap();
        balancer.select(&request(Some("t-gone"), 3)).unwrap();
        let after = ["hit", "miss", "moved"].map(count);
        let counted: Vec<f64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
        assert_eq!(counted, [2.0, 1.0, 1.0]);
    }

    #[test]
    fn a_valid_cookie_is_honoured_without_re_pinning() {
        let mut balancer = sticky(&["a", "b", "c"]);
        for _ in 0..100 {
            let request = request(Some("t-b"), 3);
            assert_eq!(balancer.select(&request).unwrap()[0], 1);
            assert_eq!(request.pinned_cookie(), None);
        }
    }

    #[test]
    fn unknown_or_unhealthy_backend_is_re_balanced_and_re_pinned() {
        let mut balancer = sticky(&["a", "c"]);
        let stale = request(Some("t-b"), 2);
        balancer.select(&stale).unwrap();
        assert!(stale.pinned_cookie().is_some());
        let down = Request::fixture(RequestFixture {
            cookies: vec![(DEFAULT_COOKIE.to_owned(), "t-c".to_owned())],
            stats: vec![
                BackendStats::default(),
                BackendStats {
                    health: Health::Unhealthy,
                    ..BackendStats::default()
                },
            ],
            ..RequestFixture::default()
        });
        // Re-balanced over the pool (the host skips the unhealthy one).
        assert!(balancer.select(&down).unwrap().contains(&0));
        assert!(down.pinned_cookie().is_some());
    }

    #[test]
    fn options_are_checked() {
        let bad = |json: &str| StickyCookie::configure(&Options::from_json(json)).is_err();
        assert!(bad(r#"{"cookie": "a b"}"#));
        assert!(bad(r#"{"path": "x"}"#));
        assert!(bad(r#"{"inner": "maglev"}"#));
        assert!(bad(r#"{"ttl": "0s"}"#));
        assert!(!bad(r#"{"inner": "least-connections", "secure": true}"#));
        assert!(
            bad(r#"{"same-site": "none"}"#),
            "SameSite=None needs Secure"
        );
        assert!(bad(r#"{"same-site": "sometimes"}"#));
        assert!(!bad(r#"{"same-site": "none", "secure": true}"#));
        let lax = StickyCookie::configure(&Options::from_json(r#"{"same-site": "lax"}"#)).unwrap();
        assert_eq!(lax.cookie.same_site, Some(SameSite::Lax));
        let tcp = Options::for_protocols("{}", vec![Protocol::Tcp]);
        assert!(StickyCookie::configure(&tcp).is_err());
        let udp = Options::for_protocols("{}", vec![Protocol::Udp]);
        assert!(StickyCookie::configure(&udp).is_err());
    }
}
