"""Normalising what people type: email addresses, names, slugs."""

from __future__ import annotations

import re
import unicodedata

from email_validator import EmailNotValidError, validate_email

from workspaces.errors import InvalidInput

MAX_EMAIL = 320


def normalize_email(raw: str, *, field: str = "email") -> str:
    """A syntactically valid address, lower-cased: emails compare case-insensitively everywhere."""
    candidate = raw.strip()
    if not candidate or len(candidate) > MAX_EMAIL:
        raise InvalidInput(f"Enter an email address of at most {MAX_EMAIL} characters.",
                           code="invalid_email", field=field)
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"{candidate!r} is not a valid email address: {exc}",
                           code="invalid_email", field=field) from None
    return result.normalized.lower()


def clean_name(raw: str, *, field: str, max_length: int = 200) -> str:
    """Trimmed, inner whitespace collapsed, no control characters, 1..max_length long."""
    name = " ".join(raw.split())
    if not name or len(name) > max_length:
        raise InvalidInput(f"The {field} must be 1 to {max_length} characters.",
                           code=f"invalid_{field}", field=field)
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise InvalidInput(f"The {field} must not contain control characters.",
                           code=f"invalid_{field}", field=field)
    return name


def slugify(name: str, *, max_length: int = 60) -> str:
    """ASCII lower-case words joined by hyphens; 'workspace' when nothing is left."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "workspace"
