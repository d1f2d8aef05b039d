//! A pool, a request and a load, each presented twice: to the sandboxed
//! plugin through the host's types, and to the native build of the same
//! plugin through the SDK's fixtures.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bascule::config::{PluginRef, SandboxConfig};
use bascule::plugin::{PluginRuntime, WasmBalancer};
use bascule::upstream::{
    ActiveRequest, Backend, BackendSet, BackendStats, Health, Protocol, RequestView,
};
use bascule_guest_sdk as sdk;

/// A small deterministic generator (xorshift64*), so failures replay.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

fn runtime() -> &'static PluginRuntime {
    static RUNTIME: OnceLock<PluginRuntime> = OnceLock::new();
    RUNTIME.get_or_init(|| PluginRuntime::new().unwrap())
}

/// `builtin:<name>` configured with `options` for `set`.
pub fn wasm_balancer(name: &str, options: &str, set: &Arc<BackendSet>) -> WasmBalancer {
    let compiled = runtime()
        .compile_balancer(&PluginRef::Builtin(name.to_owned()))
        .unwrap();
    WasmBalancer::new(
        "test",
        compiled,
        options.to_owned(),
        vec![Protocol::Http],
        SandboxConfig::default(),
        set,
    )
    .unwrap()
}

/// A pool of backends `backend-<id>` with the given weights.
pub fn backend_set(ids: &[u64], weights: &[u32]) -> Arc<BackendSet> {
    Arc::new(BackendSet::new(
        ids.iter()
            .zip(weights)
            .map(|(id, &weight)| {
                Backend::new(
                    format!("backend-{id}"),
                    bascule::upstream::fixed_endpoints(
                        format!("10.1.{}.{}:80", id / 256 % 256, id % 256)
                            .parse()
                            .unwrap(),
                    ),
                    weight,
                    Vec::new(),
                    Arc::new(BackendStats::default()),
                )
            })
            .collect(),
    ))
}

/// The backends as the native plugin receives them.
pub fn native_backends(set: &BackendSet) -> Vec<sdk::Backend> {
    set.backends
        .iter()
        .map(|b| sdk::Backend {
            id: b.id.clone(),
            address: b.address.clone(),
            weight: b.weight,
            ramp_permille: b.ramp_permille,
            health_permille: b.health_permille,
            token: b.token.clone(),
            metadata: b.metadata.clone(),
        })
        .collect()
}

/// A request as a test describes it.
#[derive(Debug, Clone, Default)]
pub struct TestRequest {
    pub client_ip: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub cookies: Vec<(String, String)>,
}

impl TestRequest {
    pub fn random(rng: &mut Rng) -> Self {
        let user = rng.below(500);
        TestRequest {
            client_ip: format!("192.0.{}.{}", rng.below(4), rng.below(256)),
            path: format!("/items/{}", rng.below(50)),
            query: Some(format!("user={user}&page={}", rng.below(3))),
            headers: vec![("x-user".to_owned(), format!("u{user}"))],
            cookies: if rng.below(2) == 0 {
                vec![("session".to_owned(), format!("s{}", rng.below(100)))]
            } else {
                Vec::new()
            },
        }
    }

    pub fn with_header(name: &str, value: &str) -> Self {
        TestRequest {
            client_ip: "192.0.2.1".to_owned(),
            path: "/".to_owned(),
            headers: vec![(name.to_owned(), value.to_owned())],
            ..TestRequest::default()
        }
    }

    /// This request from `client_ip`, path `/`.
    pub fn with_client(mut self, client_ip: &str) -> Self {
        client_ip.clone_into(&mut self.client_ip);
        if self.path.is_empty() {
            self.path.push('/');
        }
        self
    }

    /// The request as the proxy hands it to a balancer.
    pub fn info(&self) -> RequestView {
        let uri = match &self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        };
        let mut builder = http::Request::get(uri).header("host", "test.example");
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        if !self.cookies.is_empty() {
            let cookie: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            builder = builder.header("cookie", cookie.join("; "));
        }
        let (parts, ()) = builder.body(()).unwrap().into_parts();
        RequestView {
            protocol: Protocol::Http,
            listener: "test".into(),
            client: format!("{}:40000", self.client_ip).parse().unwrap(),
            sni: None,
            tls: None,
            http: Some(std::sync::Arc::new(parts)),
        }
    }

    /// The same request, and the pool's live stats, as an SDK fixture.
    pub fn fixture(&self, set: &BackendSet) -> sdk::Request {
        sdk::Request::fixture(sdk::RequestFixture {
            protocol: sdk::Protocol::Http,
            listener: "test".to_owned(),
            client_ip: self.client_ip.clone(),
            client_port: 40000,
            sni: None,
            method: "GET".to_owned(),
            host: Some("test.example".to_owned()),
            path: self.path.clone(),
            query: self.query.clone(),
            headers: self.headers.clone(),
            cookies: self.cookies.clone(),
            stats: set
                .backends
                .iter()
                .map(|b| native_stats(&b.stats))
                .collect(),
        })
    }
}

fn native_stats(stats: &BackendStats) -> sdk::BackendStats {
    let snapshot = stats.snapshot();
    sdk::BackendStats {
        active: snapshot.active,
        ewma_latency_us: snapshot.ewma_latency_us,
        recent_failures: snapshot.consecutive_failures,
        health: match snapshot.health {
            Health::Healthy => sdk::Health::Healthy,
            Health::Degraded => sdk::Health::Degraded,
            Health::Unhealthy => sdk::Health::Unhealthy,
            Health::Draining => sdk::Health::Draining,
        },
    }
}

/// In-flight requests held on a pool's backends, to give balancers a load.
#[derive(Default)]
pub struct Load {
    held: Vec<(usize, ActiveRequest)>,
}

impl Load {
    /// Starts one request on backend `index`.
    pub fn start(&mut self, set: &BackendSet, index: usize) {
        self.held.push((index, set.backends[index].stats.start()));
    }

    /// Finishes one random request, if any.
    pub fn finish_one(&mut self, rng: &mut Rng) {
        if !self.held.is_empty() {
            let at = rng.below(self.held.len() as u64) as usize;
            self.held.swap_remove(at);
        }
    }

    /// Random load and latencies on every backend.
    pub fn randomize(&mut self, set: &BackendSet, rng: &mut Rng) {
        for (index, backend) in set.backends.iter().enumerate() {
            for _ in 0..rng.below(4) {
                self.start(set, index);
            }
            if rng.below(3) > 0 {
                backend
                    .stats
                    .record_success(Duration::from_micros(100 + rng.below(20_000)));
            }
        }
    }
}
