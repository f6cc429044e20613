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

- dependencies awaited or run in the thread pool as FastAPI decides (its own test, which on
  Python 3.11 and 3.12 also reads asgiref's coroutine marker), never generators (they need
  FastAPI's exit stacks), decorated functions or partials;
- plain parameters (text, numbers, booleans, UUIDs, choices and lists of them, with their
  limits; no validator of our own, which could answer or act before the caller is
  authenticated: the plan validates every parameter before it calls anything) from the path,
  the query string, headers and cookies, and the `Request`; no body, no `Response`,
  `BackgroundTasks`, `SecurityScopes` or security scopes;
- no dependency that opts out of the cache, has a scope of its own or limits its concurrency,
  wherever it is asked for (FastAPI calls such a dependency again);
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
import types
import typing
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import routing as fastapi_routing
from fastapi.dependencies import models as fastapi_models
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_params_to_args
from fastapi.routing import APIRoute
from fastapi.telemetry import get_telemetry_data
from pydantic import functional_validators
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


# How FastAPI itself decides to await a dependency or run it in the thread pool, and whether
# it is a generator: the plan calls each one as FastAPI would (on Python 3.11 and 3.12 an
# `_is_coroutine` marker, asgiref's `markcoroutinefunction`, makes a plain function awaited).
# Without them (a later FastAPI) no route has a plan.
_FASTAPI_CALLS = tuple(getattr(fastapi_models, name, None) for name in (
    "_is_coroutine_callable", "_is_gen_callable", "_is_async_gen_callable"))


def _is_coroutine(call: Callable[..., Any]) -> bool:
    return bool(_FASTAPI_CALLS[0](call))  # type: ignore[misc]


def _is_generator(call: Callable[..., Any]) -> bool:
    return bool(_FASTAPI_CALLS[1](call) or _FASTAPI_CALLS[2](call))  # type: ignore[misc]


# A parameter the plan may validate before any dependency is called (it validates all of them
# first, so that an invalid one is FastAPI's to answer whole): a plain value, whose validation
# can only fail with a validation error and does nothing else. A validator of the
# application's own could answer (an HTTPException) or act before the dependencies FastAPI
# calls first, the caller's authentication among them.
_PLAIN_VALUES = (str, int, float, bool, uuid.UUID)
_VALIDATORS = (functional_validators.AfterValidator, functional_validators.BeforeValidator,
               functional_validators.PlainValidator, functional_validators.WrapValidator)


def _plain_type(annotation: Any) -> bool:
    """A plain value, a choice of them (Literal), an optional one, or a list of them."""
    if annotation in _PLAIN_VALUES or annotation is type(None):
        return True
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return all(isinstance(value, (str, int, bool)) for value in arguments)
    if origin is typing.Annotated:
        return _plain_type(arguments[0]) and not any(
            isinstance(item, _VALIDATORS) for item in arguments[1:])
    if origin in (typing.Union, types.UnionType, list, set, frozenset, tuple):
        return bool(arguments) and all(_plain_type(a) for a in arguments if a is not ...)
    return False


def _plain_value(field: Any) -> bool:
    return _plain_type(field.field_info.annotation) and not any(
        isinstance(item, _VALIDATORS) for item in field.field_info.metadata)


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
            and all(_plain_value(field) for field in (
                *dependant.path_params, *dependant.query_params, *dependant.header_params,
                *dependant.cookie_params))
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
        # A call already planned is FastAPI's cached value; each place it is asked for in
        # must allow that too (a second `Depends(f, use_cache=False)` calls f again).
        if sub.call is None or not _plain(sub) or (
                sub.call not in steps and not _steps(sub, steps)):
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
    if (route.body_field is not None or None in _FASTAPI_CALLS
            or not _is_coroutine(route.endpoint)
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
