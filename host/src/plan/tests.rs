use super::*;
use crate::config::ConfigSource;
use crate::plugin::PluginRuntime;
use crate::upstream::StatsRegistry;

fn config(extra: &str) -> Config {
    let text = format!(
        "[[listeners]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\n\n  [[listeners.routes]]\n  pool = \"main\"\n\n[pools.main]\nbalancer = \"builtin:round-robin\"\nslow-start = \"10m\"\nbackends = [{{ address = \"127.0.0.1:9001\" }}, {{ address = \"127.0.0.1:9002\" }}]\n{extra}"
    );
    Config::parse(ConfigSource::new(std::path::Path::new("t.toml"), text)).unwrap()
}

#[test]
fn only_a_committed_plan_registers_backends_and_starts_ramps() {
    let plugins = PluginRuntime::new().unwrap();
    let stats = StatsRegistry::default();
    let rejected = config("\n[pools.main.balancer-options]\nbogus = 1\n");
    assert!(Plan::build(&rejected, &plugins, &stats, 2).is_err());
    assert!(
        stats.lookup("main", "127.0.0.1:9001").1,
        "a rejected plan registered stats"
    );

    let built = Plan::build(&config(""), &plugins, &stats, 2).unwrap();
    assert!(
        stats.lookup("main", "127.0.0.1:9001").1,
        "building alone registers nothing"
    );
    built.commit(&stats);
    let (registered, new) = stats.lookup("main", "127.0.0.1:9001");
    assert!(!new);
    assert!(registered.is_ramping(), "a backend a reload adds ramps up");
    let ramps: Vec<u32> = built.pools()[0]
        .backends()
        .backends
        .iter()
        .map(|b| b.ramp_permille)
        .collect();
    assert!(ramps.iter().all(|&r| r < 10), "published ramped: {ramps:?}");
}
