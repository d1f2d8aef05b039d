"""{name}: a Bascule health interpreter in Python (componentize-py). It
starts healthy on 2xx and unhealthy otherwise; change `interpret`. Build
with `./build.sh`, try it offline with `./test.sh`, then name it:
`[pools.NAME.health] interpreter = "path/to/{file}.wasm"`.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.health import (
    ProbeKind,
    ProbeNeeds,
    ProbeOutcome,
    Verdict,
    Verdict_Healthy,
    Verdict_Unhealthy,
)
from wit_world.imports.types import PluginError


class Health(exports.Health):
    def configure(self, options: str, kind: ProbeKind) -> ProbeNeeds:
        if options != "{}":
            raise Err(PluginError(message="{name} takes no options"))
        # Reads no header or body, sends nothing of its own.
        return ProbeNeeds(headers=[], body=False, send=None, until=None)

    def interpret(self, outcome: ProbeOutcome) -> Verdict:
        if outcome.error is not None:
            return Verdict_Unhealthy(outcome.error)
        if outcome.status is None:
            return Verdict_Healthy("connected")
        if 200 <= outcome.status < 300:
            return Verdict_Healthy(str(outcome.status))
        return Verdict_Unhealthy(f"status {outcome.status}")
