"""web.routing.Route: what every route matches stays FastAPI's, only found sooner."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from opentelemetry import trace
from starlette.routing import Match

from workspaces.app import FIRST_TRIED, create_app
from workspaces.settings import Settings
from workspaces.web.routing import FirstTried, Route


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings(database_url="sqlite:///unused.db", secret_key="x" * 40,
                               _env_file=None))  # type: ignore[call-arg]


def _filled(path_format: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value, path_format)


def _paths(routes: Sequence[APIRoute]) -> set[str]:
    """Every route's path with its parameters filled in several ways, and near misses: a
    trailing slash, one missing, a segment too many, an empty parameter, a parameter holding a
    slash, the bare prefix."""
    values = ("team", "9b2f6c1e-3f0a-4c7e-9a53-7a1c2f0e4d11", "wsi_" + "A" * 43, "a%2Fb",
              "members", "")
    found = {"/", "", "/api", "/api/", "/api/workspaces", "/api/workspaces/"}
    for route in routes:
        for value in values:
            path = _filled(route.path_format, value)
            found |= {path, path + "/", path.rstrip("/"), path + "/x", path + "x", "x" + path,
                      _filled(route.path_format, value + "/extra")}
    return found


def test_every_route_of_the_application_is_our_route_class(app: FastAPI) -> None:
    routes = [route for route in app.routes if isinstance(route, APIRoute)]
    assert len(routes) > 100
    assert [route.path for route in routes if not isinstance(route, Route)] == []


@pytest.mark.parametrize("root_path", ["", "/prefix"])
def test_each_route_matches_what_fastapi_s_own_matching_matches(app: FastAPI,
                                                                root_path: str) -> None:
    """Held against FastAPI's `APIRoute.matches` for every route, every method and every path
    of every route (and near misses): the same match, partial match (405) or none, with the
    same path parameters."""
    routes = [route for route in app.routes if isinstance(route, Route)]
    paths = _paths(routes)
    differ: list[tuple[str, str, str]] = []
    shortcut = 0
    for route in routes:
        for path in paths:
            for method in ("GET", "POST", "DELETE"):
                scope: dict[str, Any] = {"type": "http", "method": method,
                                         "path": root_path + path, "root_path": root_path}
                ours = route.matches(dict(scope))
                theirs = APIRoute.matches(route, dict(scope))
                if ours != theirs:
                    differ.append((route.path, method, path))
                if not root_path and not path.startswith(route.literal_head):
                    shortcut += 1
    assert differ == []
    assert root_path or shortcut > 0  # the literal ends did turn paths away


def test_a_route_reads_the_literal_text_around_its_parameters() -> None:
    async def endpoint() -> None:  # pragma: no cover (never called)
        return None

    assert (Route("/api/workspaces/{slug}/members", endpoint).literal_head,
            Route("/api/workspaces/{slug}/members", endpoint).literal_tail) == \
        ("/api/workspaces/", "/members")
    assert (Route("/api/invites/{token}", endpoint).literal_tail,
            Route("/api/me", endpoint).literal_head, Route("/api/me", endpoint).literal_tail) \
        == ("", "/api/me", "")
    route = Route("/api/workspaces/{slug}/invites/{invite_id}/revoke", endpoint)
    assert (route.literal_head, route.literal_tail) == ("/api/workspaces/", "/revoke")


def _chosen(routes: Sequence[Any], scope: dict[str, Any]) -> tuple[Any, ...]:
    """What Starlette's router picks: the first full match, else the first partial one."""
    partial: tuple[Any, ...] = (Match.NONE, None, {})
    for route in routes:
        match, child = route.matches(dict(scope))
        if match is Match.FULL:
            return match, child.get("route", route), child.get("path_params")
        if match is Match.PARTIAL and partial[0] is Match.NONE:
            partial = (match, child.get("route", route), child.get("path_params"))
    return partial


def test_the_routes_tried_first_change_no_answer(app: FastAPI) -> None:
    """FirstTried answers a full match of the member list or the invite preview before the
    router reaches their place: for every path of every route (and near misses) and every
    method, the router picks what it picks without it."""
    first = app.router.routes[0]
    assert isinstance(first, FirstTried)
    assert {(r.path, frozenset(r.methods or ())) for r in first.routes} == FIRST_TRIED
    assert all(r in app.router.routes[1:] for r in first.routes)  # also in their place
    without = app.router.routes[1:]
    paths = _paths([r for r in without if isinstance(r, APIRoute)])
    differ, shortened = [], 0
    for path in paths:
        for method in ("GET", "HEAD", "POST", "PATCH", "DELETE"):
            scope: dict[str, Any] = {"type": "http", "method": method, "path": path,
                                     "root_path": "", "headers": [], "query_string": b""}
            ours = _chosen(app.router.routes, scope)
            if ours != _chosen(without, scope):
                differ.append((method, path))
            shortened += ours[1] in first.routes and ours[0] is Match.FULL
    assert differ == []
    assert shortened > 0


def test_a_route_listed_before_a_first_tried_one_with_a_shared_path_is_caught() -> None:
    """The check above fails when an earlier route shares a path with a route tried first."""
    async def endpoint() -> None:  # pragma: no cover (never called)
        return None

    shadow = Route("/api/invites/{anything}", endpoint, methods=["GET"])
    preview = Route("/api/invites/{token}", endpoint, methods=["GET"])
    routes: list[Any] = [FirstTried([preview]), shadow, preview]
    scope = {"type": "http", "method": "GET", "path": "/api/invites/x", "root_path": "",
             "headers": [], "query_string": b""}
    assert _chosen(routes, scope)[1] is preview and _chosen(routes[1:], scope)[1] is shadow


class _Tracing(trace.TracerProvider):
    """An OpenTelemetry provider in effect (an SDK's, as `opentelemetry-instrument` sets)."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        return trace.NoOpTracer()


def test_fastapi_s_telemetry_names_the_route_tried_first() -> None:
    """With FastAPI's OpenTelemetry on, the router names the route it picks (`http.route`):
    FirstTried steps aside, and the route is found in its place."""
    app = FastAPI(telemetry={"tracer_provider": _Tracing(), "metrics": False, "logs": False})
    router = APIRouter(route_class=Route)

    @router.get("/api/invites/{token}")
    async def preview(token: str, request: Request) -> Response:
        found = request.scope.get("fastapi.telemetry")
        return JSONResponse({"route": getattr(found, "route", None)})

    app.router.routes.extend(router.routes)
    app.router.routes.insert(0, FirstTried(list(router.routes)))  # type: ignore[arg-type]
    with TestClient(app) as client:
        assert client.get("/api/invites/abc").json() == {"route": "/api/invites/{token}"}
