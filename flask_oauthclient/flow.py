"""Pending logins: what the login view leaves in the session for its callback.

A pending login is keyed by its ``state`` and holds the PKCE verifier, the OpenID
nonce, the checked ``next`` target and an expiry. Several may coexist (a login started
in two tabs), their number is bounded so the session cookie stays small, and each is
used once.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import typing as t
import unicodedata
from urllib.parse import unquote
from urllib.parse import urlsplit

from flask import session

from .errors import CallbackError

_KEY = "_oauthclient_pending"
#: Longest ``state`` accepted back from the provider; ours are 43 characters.
_MAX_STATE_LENGTH = 128
_MAX_NEXT_LENGTH = 2048


class PendingLogin:
    """One login started by ``/login/<name>`` and not yet completed.

    (A plain class, not a dataclass: building one costs more import time than the
    rest of this module.)
    """

    __slots__ = (
        "provider",
        "state",
        "code_verifier",
        "nonce",
        "next_url",
        "expires_at",
        "link_user",
        "scopes",
        "identity",
    )

    def __init__(
        self,
        provider: str,
        state: str,
        code_verifier: str | None,
        nonce: str | None,
        next_url: str,
        expires_at: float,
        link_user: str | None = None,
        scopes: list[str] | None = None,
        identity: tuple[str | None, str] | None = None,
    ) -> None:
        self.provider = provider
        self.state = state
        self.code_verifier = code_verifier
        self.nonce = nonce
        self.next_url = next_url
        self.expires_at = expires_at
        #: For a link (not a login): the id of the logged-in user who started it;
        #: the callback stores the token for that user instead of calling
        #: ``on_login``.
        self.link_user = link_user
        #: For a scope request (:mod:`.scopes`): every scope asked for; the
        #: callback stores the token, with that scope, for the same user and
        #: provider identity.
        self.scopes = scopes
        #: For a scope request: the ``(issuer or None, subject)`` of the token
        #: it adds to, when the storage can't tell.
        self.identity = identity

    def _fields(self) -> tuple[t.Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass would be

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"PendingLogin({shown})"

    def to_session(self) -> dict[str, t.Any]:
        data: dict[str, t.Any] = {
            "p": self.provider,
            "v": self.code_verifier,
            "n": self.nonce,
            "x": self.next_url,
            "e": self.expires_at,
        }
        if self.link_user is not None:
            data["u"] = self.link_user
        if self.scopes is not None:
            data["s"] = self.scopes
        if self.identity is not None:
            data["i"] = list(self.identity)
        return data

    @classmethod
    def from_session(cls, state: str, data: t.Any) -> PendingLogin | None:
        try:
            return cls(
                provider=str(data["p"]),
                state=state,
                code_verifier=data["v"],
                nonce=data["n"],
                next_url=str(data["x"]),
                expires_at=float(data["e"]),
                link_user=str(data["u"]) if data.get("u") is not None else None,
                scopes=[str(s) for s in data["s"]] if "s" in data else None,
                identity=(data["i"][0], str(data["i"][1])) if "i" in data else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            return None


def code_challenge(verifier: str) -> str:
    """The S256 PKCE challenge of ``verifier`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def begin(
    provider: str,
    next_url: str,
    *,
    pkce: bool,
    nonce: bool,
    ttl: float,
    max_pending: int,
    link_user: str | None = None,
    scopes: list[str] | None = None,
    identity: tuple[str | None, str] | None = None,
) -> PendingLogin:
    """Create a pending login and keep it in the session.

    :param link_user: the id of the logged-in user, when this links another
        provider to them rather than logging in.
    :param scopes: for a scope request, every scope it asks for.
    :param identity: for a scope request, the provider identity it must come
        back with, when the storage can't tell.
    """
    pending = PendingLogin(
        provider=provider,
        state=secrets.token_urlsafe(32),
        # 64 characters from the unreserved set: within RFC 7636's 43..128.
        code_verifier=secrets.token_urlsafe(48) if pkce else None,
        nonce=secrets.token_urlsafe(16) if nonce else None,
        next_url=next_url,
        expires_at=time.time() + ttl,
        link_user=link_user,
        scopes=scopes,
        identity=identity,
    )
    logins = _live(session.get(_KEY))
    logins[pending.state] = pending.to_session()
    # Oldest first: dicts keep insertion order through the JSON session serializer.
    while len(logins) > max_pending:
        del logins[next(iter(logins))]
    session[_KEY] = logins
    return pending


def complete(provider: str, states: list[str]) -> PendingLogin:
    """Take the pending login named by the callback's ``state`` out of the session.

    :param states: every ``state`` value of the callback's query string.
    :raises CallbackError: the state is missing, repeated, unknown, expired, or was
        started for another provider. The pending login is consumed either way.
    """
    if not states or not states[0]:
        raise CallbackError("missing_state", "The callback has no state parameter.")
    if len(states) > 1:
        raise CallbackError("duplicate_state", "The callback repeats the state.")
    state = states[0]
    if len(state) > _MAX_STATE_LENGTH:
        raise CallbackError("unknown_state", "The callback's state is not ours.")
    logins = session.get(_KEY)
    if not isinstance(logins, dict) or state not in logins:
        raise CallbackError(
            "unknown_state",
            "No login is pending for this state: it was already used, it was "
            "started in another browser, or the session cookie was lost.",
        )
    logins = dict(logins)
    pending = PendingLogin.from_session(state, logins.pop(state))
    session[_KEY] = _live(logins)
    if pending is None or pending.provider != provider:
        raise CallbackError("unknown_state", "No login is pending for this state.")
    if pending.expires_at < time.time():
        raise CallbackError("expired_state", "The login took too long and expired.")
    return pending


def carry_over() -> t.Callable[[], None]:
    """Keep the live pending logins (other tabs') across a session reset: call the
    returned function after the reset."""
    pending = _live(session.get(_KEY))

    def restore() -> None:
        if pending:
            session[_KEY] = pending

    return restore


def _live(logins: t.Any) -> dict[str, t.Any]:
    if not isinstance(logins, dict):
        return {}
    now = time.time()
    return {
        k: v
        for k, v in logins.items()
        if isinstance(v, dict) and isinstance(v.get("e"), (int, float)) and v["e"] > now
    }


def safe_next(target: t.Any, default: str) -> str:
    """Return ``target`` if it is a path on this site, else ``default``.

    Only relative paths starting with a single ``/`` are honoured: no scheme, no
    host, no ``//`` or ``/\\`` (which browsers read as another host), no control or
    white-space characters, also after percent-decoding.
    """
    if not isinstance(target, str) or not target or len(target) > _MAX_NEXT_LENGTH:
        return default
    decoded = target
    # Decode repeatedly: "%252F%252F" must not survive as "//" one step later.
    for _ in range(3):
        if not _is_local_path(decoded):
            return default
        once = unquote(decoded)
        if once == decoded:
            return target
        decoded = once
    return default


def _is_local_path(value: str) -> bool:
    if not value.startswith("/") or value.startswith(("//", "/\\")):
        return False
    if "\\" in value:
        return False
    for ch in value:
        if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc
