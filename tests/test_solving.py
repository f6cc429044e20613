"""web.solving: a route's dependencies solved by a plan made once give what FastAPI's own
handler gives, for the same requests: the same dependencies called, once each, in the same
order and thread, with the same values; the same answers, errors included. Anything the plan
does not do is left to FastAPI, whole."""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from fastapi import (
    APIRouter,
    BackgroundTasks,
    Body,
    Cookie,
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Request,
    Response,
    Security,
)
from fastapi import routing as fastapi_routing
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2PasswordBearer
from fastapi.testclient import TestClient
from pydantic import AfterValidator
from starlette.responses import JSONResponse

from workspaces.app import create_app
from workspaces.settings import Settings
from workspaces.web import solving
from workspaces.web.routing import Route

CALLS: list[tuple[str, Any]] = []  # (dependency, what it was given), in the order called
LOOP_THREAD: list[int] = [0]  # the event loop's thread in the request being served

bearer = HTTPBearer(auto_error=False)


async def conn(request: Request) -> str:
    LOOP_THREAD[0] = threading.get_ident()
    CALLS.append(("conn", request.url.path))
    return "conn"


def settings_dep(request: Request) -> str:  # sync: FastAPI runs it in the thread pool
    CALLS.append(("settings", threading.get_ident() == LOOP_THREAD[0]))
    return "settings"


@dataclass(frozen=True)
class Scoped:
    need: str

    async def __call__(self, slug: str, request: Request, c: Annotated[str, Depends(conn)],
                       credentials: Annotated[HTTPAuthorizationCredentials | None,
                                              Depends(bearer)]) -> dict[str, Any]:
        CALLS.append(("scoped", (self.need, slug, c)))
        if credentials is None:
            raise HTTPException(401, "sign in", headers={"WWW-Authenticate": "Bearer"})
        if credentials.credentials == "forbidden":
            raise HTTPException(403, "no")
        return {"need": self.need, "slug": slug, "token": credentials.credentials}


class Pager:  # a class as a dependency: FastAPI calls it in the thread pool
    def __init__(self, limit: int = 50, cursor: str | None = None) -> None:
        CALLS.append(("pager", (limit, cursor)))
        self.limit, self.cursor = limit, cursor


COUNTER = [0]


async def nonce() -> int:  # a value that differs on each call
    COUNTER[0] += 1
    CALLS.append(("nonce", COUNTER[0]))
    return COUNTER[0]


async def _check_admin(request: Request) -> None:
    CALLS.append(("admin", request.headers.get("x-admin")))
    if request.headers.get("x-admin") != "yes":
        raise HTTPException(403, "admins only")


def require_admin(request: Request) -> Any:
    """A plain function marked as a coroutine function, as asgiref's markcoroutinefunction
    does before Python 3.12: FastAPI awaits what it returns."""
    return _check_admin(request)


if sys.version_info < (3, 12):
    require_admin._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]


def known_slug(slug: str) -> str:
    """A validator of the application's own that answers by itself (404)."""
    CALLS.append(("validate", slug))
    if slug != "team":
        raise HTTPException(404, f"no workspace {slug!r}")
    return slug


