"""A route's dependencies solved by a plan made once, where FastAPI solves them anew on each
request.

FastAPI's handler walks the route's dependency tree on every request: for each dependency it
works out again whether it is a generator, a coroutine or uses security scopes, builds its
cache key, reads the query string, headers and cookies whether the dependency takes them or
not, and makes a `Response` for dependencies that might set headers. On the member list that
is about a sixth of the request's CPU, on the invite preview (one path parameter and `Conn`)
about a fifth with the handler's own steps (docs/benchmarks.md, issue 22).

`plan` walks the tree once, when the route is made, and keeps what each request needs: the
dependencies to call, once each, in the order FastAPI calls them, each with its sources (other
dependencies' values, the request, FastAPI's own validation of the parameters it declares).
It makes a plan only for a route that uses nothing else:

- dependencies that are coroutine functions, or plain callables (run in the thread pool, as
  FastAPI runs them), never generators (they need FastAPI's exit stacks), decorated functions
  or partials (FastAPI looks through them to decide how to call them);
- parameters from the path, the query string, headers and cookies, and the `Request`; no body,
  no `Response`, `BackgroundTasks`, `SecurityScopes` or security scopes, no dependency that
  opts out of the cache or limits its concurrency;
- an endpoint that is a coroutine function annotated to return a `Response`, so that FastAPI
  has nothing to validate or serialise after it.

Every other route, and every request that FastAPI would answer differently, is FastAPI's own:
a parameter that fails validation (FastAPI then calls the dependencies it calls before it
answers 422, and answers as it always does), dependency overrides (tests), and FastAPI's
telemetry when an application turns it on. tests/test_solving.py holds the plan to FastAPI's
handler on the same requests: the calls, their order, their values and the answers.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import routing as fastapi_routing
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_params_to_args
from fastapi.routing import APIRoute
from fastapi.telemetry import get_telemetry_data
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


@dataclass(frozen=True, slots=True)
class _Step:
    """One dependency (or the endpoint, last): what it takes, from where."""

    call: Callable[..., Any]
    is_coroutine: bool
    takes: tuple[tuple[str, Callable[..., Any]], ...]  # (parameter, dependency whose value)
    requests: tuple[str, ...]  # parameters that take the Request
    path: tuple[Any, ...]  # FastAPI's ModelFields, validated by FastAPI
    query: tuple[Any, ...]
    headers: tuple[Any, ...]
    cookies: tuple[Any, ...]


def _is_coroutine(call: Callable[..., Any]) -> bool:
    if inspect.isclass(call):
        return False
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        getattr(call, "__call__", None))  # noqa: B004 (an instance whose __call__ is async)


def _is_generator(call: Callable[..., Any]) -> bool:
    if inspect.isclass(call):
        return False
    method = getattr(call, "__call__", None)  # noqa: B004
    return any(inspect.isgeneratorfunction(c) or inspect.isasyncgenfunction(c)
               for c in (call, method) if c is not None)


def _wrapped(call: Callable[..., Any]) -> bool:
    """A decorated function (`functools.wraps`) or partial: FastAPI looks through those to
    decide how to call them; the plan leaves them to it."""
    return isinstance(call, functools.partial) or any(
        hasattr(c, "__wrapped__") for c in (call, getattr(call, "__call__", None)))  # noqa: B004


def _plain(dependant: Dependant, *, root: bool = False) -> bool:
    """The dependency uses nothing the plan leaves to FastAPI. (FastAPI gives the endpoint a
    scope; a dependency's is part of its cache key.)"""
    return (dependant.call is not None and not _is_generator(dependant.call)
            and not _wrapped(dependant.call)
            and dependant.use_cache and (root or dependant.scope is None)
            and dependant.concurrency is None and not dependant.body_params
            and dependant.websocket_param_name is None
            and dependant.background_tasks_param_name is None
            and dependant.response_param_name is None
            and dependant.security_scopes_param_name is None
            and not dependant.own_oauth_scopes and not dependant.parent_oauth_scopes)


def _steps(dependant: Dependant, steps: dict[Callable[..., Any], _Step], *,
           root: bool = False) -> bool:
    """Add the dependant's dependencies, then itself, to `steps` in FastAPI's order (depth
    first, each dependency before the one that takes it); a call already there is FastAPI's
    cached value. False when something in the tree is not `_plain`."""
    call = dependant.call
    if call is None or not _plain(dependant, root=root):
        return False
    takes = []
    for sub in dependant.dependencies:
        if sub.call is None or (sub.call not in steps and not _steps(sub, steps)):
            return False
        if sub.name is not None:
            takes.append((sub.name, sub.call))
    requests = tuple(name for name in (dependant.request_param_name,
                                       dependant.http_connection_param_name) if name)
    steps[call] = _Step(call, _is_coroutine(call), tuple(takes), requests,
                        tuple(dependant.path_params), tuple(dependant.query_params),
                        tuple(dependant.header_params), tuple(dependant.cookie_params))
    return True


def _returns_response(endpoint: Callable[..., Any]) -> bool:
    try:
        returned = typing.get_type_hints(endpoint).get("return")
    except Exception:  # an annotation that does not resolve: leave the route to FastAPI
        return False
    return inspect.isclass(returned) and issubclass(returned, Response)


def plan(route: APIRoute) -> tuple[_Step, ...] | None:
    """The route's steps, the endpoint last; None when FastAPI must solve it."""
    if (route.body_field is not None or not inspect.iscoroutinefunction(route.endpoint)
            or not _returns_response(route.endpoint)
            # an included router's copy of the route, with the router's own dependencies
            or getattr(fastapi_routing, "_effective_route_context_var", None) is None
            or fastapi_routing._effective_route_context_var.get() is not None):
        return None
    steps: dict[Callable[..., Any], _Step] = {}
    if not _steps(route.dependant, steps, root=True):
        return None
    return tuple(steps.values())


def _arguments(step: _Step, request: Request) -> dict[str, Any] | None:
    """The step's parameters from the request, validated by FastAPI; None if any is invalid."""
    values: dict[str, Any] = {}
    for kind, fields in (("path", step.path), ("query", step.query),
                         ("headers", step.headers), ("cookies", step.cookies)):
        if not fields:  # the query string, headers and cookies read only when taken
            continue
        source: Mapping[str, Any] = (
            request.path_params if kind == "path" else request.query_params if kind == "query"
            else request.headers if kind == "headers" else request.cookies)
        found, errors = request_params_to_args(fields, source)
        if errors:
            return None
        values.update(found)
    return values


def handler(route: APIRoute, fastapi_handler: Handler) -> Handler:
    """The route's handler: its plan where it has one, else FastAPI's (`fastapi_handler`)."""
    steps = plan(route)
    if steps is None:
        return fastapi_handler
    provider = route.dependency_overrides_provider

    async def solved(request: Request) -> Response:
        if ((provider is not None and getattr(provider, "dependency_overrides", None))
                or get_telemetry_data() is not None):
            return await fastapi_handler(request)
        given = []
        for step in steps:  # every parameter first: an invalid one is FastAPI's to answer
            arguments = _arguments(step, request)
            if arguments is None:
                return await fastapi_handler(request)
            given.append(arguments)
        values: dict[Callable[..., Any], Any] = {}
        value: Any = None
        for step, arguments in zip(steps, given, strict=True):
            for name, call in step.takes:
                arguments[name] = values[call]
            for name in step.requests:
                arguments[name] = request
            if step.is_coroutine:
                value = await step.call(**arguments)
            else:
                value = await run_in_threadpool(step.call, **arguments)
            values[step.call] = value
        if not isinstance(value, Response):
            raise TypeError(f"{route.path}: the endpoint is annotated to return a Response "
                            f"and returned {type(value).__name__}")
        return value

    return solved
