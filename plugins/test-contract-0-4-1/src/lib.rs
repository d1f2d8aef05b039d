//! Test-only: a round robin built against `bascule:plugin@0.4.1`, the
//! contract as it was before the `metrics` interface (its WIT is kept in
//! `wit/`, copied from that release). Bindings come straight from
//! wit-bindgen, not from the guest SDK, which follows the current
//! contract. The host must keep loading it: a minor version of the same
//! line only adds.

#![allow(unsafe_code, missing_docs)]

use std::cell::Cell;

wit_bindgen::generate!({ path: "wit", world: "balancer" });

use bascule::plugin::types::{
    Backend, PluginError, Protocol, RequestFacts, RequestFields, RequestNeeds,
};
use exports::bascule::plugin::balance::{Candidates, Guest, SelectError};

thread_local! {
    static BACKENDS: Cell<u32> = const { Cell::new(0) };
    static TURN: Cell<u32> = const { Cell::new(0) };
}

struct Plugin;

impl Guest for Plugin {
    fn configure(_options: String, _protocols: Vec<Protocol>) -> Result<RequestNeeds, PluginError> {
        Ok(RequestNeeds {
            fields: RequestFields::empty(),
            headers: Vec::new(),
            cookies: Vec::new(),
        })
    }

    fn set_backends(_generation: u64, backends: Vec<Backend>) {
        BACKENDS.set(u32::try_from(backends.len()).unwrap_or(u32::MAX));
    }

    fn select(_request: RequestFacts) -> Result<Candidates, SelectError> {
        let count = BACKENDS.get();
        if count == 0 {
            return Ok(Candidates {
                count: 0,
                first: 0,
                second: 0,
                third: 0,
                fourth: 0,
            });
        }
        let first = TURN.get() % count;
        TURN.set(TURN.get().wrapping_add(1));
        Ok(Candidates {
            count: 1,
            first,
            second: 0,
            third: 0,
            fourth: 0,
        })
    }
}

export!(Plugin);
