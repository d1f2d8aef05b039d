//! The sandboxed plugin and its native build choose identically: the same
//! candidates and the same affinity cookie, over random pools (sizes,
//! weights, ids), random requests and random live load, with fixed seeds.

use bascule::upstream::BackendSelection;
use bascule_guest_sdk::{Balancer, Options};

use crate::harness::{Load, Rng, TestRequest, backend_set, native_backends, wasm_balancer};

const POOLS: u64 = 12;
const CALLS_PER_POOL: u64 = 60;

fn same_choices<B: Balancer>(name: &str, options: &str) {
    let mut rng = Rng::new(0x5eed ^ name.len() as u64);
    for pool in 0..POOLS {
        let size = 1 + rng.below(40) as usize;
        let ids: Vec<u64> = (0..size as u64).map(|i| i * 7 + rng.below(7)).collect();
        let weights: Vec<u32> = (0..size).map(|_| 1 + rng.below(5) as u32).collect();
        let set = backend_set(&ids, &weights);
        let mut load = Load::default();
        load.randomize(&set, &mut rng);

        let wasm = wasm_balancer(name, options, &set);
        let mut native = B::configure(&Options::from_json(options)).unwrap();
        native.set_backends(set.generation, native_backends(&set));

        for call in 0..CALLS_PER_POOL {
            let mut request = TestRequest::random(&mut rng);
            if rng.below(2) == 0 {
                // A cookie naming a backend of the pool, as an affinity
                // cookie set by an earlier response would.
                let token = set.backends[rng.below(size as u64) as usize].token.clone();
                request.cookies = vec![("session".to_owned(), token)];
            }
            let fixture = request.fixture(&set);
            let from_wasm = wasm.select(&set, &request.info()).unwrap();
            let from_native = native.select(&fixture).unwrap();
            assert_eq!(
                from_wasm.candidates, from_native,
                "{name} {options}: pool {pool} ({size} backends), call {call}, {request:?}"
            );
            assert_eq!(
                from_wasm.affinity.as_ref().map(|c| c.name().to_owned()),
                fixture.pinned_cookie().map(|c| c.name),
                "{name}: affinity differs at call {call}"
            );
            // The load moves between calls, as it does under traffic.
            match rng.below(3) {
                0 => load.start(&set, rng.below(size as u64) as usize),
                1 => load.finish_one(&mut rng),
                _ => {}
            }
        }
    }
}

#[test]
fn round_robin() {
    same_choices::<round_robin::RoundRobin>("round-robin", "{}");
}

#[test]
fn weighted_round_robin() {
    same_choices::<weighted_round_robin::WeightedRoundRobin>("weighted-round-robin", "{}");
}

#[test]
fn random() {
    same_choices::<random::Random>("random", r#"{"seed": 7}"#);
}

#[test]
fn weighted_random() {
    same_choices::<weighted_random::WeightedRandom>("weighted-random", r#"{"seed": 7}"#);
}

#[test]
fn least_connections() {
    same_choices::<least_connections::LeastConnections>("least-connections", "{}");
}

#[test]
fn power_of_two_choices() {
    same_choices::<power_of_two_choices::PowerOfTwoChoices>(
        "power-of-two-choices",
        r#"{"seed": 7}"#,
    );
}

#[test]
fn least_response_time() {
    // A decay far longer than the test: the wasm build reads a real clock,
    // the native one a fixed instant.
    same_choices::<least_response_time::LeastResponseTime>(
        "least-response-time",
        r#"{"decay": "1000h"}"#,
    );
}

#[test]
fn ip_hash() {
    same_choices::<ip_hash::IpHash>("ip-hash", "{}");
}

#[test]
fn consistent_hash() {
    for options in [
        r#"{"key": "client-ip"}"#,
        r#"{"key": "header:x-user", "vnodes": 40}"#,
        r#"{"key": "cookie:session"}"#,
        r#"{"key": "path"}"#,
        r#"{"key": "query:user"}"#,
    ] {
        same_choices::<consistent_hash::ConsistentHash>("consistent-hash", options);
    }
}

#[test]
fn bounded_load_hash() {
    same_choices::<bounded_load_hash::BoundedLoadHash>(
        "bounded-load-hash",
        r#"{"key": "header:x-user", "c": 1.1}"#,
    );
}

#[test]
fn maglev() {
    same_choices::<maglev::Maglev>("maglev", r#"{"key": "query:user"}"#);
}

#[test]
fn rendezvous() {
    same_choices::<rendezvous::Rendezvous>("rendezvous", r#"{"key": "header:x-user"}"#);
}

#[test]
fn sticky_cookie() {
    for inner in ["round-robin", "weighted-round-robin", "least-connections"] {
        let options = format!(r#"{{"cookie": "session", "inner": "{inner}", "ttl": "10m"}}"#);
        same_choices::<sticky_cookie::StickyCookie>("sticky-cookie", &options);
    }
}
