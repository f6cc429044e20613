"""Reloading the address a form was posted to.

A refused form is shown again at the address it was posted to (its input kept, the error next
to the field), so reloading that address asks for it with GET. Each such address answers with
a redirect to the page the form lives on, rather than 405.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from workspaces.web.routing import Route

router = APIRouter(route_class=Route, include_in_schema=False)

# The address a form posts to -> the page it lives on.
FORM_PAGES = {
    "/workspaces": "/",
    "/signout": "/",
    "/w/{slug}/invites": "/w/{slug}",
    "/w/{slug}/invites/{invite_id}/{action}": "/w/{slug}",
    "/w/{slug}/members/{user_id}/{action}": "/w/{slug}",
    "/invites/{token}/{action}": "/invites/{token}",
}


def _back_to(page: str) -> Callable[[Request], Awaitable[RedirectResponse]]:
    async def reload(request: Request) -> RedirectResponse:
        return RedirectResponse(page.format(**request.path_params), status_code=303)
    return reload


for _posted, _page in FORM_PAGES.items():
    router.add_api_route(_posted, _back_to(_page), methods=["GET"])
