"""{name}: a Bascule balancer in Python (componentize-py). It starts as a
round robin; change `select`. Build with `./build.sh`, try it offline
with `./test.sh`, then name it in a pool: `balancer = "path/to/{file}.wasm"`.

componentize-py makes a new `Balance` for every call: what must last
lives at module level, in `State`.
"""

from typing import List

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.balance import Candidates
from wit_world.imports.types import (
    Backend,
    PluginError,
    Protocol,
    RequestFacts,
    RequestFields,
    RequestNeeds,
)


class State:
    backends = 0
    turn = 0


class Balance(exports.Balance):
    def configure(self, options: str, protocols: List[Protocol]) -> RequestNeeds:
        if options != "{}":
            raise Err(PluginError(message="{name} takes no options"))
        # Reads nothing of the request: no field, header or cookie.
        return RequestNeeds(fields=RequestFields(0), headers=[], cookies=[])

    def set_backends(self, generation: int, backends: List[Backend]) -> None:
        State.backends = len(backends)

    def select(self, request: RequestFacts) -> Candidates:
        count = min(State.backends, 4)
        if count == 0:
            return Candidates(count=0, first=0, second=0, third=0, fourth=0)
        # The backend whose turn it is, then the next ones as fallbacks.
        first = State.turn % State.backends
        State.turn += 1
        picks = [(first + n) % State.backends for n in range(count)] + [0, 0, 0, 0]
        return Candidates(count=count, first=picks[0], second=picks[1], third=picks[2], fourth=picks[3])
