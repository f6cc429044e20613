"""Forms speak one voice, on both databases: our own sentence for a bad address, every problem of
a submitted form shown at once, and the password rule shown wherever a password is set."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from email_validator import EmailNotValidError, validate_email
from fastapi.testclient import TestClient

from tests.api.conftest import Api
from tests.conftest import Sink, link_in
from workspaces.app import create_app
from workspaces.settings import Settings

PASSWORD = "correct horse battery"
RULE = "8 to 1024 characters"


class _Page(HTMLParser):
    """The attributes of every element with an id, and the text inside it."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.attrs: dict[str, dict[str, str | None]] = {}
        self.text: dict[str, str] = {}
        self._open: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.attrs[str(found["id"])] = found
            self.text[str(found["id"])] = ""
            if tag not in ("input", "img", "br"):
                self._open.append(str(found["id"]))

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag == "p":
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for opened in self._open:
            self.text[opened] += data

    def described(self, input_id: str) -> str:
        """The text of what describes the input (aria-describedby), as a screen reader says it."""
        ids = str(self.attrs[input_id].get("aria-describedby") or "").split()
        return " ".join(" ".join(self.text[i].split()) for i in ids)


def _csrf(html: str) -> str:
    return html.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


def _post_form(api: Api, page: str, action: str, **data: str) -> Any:
    return api.client.post(action, data={"csrf_token": _csrf(api.client.get(page).text), **data})


def _library_says(address: str) -> str:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as error:
        return str(error)
    raise AssertionError(f"{address} is valid")


def test_sign_up_shows_every_problem_at_once_in_our_words(api: Api) -> None:
    refused = _post_form(api, "/signup", "/signup", name=" ", email="ann@@example.com",
                         password="short")
    assert refused.status_code == 422
    page = _Page(refused.text)
    assert "name@example.com" in page.described("email")
    assert _library_says("ann@@example.com") not in refused.text
    assert "@-sign" not in refused.text  # the library's words for it
    assert "The name must be 1 to 200 characters." in page.described("name")
    assert f"Choose a password of {RULE}." in page.described("password")
    assert page.attrs["email"]["value"] == "ann@@example.com"  # the input is kept
    assert api.db.sql("SELECT count(*) FROM users") == [(0,)]


def test_the_api_lists_every_problem_and_keeps_the_first_code(api: Api) -> None:
    response = api.client.post("/api/auth/signup", json={
        "email": "not an address", "password": "short", "name": ""})
    message = api.error(response, 422, "invalid_email")
    fields = {f["field"]: f for f in response.json()["error"]["fields"]}
    assert [fields[k]["code"] for k in ("email", "name", "password")] == [
        "invalid_email", "invalid_name", "invalid_password"]
    assert all(f["message"] in message for f in fields.values())  # one sentence each
    assert _library_says("not an address") not in message
    # One problem: its own code and sentence, as before.
    alone = api.client.post("/api/auth/signup", json={
        "email": "ann@example.com", "password": "short", "name": "Ann"})
    assert api.error(alone, 422, "invalid_password") == f"Choose a password of {RULE}."


def test_the_invite_form_and_the_reset_request_say_a_bad_address_in_our_words(
        api: Api) -> None:
    ann = api.signup("ann@example.com")
    slug = api.workspace(ann)
    _sign_in(api, "ann@example.com")
    for page, action, typed in ((f"/w/{slug}", f"/w/{slug}/invites", "bob@localhost"),
                                ("/password-reset", "/password-reset", "bob at example.com")):
        refused = _post_form(api, page, action, email=typed)
        assert refused.status_code == 422, action
        said = _Page(refused.text).described("email")
        assert "name@example.com" in said, said
        assert _library_says(typed) not in refused.text


def _sign_in(api: Api, email: str) -> None:
    signed = _post_form(api, "/signin", "/signin", email=email, password=PASSWORD)
    assert signed.status_code == 200 and "Sign out" in signed.text


