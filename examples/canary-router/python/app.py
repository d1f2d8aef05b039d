"""The canary router, in Python (componentize-py).

A request with the header `x-canary: 1` or the cookie `canary=1` goes to a
backend whose metadata says `track = "canary"`; every other request goes
round robin over the other backends. When a side has no backend, the other
side serves.
"""

from typing import List

from wit_world import exports
from wit_world.exports.balance import Candidates
from wit_world.imports.types import (
    Backend,
    Protocol,
    RequestFacts,
    RequestFields,
    RequestNeeds,
)

NONE = Candidates(count=0, first=0, second=0, third=0, fourth=0)


class State:
    """The instance's state: componentize-py makes a new `Balance` for
    every call, so what must last lives here, at module level."""

    canary: List[int] = []
    stable: List[int] = []
    turns = [0, 0]


class Balance(exports.Balance):
    def configure(self, options: str, protocols: List[Protocol]) -> RequestNeeds:
        # Nothing but the header and the cookie is lifted into `select`.
        return RequestNeeds(fields=RequestFields(0), headers=["x-canary"], cookies=["canary"])

    def set_backends(self, generation: int, backends: List[Backend]) -> None:
        def is_canary(backend: Backend) -> bool:
            return ("track", "canary") in backend.metadata

        State.canary = [n for n, b in enumerate(backends) if is_canary(b)]
        State.stable = [n for n, b in enumerate(backends) if not is_canary(b)]

    def select(self, request: RequestFacts) -> Candidates:
        headers = request.headers or []
        cookies = request.values or []
        wants = any(name == "x-canary" and value == "1" for name, value in headers) or (
            len(cookies) > 0 and cookies[0] == "1"
        )
        track = 1 if wants else 0
        first, other = (State.canary, State.stable) if wants else (State.stable, State.canary)
        side = first or other
        if not side:
            return NONE
        start = State.turns[track] % len(side)
        State.turns[track] += 1
        ranked = side[start:] + side[:start]
        picks = (ranked + [0, 0, 0, 0])[:4]
        return Candidates(count=min(len(ranked), 4), first=picks[0], second=picks[1], third=picks[2], fourth=picks[3])
