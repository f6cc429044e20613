"""Secrets: random tokens stored as sha256, Argon2 passwords, and sealing of outbox secrets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Callable
from functools import cache, lru_cache
from pathlib import Path
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

from workspaces.db import parse_url, sqlite_path
from workspaces.errors import AppError, ServiceUnavailable
from workspaces.settings import MAKE_SECRET_KEY, SECRET_KEY_BYTES, Settings, long_enough
from workspaces.tokens import TOKEN_BYTES

_hasher = PasswordHasher()
T = TypeVar("T")


@cache
def _dummy_hash() -> str:
    """Verifying against this keeps sign-in time the same whether or not the email exists.
    Made on first use, not at import: every CLI command would pay for it."""
    return _hasher.hash(secrets.token_urlsafe(16))


def new_token(prefix: str = "") -> str:
    """A URL-safe token with 256 bits of randomness."""
    return prefix + secrets.token_urlsafe(TOKEN_BYTES)


def keyed_token(key: str, name: bytes) -> str:
    """A token like `new_token`'s, that whoever holds `key` can make again from `name` (an
    HMAC): a mailed link can be mailed again while only its hash is stored."""
    digest = hmac.new(key.encode(), b"link:" + name, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def hash_token(token: str) -> str:
    """What the database stores instead of a token. Lookups compare hashes, never tokens."""
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    """Argon2 (about 0.3 s of one core): call it through `Passwords` in the server."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return (_hasher.verify(password_hash or _dummy_hash(), password)
                and password_hash is not None)
    except (VerificationError, InvalidHashError):
        return False


class Passwords:
    """Argon2 for the server: in a worker thread (argon2-cffi releases the GIL), never on the
    event loop, and at most `concurrency` at once per process, so sign-ups cannot take every
    core from the requests being served. Callers hash before they open a transaction: a hash
    never holds a connection or, on SQLite, the write lock. A caller that waits more than
    `wait` seconds for its turn is answered 503 `server_busy`."""

    def __init__(self, *, concurrency: int, wait: float) -> None:
        self._turns = asyncio.Semaphore(concurrency)
        self._wait = wait

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await self._run(verify_password, password_hash, password)

    async def _run(self, work: Callable[..., T], *args: str | None) -> T:
        try:
            await asyncio.wait_for(self._turns.acquire(), timeout=self._wait)
        except TimeoutError:
            raise ServiceUnavailable("The server is too busy checking passwords; retry in a "
                                     "moment.", code="server_busy",
                                     headers={"Retry-After": "1"}) from None
        # The turn is given back when the thread is done, not when the caller stops waiting:
        # a request cancelled mid-hash (client gone) must not lift the cap while it computes.
        done = asyncio.ensure_future(asyncio.to_thread(work, *args))
        done.add_done_callback(lambda _: self._turns.release())
        return await asyncio.shield(done)


class SecretKeyMissing(AppError):
    status, code = 500, "secret_key_missing"


class SecretKeyInvalid(AppError):
    status, code = 500, "secret_key_invalid"


def secret_key(settings: Settings) -> str:
    """SECRET_KEY, or for the SQLite default a key generated once beside the database file."""
    if settings.secret_key:
        return settings.secret_key
    path = sqlite_path(parse_url(settings.database_url))
    if path is None:
        raise SecretKeyMissing(
            "SECRET_KEY is not set. With PostgreSQL every instance must share one; generate it "
            f"with `{MAKE_SECRET_KEY}`."
        )
    key_file = Path(f"{path}.secret")
    if not key_file.exists():
        _create_key_file(key_file)
    key = key_file.read_text().strip()
    if not long_enough(key):
        raise SecretKeyInvalid(
            f"The key file {key_file} is empty or shorter than {SECRET_KEY_BYTES} bytes. Delete "
            "it to have a new key generated (invite links waiting in the outbox under the old "
            "one are then not delivered), or set SECRET_KEY.")
    return key


def _create_key_file(path: Path) -> None:
    """Written whole under a temporary name (0600), then linked into place: nobody reads it
    empty or in part, and of two processes creating it at once the first wins and both read
    its key."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(SECRET_KEY_BYTES))
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: its key
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


@lru_cache(maxsize=4)
def _fernet(key: str) -> Fernet:
    import base64

    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()))


def seal(key: str, value: str) -> str:
    return _fernet(key).encrypt(value.encode()).decode()


def unseal(key: str, sealed: str) -> str | None:
    """The sealed value, or None if it was sealed with another key."""
    try:
        return _fernet(key).decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None
