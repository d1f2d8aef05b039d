"""{name}: a Bascule header filter in Python (componentize-py). It starts
by tagging requests with `x-{name}: 1` and answering 403 to those with
`x-block: 1`; change `on_request`. Build with `./build.sh`, try it
offline with `./test.sh`, then declare it:
`[filters.NAME] plugin = "path/to/{file}.wasm"`.
"""

from typing import List, Optional, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.filter import (
    EditAction,
    FilterNeeds,
    HeaderEdit,
    LocalResponse,
    RequestChanges,
    Verdict,
    Verdict_Forward,
    Verdict_Respond,
)
from wit_world.imports.types import PluginError, RequestFacts, RequestFields, RequestNeeds


class Filter(exports.Filter):
    def configure(self, options: str) -> FilterNeeds:
        if options != "{}":
            raise Err(PluginError(message="{name} takes no options"))
        # `on_request` is called, with the `x-block` header.
        needs = RequestNeeds(fields=RequestFields(0), headers=["x-block"], cookies=[])
        return FilterNeeds(on_request=needs, on_response=None, request_edits=[], response_edits=[])

    def on_request(self, request: RequestFacts) -> Verdict:
        if ("x-block", "1") in (request.headers or []):
            return Verdict_Respond(LocalResponse(status=403, headers=[], body="blocked"))
        tag = HeaderEdit(action=EditAction.SET, name="x-{name}", value="1")
        return Verdict_Forward(RequestChanges(headers=[tag], path=None))

    def on_response(
        self, request: RequestFacts, status: int, headers: Optional[List[Tuple[str, str]]]
    ) -> List[HeaderEdit]:
        # Not called: `configure` declares no response phase.
        return []
