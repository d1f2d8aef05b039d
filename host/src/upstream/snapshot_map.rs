//! Maps read on every request and written rarely (a first connection to
//! an endpoint): an immutable snapshot behind an [`ArcSwap`], read without
//! a lock and replaced whole when a key is added.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use arc_swap::ArcSwap;

/// The value of `key` in `map`, inserted (default) on first use.
pub fn get_or_insert<K, V>(map: &ArcSwap<HashMap<K, Arc<V>>>, key: K) -> Arc<V>
where
    K: Eq + Hash + Clone,
    V: Default,
{
    if let Some(value) = map.load().get(&key) {
        return Arc::clone(value);
    }
    let mut created = None;
    map.rcu(|current| {
        let mut next = HashMap::clone(current);
        let value = next.entry(key.clone()).or_default();
        created = Some(Arc::clone(value));
        next
    });
    created.unwrap_or_default()
}
