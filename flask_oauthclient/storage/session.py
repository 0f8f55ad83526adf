"""Tokens in the Flask session: the default storage, no database needed."""

from __future__ import annotations

import typing as t
from contextlib import contextmanager

from flask import session

from .. import encryption
from ..tokens import Identity
from ..tokens import Token
from .base import BaseStorage
from .base import CURRENT_USER
from .base import LockedToken

_KEY = "_oauthclient_tokens"


class SessionStorage(BaseStorage):
    """Keep each provider's token in the user's Flask session.

    The session is a signed (not encrypted) cookie by default: the user can read the
    token, and a browser cookie holds about 4 KB. The ID token is therefore not kept
    (its verified claims were given to ``on_login`` already). Use
    :class:`~flask_oauthclient.sqla.SQLAlchemyStorage` to keep tokens server-side,
    or set ``OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS``: the token is then encrypted in the
    cookie (see :mod:`flask_oauthclient.encryption`), which makes it about a third
    larger.

    Two concurrent requests of one browser each carry their own copy of the cookie;
    a refresh made by one is shared with the other through the in-process refresh
    cache (see :doc:`/refresh`), not through this storage.

    .. versionadded:: 0.1
    """

    def get(self, provider: str, *, user: t.Any = CURRENT_USER) -> Token | None:
        tokens = session.get(_KEY)
        if not tokens:
            return None
        return encryption.unseal(tokens.get(provider))

    def set(
        self,
        provider: str,
        token: t.Mapping[str, t.Any],
        *,
        user: t.Any = CURRENT_USER,
        identity: Identity | None = None,
    ) -> None:
        self.set_in(session, provider, token)

    def set_in(
        self,
        session: t.MutableMapping[str, t.Any],
        provider: str,
        token: t.Mapping[str, t.Any],
    ) -> None:
        """Store ``token`` in ``session``, a session that is not the current
        request's (a test client's ``session_transaction()``). Needs an app
        context, for the app's encryption keys.

        .. versionadded:: 0.1
        """
        tokens = dict(session.get(_KEY) or {})
        # The ID token stays out of the cookie (see the class docstring).
        kept = {k: v for k, v in token.items() if k != "id_token"}
        tokens[provider] = encryption.seal(kept)
        session[_KEY] = tokens

    def delete(self, provider: str, *, user: t.Any = CURRENT_USER) -> None:
        tokens = dict(session.get(_KEY) or {})
        if tokens.pop(provider, None) is not None:
            session[_KEY] = tokens

    @contextmanager
    def lock(
        self, provider: str, *, user: t.Any = CURRENT_USER
    ) -> t.Iterator[LockedToken]:
        # The session belongs to this request alone: there is nothing to lock here.
        # Concurrent refreshes of one browser are joined by the refresh cache.
        yield LockedToken(
            self.get(provider),
            lambda token: self.set(provider, token),
            lambda: self.delete(provider),
        )


def carry_over() -> t.Callable[[], None]:
    """Keep the session's tokens across a session reset (a login): call the
    returned function after the reset."""
    tokens = session.get(_KEY)

    def restore() -> None:
        if tokens:
            session[_KEY] = tokens

    return restore