def logged(function: Any) -> Any:
    """A sync wrapper of a coroutine function, as a logging decorator might be: FastAPI looks
    through it (`__wrapped__`) and awaits what it returns."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)
    return wrapper


logged_conn = logged(conn)


def build(route_class: type[APIRoute]) -> FastAPI:
    """The same routes, with our route class or FastAPI's."""
    app = FastAPI()
    router = APIRouter(route_class=route_class)

    @router.get("/w/{slug}/members")
    async def members(c: Annotated[str, Depends(conn)],
                      access: Annotated[dict[str, Any], Depends(Scoped("members:read"))],
                      settings: Annotated[str, Depends(settings_dep)],
                      pager: Annotated[Pager, Depends()],
                      agent: Annotated[str | None, Header()] = None,
                      theme: Annotated[str, Cookie()] = "light") -> Response:
        CALLS.append(("endpoint", (c, settings, agent, theme)))
        return JSONResponse({"access": access, "limit": pager.limit, "cursor": pager.cursor,
                             "agent": agent, "theme": theme})

    @router.get("/items/{item_id}")
    async def item(item_id: int, c: Annotated[str, Depends(conn)]) -> JSONResponse:
        CALLS.append(("endpoint", item_id))
        return JSONResponse({"item": item_id})

    # What the plan leaves to FastAPI.
    @router.post("/body")
    async def with_body(value: Annotated[int, Body(embed=True)]) -> Response:
        return JSONResponse({"value": value})

    @router.get("/model")
    async def returns_a_model(c: Annotated[str, Depends(conn)]) -> dict[str, str]:
        return {"c": c}

    async def generator() -> AsyncIterator[str]:
        yield "held"

    @router.get("/generator")
    async def with_generator(g: Annotated[str, Depends(generator)]) -> Response:
        return JSONResponse({"g": g})

    @router.get("/background")
    async def with_background(tasks: BackgroundTasks) -> Response:
        return JSONResponse({})

    @router.get("/response")
    async def with_response(response: Response) -> Response:
        return JSONResponse({})

    oauth = OAuth2PasswordBearer(tokenUrl="/token", auto_error=False)

    @router.get("/scopes")
    async def with_scopes(token: Annotated[str | None, Security(oauth, scopes=["a"])]
                          ) -> Response:
        return JSONResponse({})

    @router.get("/sync")
    def sync_endpoint() -> Response:
        return JSONResponse({})

    @router.get("/decorated")
    async def with_decorated(c: Annotated[str, Depends(logged_conn)]) -> Response:
        return JSONResponse({"c": c})

    @router.get("/nocache")  # the second asks for a value of its own
    async def no_cache(a: Annotated[int, Depends(nonce)],
                       b: Annotated[int, Depends(nonce, use_cache=False)]) -> Response:
        return JSONResponse({"a": a, "b": b})

    @router.get("/request-scope")  # a scope of its own: another cache key
    async def request_scope(a: Annotated[int, Depends(nonce)],
                            b: Annotated[int, Depends(nonce, scope="request")]) -> Response:
        return JSONResponse({"a": a, "b": b})

    @router.get("/admin", dependencies=[Depends(require_admin)])
    async def admin() -> Response:
        return JSONResponse({"secret": 42})

    @router.get("/w/{slug}/secret")  # FastAPI authenticates before it validates the slug
    async def secret(c: Annotated[str, Depends(Scoped("secret:read"))],
                     slug: Annotated[str, AfterValidator(known_slug)]) -> Response:
        return JSONResponse({"slug": slug})

    app.router.routes.extend(router.routes)  # as the application adds its routes (app._route)
    return app


@pytest.fixture
def calls() -> Iterator[list[tuple[str, Any]]]:
    CALLS.clear()
    yield CALLS
    CALLS.clear()


