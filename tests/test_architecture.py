"""The layers of docs/architecture.md, checked: who may import whom (module-level and
function-level imports alike, read from the source, nothing run)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "workspaces"
DOMAINS = ("accounts", "workspaces", "members", "invites", "audit", "webhooks")
HTTP = ("fastapi", "starlette", "workspaces.web", "workspaces.app", "workspaces.cli")


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


MODULES = {_module(p): _imports(p) for p in PACKAGE.rglob("*.py")
           if "versions" not in p.parts}


def _importing(prefixes: tuple[str, ...], *, among: list[str]) -> list[str]:
    """Imports of the modules `prefixes` name or of what is inside them (`workspaces.web`
    is not `workspaces.webhooks`)."""
    return sorted(f"{module} imports {name}" for module in among for name in MODULES[module]
                  if name in prefixes or name.startswith(tuple(f"{p}." for p in prefixes)))


def _under(*prefixes: str) -> list[str]:
    return [m for m in MODULES
            if m in prefixes or m.startswith(tuple(f"{p}." for p in prefixes))]


def test_services_know_nothing_of_http() -> None:
    services = [f"workspaces.{d}.service" for d in DOMAINS] + [
        f"workspaces.{d}.statuses" for d in ("invites",)]
    rest = _under("workspaces.mail", "workspaces.schema", "workspaces.metrics") + [
        "workspaces.webhooks.delivery", "workspaces.webhooks.addresses",
        "workspaces.webhooks.parking"] + [
        f"workspaces.{m}" for m in ("db", "models", "errors", "roles", "settings", "security",
                                    "validation", "ratelimit", "pagination", "clock",
                                    "housekeeping", "logs", "tokens", "rows")] + [
        m for m in _under("workspaces.events") if not m.endswith((".routes", ".openapi"))]
    assert _importing(HTTP, among=services + rest) == []


def test_the_base_layer_imports_no_domain() -> None:
    base = [f"workspaces.{m}" for m in ("errors", "roles", "clock", "settings", "db", "rows",
                                        "validation", "pagination", "logs", "tokens")]
    domains = (*tuple(f"workspaces.{d}" for d in DOMAINS), "workspaces.schema", "workspaces.mail")
    assert _importing(domains, among=base) == []


def test_the_web_kit_imports_no_router_and_nothing_above_it() -> None:
    routers = tuple(f"workspaces.{d}.{kind}" for d in DOMAINS for kind in ("routes", "pages"))
    assert _importing((*routers, "workspaces.app", "workspaces.cli"),
                      among=_under("workspaces.web")) == []


@pytest.mark.parametrize("domain", DOMAINS)
def test_a_domain_reaches_other_domains_through_their_services_only(domain: str) -> None:
    others = tuple(f"workspaces.{d}.{kind}" for d in DOMAINS if d != domain
                   for kind in ("routes",))
    assert _importing(others, among=_under(f"workspaces.{domain}")) == []


def test_only_the_cli_and_the_tests_start_the_application() -> None:
    assert sorted(m for m, names in MODULES.items() if "workspaces.app" in names) == [
        "workspaces.cli.serve"]


_WRITES = re.compile(r"\b(?:insert|update|delete)\((\w+)\)|dialect_insert\([^)]*\)\((\w+)\)")


def _writers() -> dict[str, set[str]]:
    """Which modules write each table (an INSERT, UPDATE or DELETE naming it)."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if "versions" in path.parts:
            continue
        for match in _WRITES.finditer(path.read_text()):
            found.setdefault(match[1] or match[2], set()).add(_module(path))
    return found


def test_membership_rows_have_one_writer() -> None:
    """Written from four places in three packages, each had to remember its audit line;
    now members/store.py writes them and tells each change in the same step."""
    assert _writers()["members"] == {"workspaces.members.store"}


@pytest.mark.parametrize("table", ["events", "audit_events", "account_events"])
def test_the_trails_and_the_event_log_are_written_by_tell_alone(table: str) -> None:
    """A change's records are one step (`events.tell`), never a call a handler must
    remember; the retention sweep deletes old events."""
    assert _writers()[table] - {"workspaces.housekeeping"} == {"workspaces.events.tell"}


def test_the_events_and_their_descriptions_know_nothing_of_http() -> None:
    """Services tell changes through events/; only events/openapi.py (the OpenAPI document's
    `webhooks`) and the feed's routes are HTTP."""
    told = [f"workspaces.events.{m}" for m in ("tell", "changes", "catalogue", "schemas",
                                               "documented")]
    assert set(told) <= set(MODULES)
    assert _importing(HTTP, among=[*told, "workspaces.members.store"]) == []


