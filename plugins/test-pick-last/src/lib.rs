//! Test plugin: always picks the last backend of the pool.
//!
//! Not embedded in the binary: host tests load it from its `.wasm` path, the
//! same way an operator loads their own plugin.

use bascule_guest_sdk::{Backend, Balancer, Candidates, Error, Options, Request};

/// Remembers only how many backends there are.
#[derive(Debug, Default)]
pub struct PickLast {
    len: u32,
}

impl Balancer for PickLast {
    fn configure(options: &Options) -> Result<Self, Error> {
        options.expect_none()?;
        Ok(PickLast::default())
    }

    fn set_backends(&mut self, _generation: u64, backends: Vec<Backend>) {
        self.len = u32::try_from(backends.len()).unwrap_or(u32::MAX);
    }

    fn select(&mut self, _request: &Request) -> Result<Candidates, Error> {
        Ok(self.len.checked_sub(1).into_iter().collect())
    }
}

bascule_guest_sdk::export_balancer!(PickLast);
