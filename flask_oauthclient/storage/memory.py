"""Tokens in a dict in this process: for tests and scripts."""

from __future__ import annotations

import threading
import typing as t

from ..tokens import Identity
from ..tokens import Token
from .base import BaseStorage
from .base import CURRENT_USER


class MemoryStorage(BaseStorage):
    """Keep tokens in memory, per provider and user.

    :param user: a callable that returns the current user's key (for example
        ``lambda: current_user.get_id()``). A user given to a method (``user=``,
        :meth:`Provider.for_user <flask_oauthclient.Provider.for_user>`) is keyed
        by its ``get_id()``, or is the key itself (an id). Without ``user``, one
        token per provider is shared by every request and every user, which is what
        a test of a single user wants.
    :param tokens: initial tokens, ``{provider: token}`` for the shared user.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        user: t.Callable[[], t.Hashable] | None = None,
        tokens: t.Mapping[str, t.Mapping[str, t.Any]] | None = None,
    ) -> None:
        self._user = user
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, t.Hashable], Token] = {}
        self._identities: dict[tuple[str, t.Hashable], Identity] = {}
        for provider, token in (tokens or {}).items():
            self._tokens[(provider, None)] = Token(token)

    def user_key(self, user: t.Any = CURRENT_USER) -> t.Hashable:
        if self._user is None:
            # One shared token per provider, whoever logged in.
            return None
        if user is CURRENT_USER:
            return self._user()
        # A Flask-Login user is keyed by its id, like the current user usually is.
        get_id = getattr(user, "get_id", None)
        return t.cast(t.Hashable, get_id() if callable(get_id) else user)

    def get(self, provider: str, *, user: t.Any = CURRENT_USER) -> Token | None:
        with self._lock:
            token = self._tokens.get((provider, self.user_key(user)))
        return Token(token) if token is not None else None

    def set(
        self,
        provider: str,
        token: t.Mapping[str, t.Any],
        *,
        user: t.Any = CURRENT_USER,
        identity: Identity | None = None,
    ) -> None:
        key = (provider, self.user_key(user))
        with self._lock:
            self._tokens[key] = Token(token)
            if identity is not None:
                self._identities[key] = identity

    def delete(self, provider: str, *, user: t.Any = CURRENT_USER) -> None:
        # The identity stays, so a returning user is still recognized.
        key = (provider, self.user_key(user))
        with self._lock:
            self._tokens.pop(key, None)

    def unlink(self, provider: str, *, user: t.Any = CURRENT_USER) -> None:
        key = (provider, self.user_key(user))
        with self._lock:
            self._tokens.pop(key, None)
            self._identities.pop(key, None)

    def linked(self, provider: str, *, user: t.Any = CURRENT_USER) -> bool:
        key = (provider, self.user_key(user))
        with self._lock:
            return key in self._tokens or key in self._identities

    def find_user(self, provider: str, identity: Identity) -> t.Hashable | None:
        """Return the key of the user whose token has this identity, or ``None``."""
        with self._lock:
            for (name, user), known in self._identities.items():
                if name == provider and known == identity:
                    return user
        return None
