//! `{name}`: a Bascule balancer. It starts as a round robin; change
//! `select`. Build with `./build.sh`, try it offline with
//! `bascule plugin run {file}.wasm --backends backends.toml --requests requests.jsonl`,
//! then name it in a pool: `balancer = "path/to/{file}.wasm"`.

use bascule_guest_sdk::{Backend, Balancer, Candidates, Error, Options, Request, with_successors};

/// The plugin's state, one per instance.
#[derive(Debug, Default)]
pub struct Plugin {
    backends: u32,
    turn: u32,
}

impl Balancer for Plugin {
    fn configure(options: &Options) -> Result<Self, Error> {
        options.expect_none()?;
        Ok(Plugin::default())
    }

    fn set_backends(&mut self, _generation: u64, backends: Vec<Backend>) {
        self.backends = u32::try_from(backends.len()).unwrap_or(u32::MAX);
    }

    fn select(&mut self, _request: &Request) -> Result<Candidates, Error> {
        if self.backends == 0 {
            return Ok(Vec::new());
        }
        let first = self.turn % self.backends;
        self.turn = self.turn.wrapping_add(1);
        Ok(with_successors(first, self.backends))
    }
}

bascule_guest_sdk::export_balancer!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use bascule_guest_sdk::RequestFixture;

    #[test]
    fn each_backend_in_turn() {
        let mut plugin = Plugin::configure(&Options::from_json("{}")).unwrap();
        plugin.set_backends(1, vec![Backend::named("a"), Backend::named("b")]);
        let request = Request::fixture(RequestFixture::default());
        let firsts: Vec<u32> = (0..4).map(|_| plugin.select(&request).unwrap()[0]).collect();
        assert_eq!(firsts, [0, 1, 0, 1]);
    }
}
