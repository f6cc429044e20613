"""Property-based tests of the pure helpers: email and name normalising, slugs, cursors, tokens.

No database: these run in a few seconds and explore inputs no example-based test would list.
"""

from __future__ import annotations

import base64
import re
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from workspaces.errors import InvalidInput
from workspaces.pagination import Cursor
from workspaces.security import hash_token, new_token
from workspaces.validation import clean_name, normalize_email, slugify

SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")

few = settings(max_examples=200, deadline=None)

# --- generated addresses ------------------------------------------------------------------

_atom = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
_local = st.lists(_atom, min_size=1, max_size=3).map(".".join)
# Single hyphens only: "ab--" at a label start is reserved (IDNA) and rightly refused.
_label = st.from_regex(r"\A[a-z0-9]{1,8}(-[a-z0-9]{1,8}){0,2}\Z")
# A fixed list of real top-level domains: email-validator refuses special-use ones (.test ...).
_tld = st.sampled_from(["com", "org", "net", "io", "dev", "co", "de", "nl"])
_domain = st.builds(lambda labels, tld: ".".join([*labels, tld]),
                    st.lists(_label, min_size=1, max_size=3), _tld)
addresses = st.builds(lambda local, domain: f"{local}@{domain}", _local, _domain)
_padding = st.text(alphabet=" \t\r\n", max_size=3)


@st.composite
def case_variant(draw: st.DrawFn, address: str) -> str:
    """The address with the case of each letter chosen at random."""
    flips = draw(st.lists(st.booleans(), min_size=len(address), max_size=len(address)))
    return "".join(ch.upper() if flip else ch for ch, flip in zip(address, flips, strict=True))


@st.composite
def typed_addresses(draw: st.DrawFn) -> tuple[str, str]:
    """(the canonical lower-case address, how someone typed it)."""
    address = draw(addresses)
    typed = draw(_padding) + draw(case_variant(address)) + draw(_padding)
    return address, typed


@few
@given(typed_addresses())
def test_normalize_email_lower_cases_strips_and_is_idempotent(pair: tuple[str, str]) -> None:
    address, typed = pair
    result = normalize_email(typed)
    assert result == address
    assert result == result.lower() == result.strip()
    assert normalize_email(result) == result


@few
@given(addresses.flatmap(lambda a: st.tuples(case_variant(a), case_variant(a))))
def test_case_variants_of_one_address_normalise_alike(variants: tuple[str, str]) -> None:
    first, second = variants
    assert normalize_email(first) == normalize_email(second)


@few
@given(st.text().filter(lambda s: "@" not in unicodedata.normalize("NFKC", s)))  # U+FF20 is @
@example("")
@example("   ")
@example("a" * 400)
@example("ann.example.com")
@example("\x00")
def test_text_without_an_at_sign_is_an_invalid_email(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_email(raw)
    assert caught.value.code == "invalid_email"


# --- slugs ----------------------------------------------------------------------------------


@few
@given(st.text())
@example("")
@example("---")
@example("日本語")
@example("Ünïcödé Straße ﬁnance")
@example("a" * 59 + "-b" + "c" * 10)
@example("x" * 200)
def test_slugify_gives_a_valid_slug_and_is_idempotent(name: str) -> None:
    slug = slugify(name)
    assert SLUG.match(slug), slug
    assert 1 <= len(slug) <= 60
    assert slugify(slug) == slug


# --- names ----------------------------------------------------------------------------------


@few
@given(st.text(max_size=250))
@example("")
@example(" \t\n ")
@example("a\x00b")
@example("Ann\u0085Smith")
@example("Eve\u202enimda")
@example("x" * 201)
@example(" " + "x" * 200 + " ")
def test_clean_name_returns_a_clean_name_or_refuses(raw: str) -> None:
    try:
        name = clean_name(raw, field="name")
    except InvalidInput as error:
        assert error.code == "invalid_name"
        return
    assert name == name.strip()
    assert 1 <= len(name) <= 200
    assert not any(a.isspace() and b.isspace() for a, b in pairwise(name))
    assert not any(unicodedata.category(ch) == "Cc" for ch in name)
    # No format characters (bidi overrides and the like) but the joiners scripts need.
    assert not any(unicodedata.category(ch) == "Cf" and ch not in "\u200c\u200d" for ch in name)


# --- cursors --------------------------------------------------------------------------------

_fixed_offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes)))
aware_datetimes = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
    timezones=st.one_of(st.just(UTC), _fixed_offsets, st.timezones()),
)


@few
@given(aware_datetimes, st.uuids())
def test_cursor_round_trips(created_at: datetime, id_: uuid.UUID) -> None:
    text = Cursor(created_at, id_).encode()
    assert URL_SAFE.match(text), text  # it travels in a query string
    decoded = Cursor.decode(text)
    assert decoded is not None and decoded.id == id_
    # The same instant (comparison in UTC: inter-zone == is never true inside a DST fold/gap).
    assert decoded.created_at.tzinfo is not None
    assert decoded.created_at.astimezone(UTC) == created_at.astimezone(UTC)
    assert decoded.created_at.utcoffset() == created_at.utcoffset()


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


# Arbitrary text, and text that is valid base64 of arbitrary "stamp|id"-like content, so the
# decoder is exercised past the base64 step too.
cursor_texts = st.one_of(
    st.text(),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="),
    st.text().map(_b64),
    st.tuples(st.text(), st.text()).map(lambda p: _b64(f"{p[0]}|{p[1]}")),
    st.tuples(aware_datetimes.map(datetime.isoformat), st.text(alphabet="0123456789abcdef")
              ).map(lambda p: _b64(f"{p[0]}|{p[1]}")),
)


@few
@given(cursor_texts)
@example("!!!")
@example("é")
@example("\ud800")
@example(_b64("2025-01-01T00:00:00|zz"))
@example(_b64("9999-12-31T23:59:59.999999-23:59|" + "0" * 32))
@example(base64.urlsafe_b64encode(b"\xff\xfe|x").decode())
def test_cursor_decode_returns_a_cursor_or_invalid_cursor(text: str) -> None:
    try:
        decoded = Cursor.decode(text)
    except InvalidInput as error:
        assert error.code == "invalid_cursor"
        return
    if text == "":
        assert decoded is None  # no cursor: the first page
    else:
        assert isinstance(decoded, Cursor)
        assert decoded.created_at.tzinfo is not None


# --- tokens ---------------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=2, max_value=500))
def test_new_tokens_are_url_safe_long_and_distinct(count: int) -> None:
    tokens = [new_token() for _ in range(count)]
    assert len(set(tokens)) == count
    for token in tokens:
        assert len(token) >= 43
        assert URL_SAFE.match(token), token


@few
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-", max_size=10))
def test_prefixed_tokens_keep_the_prefix_and_stay_url_safe(prefix: str) -> None:
    token = new_token(prefix)
    assert token.startswith(prefix) and len(token) >= len(prefix) + 43
    assert URL_SAFE.match(token)


@few
@given(st.text(), st.text())
@example("", "")
def test_hash_token_is_64_lower_hex_and_deterministic(token: str, other: str) -> None:
    digest = hash_token(token)
    assert HEX64.match(digest), digest
    assert hash_token(token) == digest
    assert (hash_token(other) == digest) == (other == token)
