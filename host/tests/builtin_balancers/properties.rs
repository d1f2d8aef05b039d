//! What each algorithm promises, checked through the real `.wasm` in the
//! sandbox (the native unit tests in `plugins/` check the same natively).

use std::sync::Arc;

use bascule::upstream::{BackendSelection, BackendSet};

use crate::harness::{Load, Rng, TestRequest, backend_set, wasm_balancer};

fn first_choice(
    balancer: &dyn BackendSelection,
    set: &Arc<BackendSet>,
    request: &TestRequest,
) -> usize {
    balancer.select(set, &request.info()).unwrap().candidates[0] as usize
}

fn longest_runs(sequence: &[usize], backends: usize) -> Vec<usize> {
    let mut longest = vec![0; backends];
    let mut run = 0;
    for (i, &b) in sequence.iter().enumerate() {
        run = if i > 0 && sequence[i - 1] == b {
            run + 1
        } else {
            1
        };
        longest[b] = longest[b].max(run);
    }
    longest
}

#[test]
fn weighted_round_robin_shares_and_runs() {
    for weights in [
        vec![5, 1, 1],
        vec![3, 2, 1],
        vec![10, 1, 1, 1],
        vec![4, 4, 1],
        vec![7, 3],
    ] {
        let ids: Vec<u64> = (0..weights.len() as u64).collect();
        let set = backend_set(&ids, &weights);
        let wrr = wasm_balancer("weighted-round-robin", "{}", &set);
        let request = TestRequest::default().with_client("192.0.2.1");
        let picks: Vec<usize> = (0..10_000)
            .map(|_| first_choice(&wrr, &set, &request))
            .collect();
        let total: u32 = weights.iter().sum();
        let runs = longest_runs(&picks, weights.len());
        for (i, &w) in weights.iter().enumerate() {
            let share = picks.iter().filter(|&&b| b == i).count() as f64 / 10_000.0;
            let expected = f64::from(w) / f64::from(total);
            assert!(
                (share - expected).abs() <= 0.01,
                "{weights:?}: backend {i} got {share}"
            );
            // Its picks spread over the gaps the others leave: no run longer
            // than ceil(w / (total - w)).
            let shortest = w.div_ceil(total - w) as usize;
            assert!(runs[i] <= shortest, "{weights:?}: runs {runs:?}");
        }
    }
}

/// Through the sandbox: removing one of 10 backends moves only keys that
/// were on it (`exact`), or few others (`max_moved_elsewhere`); loads stay
/// within `tolerance` of the mean over `keys` keys.
fn check_hashing(name: &str, keys: u64, tolerance: f64, max_moved_elsewhere: f64) {
    let options = r#"{"key": "header:x-key"}"#;
    let all_ids: Vec<u64> = (0..10).collect();
    let all = backend_set(&all_ids, &[1; 10]);
    let fewer_ids: Vec<u64> = all_ids.iter().copied().filter(|&i| i != 4).collect();
    let fewer = backend_set(&fewer_ids, &[1; 9]);
    let (before, after) = (
        wasm_balancer(name, options, &all),
        wasm_balancer(name, options, &fewer),
    );
    let mut counts = [0u64; 10];
    let (mut elsewhere, mut moved) = (0u64, 0u64);
    for key in 0..keys {
        let request = TestRequest::with_header("x-key", &format!("key-{key}"));
        let was = first_choice(&before, &all, &request);
        counts[was] += 1;
        if key < 100_000 {
            let now = first_choice(&after, &fewer, &request);
            if all.backends[was].id != "backend-4" {
                elsewhere += 1;
                moved += u64::from(all.backends[was].id != fewer.backends[now].id);
            }
        }
    }
    let mean = keys as f64 / 10.0;
    for count in counts {
        assert!(
            (count as f64 - mean).abs() <= tolerance * mean,
            "{name}: loads {counts:?}"
        );
    }
    assert!(
        moved as f64 <= max_moved_elsewhere * elsewhere as f64,
        "{name}: {moved} of {elsewhere} keys moved needlessly"
    );
}

#[test]
fn consistent_hash_moves_only_the_removed_keys_and_balances() {
    check_hashing("consistent-hash", 100_000, 0.10, 0.0);
}

#[test]
fn rendezvous_moves_only_the_removed_keys_and_balances() {
    check_hashing("rendezvous", 100_000, 0.10, 0.0);
}

#[test]
fn maglev_disrupts_little_and_balances_tightly() {
    // A million keys for the ±2% load check: at 100,000 the sampling noise
    // alone is ±1% (one standard deviation). Disruption: the paper's bound
    // for a 65,537-slot table is under 2% of the other keys.
    check_hashing("maglev", 1_000_000, 0.02, 0.02);
}

#[test]
fn bounded_load_hash_never_places_above_the_bound() {
    for c in [1.0, 1.25, 2.0] {
        let set = backend_set(&(0..8).collect::<Vec<_>>(), &[1; 8]);
        let balancer = wasm_balancer(
            "bounded-load-hash",
            &format!(r#"{{"key": "header:x-key", "c": {c}}}"#),
            &set,
        );
        let mut load = Load::default();
        let mut rng = Rng::new(99);
        for step in 0..3_000 {
            if rng.below(3) == 0 {
                load.finish_one(&mut rng);
                continue;
            }
            // Five hot keys: a plain ring would pile them on few backends.
            let request = TestRequest::with_header("x-key", &format!("hot-{}", rng.below(5)));
            let chosen = first_choice(&balancer, &set, &request);
            load.start(&set, chosen);
            let active: Vec<u32> = set
                .backends
                .iter()
                .map(|b| b.stats.snapshot().active)
                .collect();
            let total: u32 = active.iter().sum();
            let bound = (c * f64::from(total) / 8.0).ceil() as u32;
            assert!(
                active[chosen] <= bound,
                "c={c}, step {step}: {active:?}, bound {bound}"
            );
        }
    }
}

#[test]
fn least_connections_and_two_choices_avoid_a_busy_backend() {
    for name in ["least-connections", "power-of-two-choices"] {
        let set = backend_set(&(0..4).collect::<Vec<_>>(), &[1; 4]);
        let mut load = Load::default();
        for _ in 0..20 {
            load.start(&set, 2);
        }
        let balancer = wasm_balancer(name, "{}", &set);
        let request = TestRequest::default().with_client("192.0.2.1");
        let busy = (0..1_000)
            .filter(|_| first_choice(&balancer, &set, &request) == 2)
            .count();
        assert_eq!(busy, 0, "{name} sent {busy} of 1000 to the busy backend");
    }
}
