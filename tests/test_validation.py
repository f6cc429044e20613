"""Look-alike email addresses and invisible characters in names: unit tests, no database."""

# Look-alike characters are what these tests are about.
# ruff: noqa: RUF001

from __future__ import annotations

import homoglyph
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from workspaces.errors import InvalidInput
from workspaces.validation import clean_name, email_skeleton, normalize_email

few = settings(max_examples=200, deadline=None)

CYRILLIC_O = "\u043e"
CYRILLIC_A = "\u0430"
GREEK_OMICRON = "\u03bf"


def refusal(call: pytest.ExceptionInfo[InvalidInput]) -> tuple[str, str]:
    """(code, message) of a refusal, checking the message says something."""
    assert call.value.message.strip()
    return call.value.code, call.value.message


# --- normalize_email --------------------------------------------------------------------------


@pytest.mark.parametrize("typed", [
    "ｂｏｂ@example.com",
    "ＢＯＢ@example.com",
    "ｂｏｂ＠ｅｘａｍｐｌｅ．ｃｏｍ",
])
def test_fullwidth_address_normalises_to_the_ascii_one(typed: str) -> None:
    assert normalize_email(typed) == "bob@example.com"


@pytest.mark.parametrize("typed", [
    f"b{CYRILLIC_O}b@example.com",
    f"p{CYRILLIC_A}ypal@example.com",
    f"b{GREEK_OMICRON}b@example.com",
    f"ｂ{CYRILLIC_O}ｂ@example.com",
])
def test_local_part_mixing_scripts_is_refused(typed: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_email(typed, field="invite_email")
    code, message = refusal(caught)
    assert code == "email_confusable"
    assert caught.value.extra["field"] == "invite_email"
    assert "one alphabet" in message


@pytest.mark.parametrize("typed", [
    "not an address", "ann@", "@example.com", "ann@@example.com", "ann@localhost",
    "ann smith@example.com", "ann@example..com", "ann.@example.com", "ann@exa_mple.com",
])
def test_a_bad_address_is_refused_in_our_words_not_the_librarys(typed: str) -> None:
    with pytest.raises(EmailNotValidError) as library:
        validate_email(typed, check_deliverability=False)
    with pytest.raises(InvalidInput) as caught:
        normalize_email(typed)
    code, message = refusal(caught)
    assert code == "invalid_email"
    assert str(library.value) not in message and "@-sign" not in message
    assert "name@example.com" in message  # what to type instead


@pytest.mark.parametrize(("typed", "expected"), [
    ("Борис@example.com", "борис@example.com"),
    ("ΣΟΦΙΑ@example.gr", "σοφια@example.gr"),
    ("山田たろう@example.jp", "山田たろう@example.jp"),
    ("anna.müller-2+news@example.de", "anna.müller-2+news@example.de"),
])
def test_local_part_in_one_script_is_accepted(typed: str, expected: str) -> None:
    assert normalize_email(typed) == expected


# Addresses in one alphabet at a time (plus some arbitrary text), so that most are accepted.
_alphabets = st.sampled_from([
    "abcxyzABCXYZ019._+-",
    "ａｂｃＡＢＣ０１２",
    "İıſKΩÅﬁǅ㎏ẞß",  # case mapping and compatibility edge cases
    "абвгдоеАБВГДОЕёЁ",
    "αβγδοςΑΒΓΔΟ",
    "山田太郎たろうタロウー",
    "éeo\u0301\u0303n",
])
_locals = st.one_of(
    _alphabets.flatmap(lambda alphabet: st.text(alphabet, min_size=1, max_size=12)),
    st.text(min_size=1, max_size=8),
)
_domains = st.sampled_from(["example.com", "EXAMPLE.org", "ｅｘａｍｐｌｅ.com", "bücher.de",
                            f"ex{CYRILLIC_A}mple.com"])


def accepted(raw: str) -> str:
    """normalize_email(raw), skipping the example when it is refused."""
    try:
        return normalize_email(raw)
    except InvalidInput:
        assume(False)
        raise


@few
@given(_locals, _domains)
@example("İSTANBUL", "example.com")
@example("ǅemal", "example.com")
def test_normalize_email_is_idempotent(local: str, domain: str) -> None:
    address = accepted(f"{local}@{domain}")
    assert normalize_email(address) == address


# --- email_skeleton ---------------------------------------------------------------------------


@pytest.mark.parametrize(("look_alike", "original"), [
    (f"b{CYRILLIC_O}b@example.com", "bob@example.com"),
    (f"p{CYRILLIC_A}ypal@example.com", "paypal@example.com"),
    # Whole-script look-alike: all Cyrillic, so normalize_email accepts it; the skeleton catches it.
    ("сосо@example.com", "coco@example.com"),
    (f"bob@ex{CYRILLIC_A}mple.com", "bob@example.com"),
    ("bob\ufe0f@example.com", "bob@example.com"),  # a variation selector is invisible
    # Collisions UTS #39 accepts as the cost of the rule (see email_skeleton's docstring).
    ("rnary@example.com", "mary@example.com"),
    ("1ee@example.com", "lee@example.com"),
])
def test_look_alike_addresses_share_a_skeleton(look_alike: str, original: str) -> None:
    assert email_skeleton(look_alike) == email_skeleton(original)


def test_look_alike_that_normalize_email_accepts_still_collides() -> None:
    assert email_skeleton(normalize_email("СОСО@example.com")) == email_skeleton(
        normalize_email("coco@example.com"))


@pytest.mark.parametrize(("one", "other"), [
    ("bob@example.com", "alice@example.com"),
    ("bob@example.com", "rob@example.com"),
    ("bob@example.com", "bob@example.org"),
])
def test_different_addresses_have_different_skeletons(one: str, other: str) -> None:
    assert email_skeleton(one) != email_skeleton(other)


@few
@given(_locals, _domains)
def test_email_skeleton_is_idempotent(local: str, domain: str) -> None:
    skeleton = email_skeleton(accepted(f"{local}@{domain}"))
    assert email_skeleton(skeleton) == skeleton


def test_confusables_data_is_the_version_stored_skeletons_were_computed_with() -> None:
    # A new confusables.txt can change skeletons: recompute the stored ones when this changes.
    assert homoglyph.UNICODE_VERSION == "17.0.0"


# --- clean_name -------------------------------------------------------------------------------


@pytest.mark.parametrize("invisible", [
    "\u202e",  # RIGHT-TO-LEFT OVERRIDE
    "\u2066",  # LEFT-TO-RIGHT ISOLATE
    "\u200e",  # LEFT-TO-RIGHT MARK
    "\u061c",  # ARABIC LETTER MARK
    "\u200b",  # ZERO WIDTH SPACE
    "\ufeff",  # ZERO WIDTH NO-BREAK SPACE (byte order mark)
    "\u00ad",  # SOFT HYPHEN
])
def test_clean_name_refuses_invisible_formatting_characters(invisible: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        clean_name(f"Ann{invisible}Smith", field="display_name")
    code, message = refusal(caught)
    assert code == "invalid_display_name"
    assert "text-direction" in message


@pytest.mark.parametrize("name", [
    "علی\u200cرضا",  # Persian: Alireza, written with a ZERO WIDTH NON-JOINER
    "\U0001f468\u200d\U0001f469\u200d\U0001f467 Family",  # emoji family joined by ZWJ
])
def test_clean_name_keeps_the_joiners_scripts_and_emoji_need(name: str) -> None:
    assert clean_name(name, field="name") == name