def test_the_invited_newcomer_sees_every_problem_and_the_rule(api: Api, smtp: Sink) -> None:
    ann = api.signup("ann@example.com")
    slug = api.workspace(ann)
    token = api.invite_token(ann, slug, "bob@example.com")
    invite = _Page(api.client.get(f"/invites/{token}").text)
    assert RULE in invite.described("password")
    refused = _post_form(api, f"/invites/{token}", f"/invites/{token}/join", name="",
                         password="short")
    assert refused.status_code == 422
    page = _Page(refused.text)
    assert "The name must be 1 to 200 characters." in page.described("name")
    assert f"Choose a password of {RULE}." in page.described("password")


def test_every_form_that_sets_a_password_shows_the_rule(api: Api, smtp: Sink) -> None:
    assert RULE in _Page(api.client.get("/signup").text).described("password")

    api.signup("ann@example.com")
    asked = api.client.post("/api/auth/password-reset", json={"email": "ann@example.com"})
    assert asked.status_code == 202
    message = next(m for m in smtp.wait_for(1) if m["Subject"].startswith("Reset"))
    reset = _Page(api.client.get(f"/reset/{link_in(message, 'reset')}").text)
    assert RULE in reset.described("password")

    _sign_in(api, "ann@example.com")
    account = _Page(api.client.get("/account").text)
    assert RULE in account.described("new_password")
    assert RULE not in account.described("current_password")  # it sets nothing


def test_the_password_forms_tell_a_wrong_current_password_with_the_other_problem(
        api: Api, settings: Settings) -> None:
    """The current password is checked even when the new password or address is refused, and
    counted like a sign-in only when wrong: two guesses allowed, four right ones pass."""
    strict = settings.model_copy(update={"signin_limit_per_account": 2})
    with TestClient(create_app(strict)) as client:
        ann = {"Authorization": "Bearer " + client.post("/api/auth/signup", json={
            "email": "ann@example.com", "password": PASSWORD, "name": "Ann"}).json()["token"]}
        both = client.post("/api/me/password", headers=ann, json={
            "current_password": "a guess at it", "new_password": "short"})
        api.error(both, 422, "invalid_password")
        assert {f["field"]: f["code"] for f in both.json()["error"]["fields"]} == {
            "new_password": "invalid_password", "current_password": "wrong_password"}
        for _ in range(4):  # right current password, bad new one or address: not counted
            api.error(client.post("/api/me/password", headers=ann, json={
                "current_password": PASSWORD, "new_password": "short"}),
                422, "invalid_password")
            api.error(client.post("/api/me/email", headers=ann, json={
                "email": "ann@", "current_password": PASSWORD}), 422, "invalid_email")
        changed = client.post("/api/me/password", headers=ann, json={
            "current_password": PASSWORD, "new_password": "a brand new passphrase"})
        assert changed.status_code == 200, changed.text


def test_the_account_page_shows_both_problems_of_a_password_form(api: Api) -> None:
    api.signup("ann@example.com")
    _sign_in(api, "ann@example.com")
    refused = _post_form(api, "/account", "/account/password", current_password="a guess",
                         new_password="short")
    assert refused.status_code == 422
    page = _Page(refused.text)
    assert "The current password is wrong." in page.described("current_password")
    assert f"Choose a password of {RULE}." in page.described("new_password")

    refused = _post_form(api, "/account", "/account/email", email="ann at example.com",
                         email_password="a guess")
    assert refused.status_code == 422
    page = _Page(refused.text)
    assert "name@example.com" in page.described("email")
    assert "The current password is wrong." in page.described("email_password")


def test_a_form_field_too_long_for_the_form_is_told_in_our_words(api: Api) -> None:
    """Past the form's own limits (FastAPI checks those before our code runs) the page says
    what to do, not pydantic's "String should have at most ..."."""
    too_long = "a" * 330 + "@example.com"
    refused = _post_form(api, "/signup", "/signup", name="Ann", email=too_long,
                         password=PASSWORD)
    assert refused.status_code == 422
    assert "The email is longer than 320 characters: shorten it" in refused.text
    assert "String should have" not in refused.text and "body.email" not in refused.text
    api_said = api.client.post("/api/auth/signup", json={
        "email": too_long, "password": PASSWORD, "name": "Ann"})
    api.error(api_said, 422, "invalid_input")  # the API keeps its field paths
    assert api_said.json()["error"]["fields"][0]["field"] == "body.email"
