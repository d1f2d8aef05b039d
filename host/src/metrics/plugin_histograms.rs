//! The histogram families plugins declare, by name: one family per name
//! in the process, so that a reload (which declares again before the old
//! plan goes) and several pools using one plugin add to the same
//! metric, and `/metrics` renders each name once.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::histogram::Family;

static FAMILIES: Mutex<Vec<Weak<Family>>> = Mutex::new(Vec::new());

/// The family named `name` with `bounds`: the live one, or a new one.
/// `Err` when a live family of that name has other bounds (a scrape
/// cannot hold one name with two bucket layouts).
pub fn family(name: &str, help: &str, bounds: &[f64]) -> Result<Arc<Family>, String> {
    let mut families = FAMILIES.lock().unwrap_or_else(PoisonError::into_inner);
    families.retain(|family| family.strong_count() > 0);
    if let Some(live) = families
        .iter()
        .filter_map(Weak::upgrade)
        .find(|family| family.name() == name)
    {
        return if live.bounds() == bounds {
            Ok(live)
        } else {
            Err(format!(
                "histogram `{name}` is declared elsewhere with other buckets"
            ))
        };
    }
    let family = Arc::new(Family::named(
        name.to_owned(),
        help.to_owned(),
        bounds.to_vec(),
    ));
    families.push(Arc::downgrade(&family));
    Ok(family)
}

/// Every live plugin histogram in the Prometheus text format.
pub fn render(out: &mut String) {
    let families: Vec<Arc<Family>> = FAMILIES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for family in families {
        family.render(out);
    }
}
