"""Normalising what people type: email addresses, names, slugs."""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable
from operator import itemgetter
from typing import Any, TypeVar, overload

from email_validator import EmailNotValidError, validate_email
from homoglyph.data import load_prototypes, load_ucd

from workspaces.errors import AppError, InvalidInput

MAX_EMAIL = 320
# Ours, not email-validator's words (which speak of "the @-sign" and quote its own checks).
BAD_EMAIL = ("Enter an email address such as name@example.com: check it for spaces, a missing "
             "or second @, or a domain without a dot.")
# Unicode scripts by ISO 15924 code. Common and Inherited (digits, punctuation, combining marks)
# go with any script.
_ANY_SCRIPT = frozenset({"Zyyy", "Zinh"})
# Mixes UTS #39 allows at its Highly Restrictive level: Latin with Japanese, Chinese or Korean.
_WRITING_SYSTEMS = (frozenset({"Latn", "Hani", "Hira", "Kana"}),
                    frozenset({"Latn", "Hani", "Bopo"}),
                    frozenset({"Latn", "Hani", "Hang"}))
# Persian and Indic spelling and emoji sequences need the zero-width non-joiner and joiner.
_JOINERS = frozenset("\u200c\u200d")


def normalize_email(raw: str, *, field: str = "email") -> str:
    """A valid address, NFKC-folded and lower-cased, whose local part keeps to one script."""
    candidate = unicodedata.normalize("NFKC", raw).strip()
    if not candidate or len(candidate) > MAX_EMAIL:
        raise InvalidInput(f"Enter an email address of at most {MAX_EMAIL} characters.",
                           code="invalid_email", field=field)
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError:
        raise InvalidInput(BAD_EMAIL, code="invalid_email", field=field) from None
    address = result.normalized.lower()
    scripts = _scripts(address.rpartition("@")[0])
    if not _one_writing_system(scripts):
        names = ", ".join(sorted(_script_name(code) for code in scripts))
        raise InvalidInput(f"The email address mixes letters of different alphabets before the @ "
                           f"({names}); type it again using one alphabet.",
                           code="email_confusable", field=field)
    return address


A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")


@overload
def check_all(a: Callable[[], A], b: Callable[[], B], /) -> tuple[A, B]: ...
@overload
def check_all(a: Callable[[], A], b: Callable[[], B], c: Callable[[], C], /
              ) -> tuple[A, B, C]: ...
@overload
def check_all(a: Callable[[], A], b: Callable[[], B], c: Callable[[], C], d: Callable[[], D], /
              ) -> tuple[A, B, C, D]: ...
def check_all(*checks: Callable[[], Any]) -> tuple[Any, ...]:
    """Run every check of a form and return their results; refused, every problem is told at
    once (`together`)."""
    results: list[Any] = []
    refusals: list[AppError] = []
    for check in checks:
        try:
            results.append(check())
        except InvalidInput as refusal:
            refusals.append(refusal)
    if refusals:
        raise together(*refusals)
    return tuple(results)


def together(first: AppError, *others: AppError) -> AppError:
    """The refusals of one form as one: the first alone, or a 422 with the first one's code and
    field, every sentence, and `fields` (each problem's field, code and sentence)."""
    if not others:
        return first
    refusals = (first, *others)
    return InvalidInput(" ".join(r.message for r in refusals), code=first.code,
                        field=first.extra.get("field"),
                        fields=[{"field": r.extra.get("field"), "code": r.code,
                                 "message": r.message} for r in refusals])


def email_skeleton(address: str) -> str:
    """The UTS #39 skeleton of a normalised address: addresses that look alike share it.

    NFD, drop default-ignorable characters, map each character to its prototype in Unicode's
    confusables.txt, NFD again. As UTS #39 intends, some pairs that a careful reader tells apart
    collide too, such as "rn"/"m" and "1"/"l" (rnary@ and mary@ cannot both sign up): the
    accepted cost. A new release of the confusables data can change skeletons already stored.
    """
    prototypes = load_prototypes()
    ignorable = load_ucd()["defaultIgnorable"]
    mapped = "".join(prototypes.get(ord(ch), ch) for ch in unicodedata.normalize("NFD", address)
                     if _range_of(ignorable, ord(ch)) is None)
    return unicodedata.normalize("NFD", mapped)


def clean_name(raw: str, *, field: str, max_length: int = 200) -> str:
    """Trimmed, inner whitespace collapsed, no control or format characters, 1..max_length long."""
    name = " ".join(raw.split())
    if not name or len(name) > max_length:
        raise InvalidInput(f"The {field} must be 1 to {max_length} characters.",
                           code=f"invalid_{field}", field=field)
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise InvalidInput(f"The {field} must not contain control characters.",
                           code=f"invalid_{field}", field=field)
    if any(unicodedata.category(ch) == "Cf" and ch not in _JOINERS for ch in name):
        raise InvalidInput(f"The {field} must not contain invisible formatting characters such as "
                           "text-direction overrides.", code=f"invalid_{field}", field=field)
    if not any(_visible(ch) for ch in name):
        raise InvalidInput(f"The {field} must contain at least one visible letter, digit or "
                           "sign.", code=f"invalid_{field}", field=field)
    return name


# Letters that render as nothing (Hangul fillers, the blank Braille pattern): a name made of
# them would show as empty in every list.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _visible(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LNPS" and ch not in _BLANK_LETTERS


def slugify(name: str, *, max_length: int = 60) -> str:
    """ASCII lower-case words joined by hyphens; 'workspace' when nothing is left."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "workspace"


def _scripts(text: str) -> frozenset[str]:
    """The scripts text is written in, leaving out Common and Inherited."""
    return frozenset(_script(ch) for ch in text) - _ANY_SCRIPT


def _script(ch: str) -> str:
    """ISO 15924 code of the character's Unicode Script property; 'Zzzz' when unassigned."""
    found = _range_of(load_ucd()["scriptRanges"], ord(ch))
    return str(found[2]) if found else "Zzzz"


def _one_writing_system(scripts: frozenset[str]) -> bool:
    """True for one script, or for a mix UTS #39 counts as one writing system."""
    return len(scripts) <= 1 or any(scripts <= system for system in _WRITING_SYSTEMS)


def _script_name(code: str) -> str:
    """'Cyrillic' for 'Cyrl'; the code itself when the data has no name for it."""
    names = {script["iso"]: script["name"] for script in load_ucd()["scripts"]}
    return str(names.get(code, code)).replace("_", " ")


def _range_of(ranges: list[list[Any]], code_point: int) -> list[Any] | None:
    """The [first, last, ...] entry holding code_point in sorted, disjoint ranges, else None."""
    index = bisect_right(ranges, code_point, key=itemgetter(0)) - 1
    return ranges[index] if index >= 0 and code_point <= ranges[index][1] else None
