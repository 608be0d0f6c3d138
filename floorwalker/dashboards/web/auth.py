"""The floor page's access token: where it comes from, and how a request proves it has it.

The page shows staff names and where they are, so every page and API route
needs the token (docs/security.md). A request may bring it

* as ``Authorization: Bearer T`` (scripts reading ``/api/state``);
* as ``?token=T`` on any page URL: the answer is a redirect to the same URL
  without it, setting an ``HttpOnly; SameSite=Strict`` cookie, so the token
  leaves the address bar, the history and any ``Referer`` at once;
* as that cookie, whose value is an HMAC of the token (the cookie jar never
  holds the token itself).

Every comparison is :func:`hmac.compare_digest` on bytes. Where the token
comes from, first found wins: ``--http-token`` / ``FLOORWALKER_HTTP_TOKEN``,
then ``--http-token-file F`` (its first line; a new token is written there,
0600, when the file is missing or empty), then a file of the runner's own
under ``$XDG_STATE_HOME/floorwalker/`` made the same way. The token is never
logged or printed; what is printed is the file it is in.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from floorwalker.errors import ConfigError

COOKIE = "fw_floor"
MIN_TOKEN_CHARS = 16
TOKEN_BYTES = 24
"""A generated token: 24 random bytes, 32 URL-safe characters (192 bits)."""


@dataclass(frozen=True, slots=True)
class PageToken:
    """The token and where an operator finds it (never the token in ``repr``)."""

    value: str
    where: str
    """For the operator: "in /path/file" or "the one given with --http-token"."""
    file: Path | None = None

    def __repr__(self) -> str:
        return f"PageToken(where={self.where!r})"

    @property
    def cookie_value(self) -> str:
        """What the browser keeps: an HMAC of the token, not the token."""
        key = self.value.encode()
        return hmac.new(key, b"floorwalker floor page cookie v1", hashlib.sha256).hexdigest()

    def matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.value.encode())

    def matches_cookie(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.cookie_value.encode())


def default_token_file(port: int) -> Path:
    """``$XDG_STATE_HOME/floorwalker/http-token-PORT`` (``~/.local/state`` by default)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "floorwalker" / f"http-token-{port}"


def resolve_token(given: str | None, file: Path | None, port: int) -> PageToken:
    """The page's token from the flag or variable, else from a file (made when missing)."""
    if given is not None:
        return PageToken(_checked(given, "--http-token / FLOORWALKER_HTTP_TOKEN"), "as given")
    path = file if file is not None else default_token_file(port)
    value = _read(path)
    if value is None:
        value = secrets.token_urlsafe(TOKEN_BYTES)
        _write_private(path, value)
    return PageToken(_checked(value, str(path)), f"in {path}", path)


def _checked(value: str, source: str) -> str:
    token = value.strip()
    if len(token) < MIN_TOKEN_CHARS or not token.isascii() or not token.isprintable():
        raise ConfigError(
            f"the floor page token from {source} must be at least {MIN_TOKEN_CHARS} printable"
            " ASCII characters; leave it out to have one generated, or make one with"
            " `python3 -c 'import secrets; print(secrets.token_urlsafe(24))'`"
        )
    return token


def _read(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the floor page token: {exc}", file=str(path)) from None
    first = text.splitlines()[0].strip() if text.strip() else ""
    if not first:
        return None
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)  # a token others can read is no secret
    return first


def _write_private(path: Path, value: str) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(value + "\n")
        path.chmod(0o600)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the floor page token: {exc.strerror or exc}; pass --http-token-file"
            " with a writable path",
            file=str(path),
        ) from None
