"""Single-flight token refresh.

An expired token is refreshed by exactly one caller at a time per provider and user:

1. inside this process, callers holding the same refresh token wait on one lock
   (keyed by a digest of the refresh token, so it also joins two requests of one
   browser whose tokens live in the session cookie);
2. across processes, the storage's :meth:`~flask_oauthclient.storage.BaseStorage.lock`
   (a database row lock for :class:`~flask_oauthclient.sqla.SQLAlchemyStorage`);
3. under both locks the token is read again: if another caller already refreshed it,
   that token is used and the provider is not called.

A refresh the provider refuses with ``invalid_grant`` removes the stored token only if
it is still the one that failed, and raises
:class:`~flask_oauthclient.errors.ReauthorizationRequired`.
"""

from __future__ import annotations

import hashlib
import threading
import time
import typing as t
from collections import OrderedDict

from .errors import ReauthorizationRequired
from .locks import process_lock
from .storage.base import BaseStorage
from .storage.base import CURRENT_USER
from .tokens import is_expiring
from .tokens import Token

#: How long a refresh result is remembered for callers that still hold the old token.
_RECENT_TTL = 120.0
_RECENT_MAX = 4096


class _RecentRefreshes:
    """Old refresh token digest → the token that replaced it, for a short while.

    Two requests of one browser with tokens in the session cookie each hold the old
    refresh token; the second must adopt the first's result instead of presenting a
    refresh token the provider already rotated away.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[t.Hashable, tuple[float, Token]] = OrderedDict()

    def get(self, key: t.Hashable) -> Token | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] < time.monotonic():
                del self._items[key]
                return None
            return Token(item[1])

    def put(self, key: t.Hashable, token: Token) -> None:
        with self._lock:
            self._items[key] = (time.monotonic() + _RECENT_TTL, Token(token))
            self._items.move_to_end(key)
            while len(self._items) > _RECENT_MAX:
                self._items.popitem(last=False)


_recent = _RecentRefreshes()


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class InvalidGrant(Exception):
    """Raised by a ``call_provider`` function of :func:`single_flight`: the provider
    refused the refresh token (``invalid_grant``)."""


class GrantRevoked(ReauthorizationRequired):
    """The provider refused the refresh token, and :func:`single_flight` removed the
    stored token that failed."""


def single_flight(
    *,
    scope: t.Hashable,
    provider: str,
    storage: BaseStorage,
    stale: Token,
    call_provider: t.Callable[[Token], Token],
    leeway: float,
    user: t.Any = CURRENT_USER,
) -> tuple[Token, bool]:
    """Refresh ``stale`` once, whoever else is trying at the same time.

    :param scope: identifies the app and provider (keys the in-process lock).
    :param stale: the token the caller found unusable.
    :param leeway: a token expiring within it (see :func:`is_expiring`) is not
        adopted from another caller: it is refreshed.
    :param call_provider: sends the refresh request for the given stored token and
        returns the new token, merged with the old one where the answer is silent;
        raises :class:`InvalidGrant` when the provider refuses the refresh token.
    :return: the token to use, and whether this call refreshed it (rather than
        adopting the token another caller refreshed); it was saved either way.
    :raises GrantRevoked: the provider refused the refresh token; the stored token
        was removed.
    :raises ReauthorizationRequired: there is no refresh token, or no stored token.
    """
    refresh_token = stale.get("refresh_token")
    if not refresh_token:
        raise ReauthorizationRequired(
            "The access token expired and there is no refresh token."
        )
    key = (scope, _digest(str(refresh_token)))
    with process_lock(("refresh", key)):
        with storage.lock(provider, user=user) as locked:
            current = locked.token
            if current is None:
                raise ReauthorizationRequired(
                    "The token was removed while it was being refreshed."
                )
            if current.get("access_token") != stale.get(
                "access_token"
            ) and not is_expiring(current, leeway):
                # Another worker refreshed (or the user logged in again) meanwhile.
                return current, False
            done = _recent.get(key)
            if done is not None and not is_expiring(done, leeway):
                # A request of the same browser refreshed this session's token.
                # A provider that does not rotate refresh tokens keeps the key the
                # same across refreshes: an expired result is refreshed again.
                locked.save(done)
                return done, False
            try:
                new = call_provider(current)
            except InvalidGrant:
                # The token under the lock is the one the provider refused: remove it.
                locked.delete()
                raise GrantRevoked(
                    "The provider refused the refresh token (invalid_grant)."
                ) from None
            locked.save(new)
            _recent.put(key, new)
    return new, True
