"""Tokens in the Flask session: the default storage, no database needed."""

from __future__ import annotations

import typing as t
from contextlib import contextmanager

from flask import has_request_context
from flask import session

from .. import encryption
from ..errors import ConfigurationError
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

    The token belongs to the browser: it can be read only in that browser's
    requests, for the user logged in there. Reading, deleting or locking the token
    of a given ``user`` (:meth:`Provider.for_user
    <flask_oauthclient.Provider.for_user>`), or any use outside a request (a job,
    a CLI command), raises :exc:`~flask_oauthclient.ConfigurationError`; use
    :class:`~flask_oauthclient.sqla.SQLAlchemyStorage` for those. (:meth:`set`
    takes the user the login just logged in this browser.)

    .. versionadded:: 0.1
    """

    def user_key(self, user: t.Any = CURRENT_USER) -> t.Hashable:
        """``None``: the session is the browser's, there is no user to key on.

        :raises ConfigurationError: ``user`` is given, or there is no request.
        """
        _check(user)
        return None

    def get(self, provider: str, *, user: t.Any = CURRENT_USER) -> Token | None:
        _check(user)
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
        # The user is the one the login just logged in this browser.
        _check(CURRENT_USER)
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
        _check(user)
        tokens = dict(session.get(_KEY) or {})
        if tokens.pop(provider, None) is not None:
            session[_KEY] = tokens

    @contextmanager
    def lock(
        self, provider: str, *, user: t.Any = CURRENT_USER
    ) -> t.Iterator[LockedToken]:
        # The session belongs to this request alone: there is nothing to lock here.
        # Concurrent refreshes of one browser are joined by the refresh cache.
        _check(user)
        yield LockedToken(
            self.get(provider),
            lambda token: self.set(provider, token),
            lambda: self.delete(provider),
        )


def _check(user: t.Any) -> None:
    """Refuse what the session can't do: another user's token, or no request."""
    if user is not CURRENT_USER:
        raise ConfigurationError(
            "SessionStorage keeps the token of the browser's own session: it can't "
            "read or change another user's token (for_user(), background jobs, CLI "
            "commands). Keep tokens in the database with "
            "flask_oauthclient.sqla.SQLAlchemyStorage to act for any user."
        )
    if not has_request_context():
        raise ConfigurationError(
            "SessionStorage keeps tokens in the Flask session, which exists only in "
            "a request: outside a request (a background job, a CLI command) no "
            "token can be read. Keep tokens in the database with "
            "flask_oauthclient.sqla.SQLAlchemyStorage to call the provider there."
        )


def carry_over() -> t.Callable[[], None]:
    """Keep the session's tokens across a session reset (a login): call the
    returned function after the reset."""
    tokens = session.get(_KEY)

    def restore() -> None:
        if tokens:
            session[_KEY] = tokens

    return restore