def _needs_of_routes() -> dict[tuple[str, str], set[str]]:
    """Each /api route (method, path) and the needs (`oauth.bearer.Need`) its dependencies
    that read the bearer token were made with; routes that read no token are left out."""
    from fastapi.routing import APIRoute
    from fastapi.security import HTTPBearer

    from workspaces.app import create_app
    from workspaces.settings import Settings

    app = create_app(Settings(database_url="sqlite:///unused.db", secret_key="x" * 40,
                              _env_file=None))  # type: ignore[call-arg]
    found: dict[tuple[str, str], set[str]] = {}
    routes, todo_routes = [], list(app.routes)
    while todo_routes:  # routers included in the app hold their routes themselves
        route = todo_routes.pop()
        if (included := getattr(route, "original_router", None)) is not None:
            todo_routes.extend(included.routes)
        elif isinstance(route, APIRoute) and route.path.startswith("/api"):
            routes.append(route)
    for route in routes:
        needs: set[str] = set()
        reads_token = False
        todo = list(route.dependant.dependencies)
        while todo:
            dependency = todo.pop()
            todo.extend(dependency.dependencies)
            reads_token |= isinstance(dependency.call, HTTPBearer)
            if (need := getattr(dependency.call, "need", None)) is not None:
                needs.add(need)
        if reads_token:
            for method in route.methods or ():
                found[(method, route.path)] = needs
    return found


def test_every_api_route_that_reads_a_token_names_what_an_apps_token_needs() -> None:
    """One need per route, declared where the route is (`Scoped("members:write")`): an
    app's token (a JWT) is limited by its scopes everywhere, and nothing forgets it."""
    from workspaces.oauth.bearer import NEEDS

    needs = _needs_of_routes()
    assert len(needs) > 40
    assert {route: n for route, n in needs.items() if len(n) != 1} == {}
    assert {n for named in needs.values() for n in named} <= set(NEEDS)


def test_the_readme_names_the_scope_each_route_needs() -> None:
    """The README's table of scopes, held against the routes: each route an app's token may
    call is named in its scope's row (a row may name a prefix ending in `/...`)."""
    text = (PACKAGE.parents[1] / "README.md").read_text()
    section = text.split("#### Scopes of an app's access token\n", 1)[1].split("\n\n|", 1)[1]
    rows = {}
    for line in ("|" + section).split("\n\n", 1)[0].splitlines()[2:]:
        scope, routes = line.strip("|").split("|", 1)
        rows[scope.strip().strip("`")] = re.findall(r"`([^`]+)`", routes)
    for (method, path), needs in _needs_of_routes().items():
        [need] = needs
        if need == "own_token":
            continue
        named = rows.get(need, [])
        assert f"{method} {path}" in named or any(
            n.endswith("/...") and path.startswith(n[:-4]) for n in named), (method, path, need)


def test_every_router_s_routes_are_the_application_s_own() -> None:
    """The application adds each router's routes itself (`app._route`, not `include_router`,
    for speed): every route of every router of the package is there, once."""
    import importlib
    import pkgutil

    from fastapi import APIRouter

    import workspaces
    from workspaces.app import create_app
    from workspaces.settings import Settings

    routers = []
    for module in pkgutil.walk_packages(workspaces.__path__, "workspaces."):
        if module.name.startswith("workspaces.cli") or module.name.endswith("__main__"):
            continue
        loaded = importlib.import_module(module.name)
        routers += [value for value in vars(loaded).values() if isinstance(value, APIRouter)]
    app = create_app(Settings(database_url="sqlite:///unused.db", secret_key="x" * 40,
                              _env_file=None))  # type: ignore[call-arg]
    served = [id(route) for route in app.routes]
    every = {id(route): route for router in routers for route in router.routes}
    assert len(every) > 100
    assert [getattr(route, "path", route) for key, route in every.items()
            if served.count(key) != 1] == []
    assert not [route for route in app.routes if hasattr(route, "original_router")]


def test_every_route_that_takes_a_connection_holds_it_around_its_handler() -> None:
    """`Conn` is no dependency with `yield` (deps.hold_connection): a route taking it without
    its handler opened would fail every request."""
    from fastapi.routing import APIRoute

    from workspaces.app import create_app
    from workspaces.settings import Settings
    from workspaces.web.deps import holds_connection, needs_connection

    app = create_app(Settings(database_url="sqlite:///unused.db", secret_key="x" * 40,
                              _env_file=None))  # type: ignore[call-arg]
    routes = [route for route in app.routes if isinstance(route, APIRoute)]
    taking = [route for route in routes if needs_connection(route)]
    assert len(taking) > 80
    assert [route.path for route in taking if not holds_connection(route)] == []
    assert [route.path for route in routes if holds_connection(route) and route not in taking] == []
