"""The application's route class: FastAPI's, turning away a path it cannot match before its
regular expression, and solving its dependencies by a plan made once where it can
(`web.solving`).

The router tries its routes in order, each with `matches` (a regular expression and FastAPI's
bookkeeping, about 0.7 us a route); the invite preview is the 32nd route and paid about 20 us
a request to reach it (docs/benchmarks.md, issue 22). A route's path starts with the literal
text before its first parameter and ends with the text after its last one
(`/api/workspaces/` and `/members` for `/api/workspaces/{slug}/members`), so a path that does
not is no match, whatever the expression would say: two string tests answer for most routes.
What a route matches, and the order routes are tried in, stay FastAPI's.

`FirstTried` goes further for the few routes asked for most (the member list, the invite
preview): it is the first entry of the application's routes and answers a path one of them
matches in full, before the router reaches their place in the list (the 25th and 32nd
routes, about 26 and 29 us a request). They stay in their place too, for everything else
(the OpenAPI document, a partial match, `url_for`). It changes no answer as long as no route
listed before one of them matches a path it matches, which tests/test_routing.py checks for
every route's paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import routing as fastapi_routing
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from workspaces.web import solving

# FastAPI's reading of the inclusion a route is being matched for (None: the route is the
# application's own). Without it (a later FastAPI), every path goes to the expression.
_inclusion = getattr(fastapi_routing, "_get_scope_effective_route_context", None)


class Route(APIRoute):
    """An APIRoute that answers `Match.NONE` at once for a path outside its literal ends, and
    whose handler solves its dependencies by plan where it can."""

    def __init__(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        head, _, rest = self.path_format.partition("{")
        self.literal_head = head
        # The text after the last parameter ('' when the path ends with one, or has none: the
        # head is then the whole path, and a longer path is left to the expression).
        self.literal_tail = rest.rpartition("}")[2] if rest else ""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # Behind a root path (uvicorn --root-path) the route's path is found by Starlette's
        # rules for it, and in a router included with `include_router` by the inclusion's
        # (its prefix): the expression decides, as it always did.
        if (scope["type"] == "http" and not scope.get("root_path")
                and _inclusion is not None and _inclusion(scope) is None):
            path: str = scope["path"]
            if not (path.startswith(self.literal_head) and path.endswith(self.literal_tail)):
                return Match.NONE, {}
        return super().matches(scope)

    def get_route_handler(self) -> solving.Handler:
        return solving.handler(self, super().get_route_handler())


class FirstTried(BaseRoute):
    """Routes tried before all the others (see the module's docstring); each is also listed in
    its own place, which decides everything but a full match."""

    def __init__(self, routes: Sequence[APIRoute]) -> None:
        self.routes = tuple(routes)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("fastapi.telemetry") is not None:  # FastAPI's OpenTelemetry names the
            return Match.NONE, {}  # route the router picks (`path_format`): in their place
        for route in self.routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:  # FastAPI names the route in the child scope ("route")
                return match, child_scope
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope["route"].handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)  # the routes' own places answer
