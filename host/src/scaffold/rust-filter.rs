//! `{name}`: a Bascule header filter. It starts by tagging requests with
//! `x-{name}: 1` and answering 403 to those with `x-block: 1`; change
//! `declare` and `on_request`. Build with `./build.sh`, try it offline with
//! `bascule plugin run {file}.wasm --requests requests.jsonl`, then declare
//! it: `[filters.NAME] plugin = "path/to/{file}.wasm"`.

use bascule_guest_sdk::{
    Error, FilterNeeds, HeaderFilter, Headers, LocalResponse, Options, Request, RequestNeeds,
    Verdict,
};

/// The plugin's state, one per instance.
#[derive(Debug, Default)]
pub struct Plugin;

impl HeaderFilter for Plugin {
    fn configure(options: &Options) -> Result<Self, Error> {
        options.expect_none()?;
        Ok(Plugin)
    }

    fn declare(&self) -> FilterNeeds {
        FilterNeeds {
            on_request: Some(RequestNeeds::nothing().header("x-block")),
            ..FilterNeeds::default()
        }
    }

    fn on_request(&mut self, _request: &Request, headers: &mut Headers) -> Result<Verdict, Error> {
        if headers.get("x-block").as_deref() == Some("1") {
            return Ok(Verdict::Respond(LocalResponse::new(403, "blocked")));
        }
        headers.set("x-{name}", "1")?;
        Ok(Verdict::Forward)
    }
}

bascule_guest_sdk::export_header_filter!(Plugin);