@pytest.fixture
def solved_by_fastapi(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths whose dependencies FastAPI's handler solved (the plan never calls it)."""
    seen: list[str] = []
    original = fastapi_routing.solve_dependencies  # type: ignore[attr-defined]

    async def counting(*, request: Request, **kwargs: Any) -> Any:
        if kwargs["dependant"].call is not None and not kwargs.get("dependency_cache"):
            seen.append(request.url.path)
        return await original(request=request, **kwargs)

    monkeypatch.setattr(fastapi_routing, "solve_dependencies", counting)
    return seen


REQUESTS: list[tuple[str, dict[str, str]]] = [
    ("/w/team/members", {"authorization": "Bearer t1"}),
    ("/w/team/members?limit=7&cursor=abc", {"authorization": "Bearer t1", "agent": "x",
                                             "cookie": "theme=dark"}),
    ("/w/%C3%A9quipe/members", {"authorization": "Bearer t1"}),
    ("/w/team/members", {}),  # 401 from a dependency
    ("/w/team/members", {"authorization": "Bearer forbidden"}),  # 403
    ("/w/team/members", {"authorization": "Basic abc"}),  # not a bearer token: 401
    ("/w/team/members?limit=many", {"authorization": "Bearer t1"}),  # 422 after the access
    ("/w/team/members?limit=many", {}),  # 401 before the 422, as FastAPI orders them
    ("/items/12", {}),
    ("/items/twelve", {}),  # 422 for the path parameter
    ("/model", {}), ("/generator", {}), ("/background", {}), ("/response", {}),
    ("/scopes", {}), ("/sync", {}), ("/decorated", {}),
    ("/nocache", {}), ("/request-scope", {}),
    ("/admin", {}), ("/admin", {"x-admin": "yes"}),
    ("/w/nope/secret", {}), ("/w/nope/secret", {"authorization": "Bearer t1"}),
    ("/w/team/secret", {"authorization": "Bearer t1"}),
]


def _answers(app: FastAPI) -> list[tuple[int, bytes, list[tuple[str, Any]]]]:
    found = []
    with TestClient(app) as client:
        for path, headers in REQUESTS:
            CALLS.clear()
            COUNTER[0] = 0
            response = client.get(path, headers=headers)
            found.append((response.status_code, response.content, list(CALLS)))
    return found


def test_a_plan_answers_as_fastapi_does_with_the_same_calls(
        calls: list[tuple[str, Any]], solved_by_fastapi: list[str]) -> None:
    ours = _answers(build(Route))
    fastapi_solved = list(solved_by_fastapi)  # under our route class
    solved_by_fastapi.clear()
    theirs = _answers(build(APIRoute))
    for (path, _), mine, fastapi_s in zip(REQUESTS, ours, theirs, strict=True):
        assert mine == fastapi_s, path
    # What was checked: answers of every kind, and each dependency once, in FastAPI's order.
    assert {status for status, _, _ in ours} >= {200, 401, 403, 422}
    assert [name for name, _ in ours[1][2]] == [
        "conn", "scoped", "settings", "pager", "endpoint"]
    assert ours[1][2][2] == ("settings", False)  # a sync dependency ran off the event loop
    # The plan served the valid requests; FastAPI the invalid ones and what the plan leaves
    # it (a body, a returned model, a generator, background tasks, a Response parameter,
    # security scopes, a sync endpoint).
    assert "/w/team/members" in fastapi_solved  # the 422s fell back to FastAPI
    assert fastapi_solved.count("/w/team/members") == 2
    assert fastapi_solved.count("/items/twelve") == 1
    assert "/items/12" not in fastapi_solved
    assert {"/model", "/generator", "/background", "/response", "/scopes", "/sync",
            "/decorated", "/nocache", "/request-scope", "/w/nope/secret"} <= set(fastapi_solved)
    assert "/admin" not in fastapi_solved  # planned, and awaited as FastAPI awaits it
    assert ours[REQUESTS.index(("/admin", {}))][0] == 403
    assert ours[REQUESTS.index(("/w/nope/secret", {}))][0] == 401  # not the validator's 404


def test_a_plan_is_made_only_for_what_it_does() -> None:
    app = build(Route)
    planned = {route.path for route in app.routes
               if isinstance(route, APIRoute) and solving.plan(route) is not None}
    assert planned == {"/w/{slug}/members", "/items/{item_id}", "/admin"}


def test_overrides_are_fastapi_s(calls: list[tuple[str, Any]],
                                 solved_by_fastapi: list[str]) -> None:
    app = FastAPI()
    router = APIRouter(route_class=Route, dependency_overrides_provider=app)

    @router.get("/items/{item_id}")
    async def item(item_id: int, c: Annotated[str, Depends(conn)]) -> JSONResponse:
        return JSONResponse({"item": item_id, "c": c})

    app.router.routes.extend(router.routes)
    with TestClient(app) as client:
        assert client.get("/items/3").json() == {"item": 3, "c": "conn"}
        assert solved_by_fastapi == []
        app.dependency_overrides[conn] = lambda: "overridden"
        assert client.get("/items/4").json() == {"item": 4, "c": "overridden"}
    assert calls == [("conn", "/items/3")] and solved_by_fastapi == ["/items/4"]


@pytest.mark.parametrize("route_class", [Route, APIRoute])
def test_a_route_in_an_included_router_keeps_the_inclusion_s_prefix_and_dependencies(
        calls: list[tuple[str, Any]], route_class: type[APIRoute]) -> None:
    """FastAPI's include_router serves a route with the inclusion's prefix and dependencies:
    our route class matches it and leaves its dependencies to FastAPI."""
    app = FastAPI()
    router = APIRouter(route_class=route_class, dependencies=[Depends(conn)])

    @router.get("/x/{n}")
    async def endpoint(n: int) -> Response:
        CALLS.append(("endpoint", n))
        return JSONResponse({})

    app.include_router(router, prefix="/p", dependencies=[Depends(settings_dep)])
    with TestClient(app) as client:
        assert client.get("/p/x/1").status_code == 200
        assert client.get("/x/1").status_code == 404
    assert [name for name, _ in calls] == ["settings", "conn", "endpoint"]


def test_an_endpoint_that_breaks_its_annotation_is_an_error_not_a_wrong_answer() -> None:
    app = FastAPI()
    router = APIRouter(route_class=Route)

    @router.get("/liar")
    async def liar() -> Response:
        return {"not": "a response"}  # type: ignore[return-value]

    app.router.routes.extend(router.routes)
    with TestClient(app, raise_server_exceptions=True) as client, \
            pytest.raises(TypeError, match="annotated to return a Response"):
        client.get("/liar")


def test_the_hot_reads_of_the_application_have_plans() -> None:
    app = create_app(Settings(database_url="sqlite:///unused.db", secret_key="x" * 40,
                              _env_file=None))  # type: ignore[call-arg]
    planned = {(method, route.path) for route in app.routes
               if isinstance(route, APIRoute) and solving.plan(route) is not None
               for method in route.methods or ()}
    assert {("GET", "/api/workspaces/{slug}/members"), ("GET", "/api/invites/{token}"),
            ("GET", "/api/workspaces/{slug}/invites"), ("GET", "/api/events")} <= planned
