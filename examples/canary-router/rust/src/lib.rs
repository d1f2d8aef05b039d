//! The canary router, in Rust with the guest SDK.
//!
//! A request with the header `x-canary: 1` or the cookie `canary=1` goes
//! to a backend whose metadata says `track = "canary"`; every other
//! request goes round robin over the other backends. When a side has no
//! backend, the other side serves (a canary-only pool still answers).

use bascule_guest_sdk::{
    Backend, Balancer, Candidates, Error, Options, Request, RequestNeeds, with_successors,
};

/// The two tracks' backends, by index, and each track's turn.
#[derive(Debug, Default)]
pub struct CanaryRouter {
    canary: Vec<u32>,
    stable: Vec<u32>,
    turns: [usize; 2],
}

impl CanaryRouter {
    /// Whether `request` asks for the canary.
    fn wants_canary(request: &Request) -> bool {
        request.header("x-canary").as_deref() == Some("1")
            || request.cookie("canary").as_deref() == Some("1")
    }
}

impl Balancer for CanaryRouter {
    fn configure(options: &Options) -> Result<Self, Error> {
        options.expect_none()?;
        Ok(CanaryRouter::default())
    }

    fn set_backends(&mut self, _generation: u64, backends: Vec<Backend>) {
        let (canary, stable): (Vec<(u32, &Backend)>, Vec<(u32, &Backend)>) = (0u32..)
            .zip(&backends)
            .partition(|(_, backend)| {
                backend
                    .metadata
                    .iter()
                    .any(|(key, value)| key == "track" && value == "canary")
            });
        self.canary = canary.into_iter().map(|(index, _)| index).collect();
        self.stable = stable.into_iter().map(|(index, _)| index).collect();
    }

    fn needs(&self) -> RequestNeeds {
        RequestNeeds::nothing().header("x-canary").cookie("canary")
    }

    fn select(&mut self, request: &Request) -> Result<Candidates, Error> {
        let track = usize::from(Self::wants_canary(request));
        let [stable, canary] = [&self.stable, &self.canary];
        let (first, other) = if track == 1 { (canary, stable) } else { (stable, canary) };
        let side = if first.is_empty() { other } else { first };
        let Some(len) = u32::try_from(side.len()).ok().filter(|&len| len > 0) else {
            return Ok(Vec::new());
        };
        let turn = &mut self.turns[track];
        let start = u32::try_from(*turn % side.len()).unwrap_or(0);
        *turn = turn.wrapping_add(1);
        // The chosen backend, then the rest of its side in turn.
        Ok(with_successors(start, len)
            .into_iter()
            .filter_map(|position| side.get(position as usize).copied())
            .collect())
    }
}

bascule_guest_sdk::export_balancer!(CanaryRouter);

#[cfg(test)]
mod tests {
    use super::*;
    use bascule_guest_sdk::RequestFixture;

    fn router() -> CanaryRouter {
        let mut router = CanaryRouter::configure(&Options::from_json("{}")).unwrap();
        let canary = Backend {
            metadata: vec![("track".to_owned(), "canary".to_owned())],
            ..Backend::named("canary-1")
        };
        router.set_backends(1, vec![Backend::named("a"), canary, Backend::named("b")]);
        router
    }

    fn request(headers: &[(&str, &str)], cookies: &[(&str, &str)]) -> Request {
        Request::fixture(RequestFixture {
            headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            cookies: cookies.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ..RequestFixture::default()
        })
    }

    #[test]
    fn canary_requests_go_to_canary_backends_and_the_rest_round_robin() {
        let mut router = router();
        let firsts: Vec<u32> = (0..4).map(|_| router.select(&request(&[], &[])).unwrap()[0]).collect();
        assert_eq!(firsts, [0, 2, 0, 2]);
        assert_eq!(router.select(&request(&[("x-canary", "1")], &[])).unwrap()[0], 1);
        assert_eq!(router.select(&request(&[], &[("canary", "1")])).unwrap()[0], 1);
        assert_eq!(router.select(&request(&[("x-canary", "0")], &[])).unwrap()[0], 0);
    }
}
