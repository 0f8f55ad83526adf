"""The token storage protocol.

A storage keeps one token per (provider, user). "The user" is whatever the storage
decides it is: the browser session for :class:`SessionStorage`, an application user for
:class:`~flask_oauthclient.sqla.SQLAlchemyStorage`. Every method takes an optional
``user``; when it is left out the storage resolves the current user itself.
"""

from __future__ import annotations

import typing as t
from contextlib import contextmanager

from ..tokens import Identity
from ..tokens import Token


class _CurrentUser:
    def __repr__(self) -> str:
        return "CURRENT_USER"


#: Sentinel default of the ``user`` argument: the storage resolves the current user.
CURRENT_USER: t.Any = _CurrentUser()


class LockedToken:
    """What :meth:`BaseStorage.lock` yields: the token as read *after* the lock was
    taken, and the means to replace or remove it while the lock is held."""

    def __init__(
        self,
        token: Token | None,
        save: t.Callable[[t.Mapping[str, t.Any]], None],
        delete: t.Callable[[], None],
    ) -> None:
        self.token = Token(token) if token is not None else None
        self._save = save
        self._delete = delete

    def save(self, token: t.Mapping[str, t.Any]) -> None:
        """Store ``token``; it is durable when this returns."""
        self._save(token)
        self.token = Token(token)

    def delete(self) -> None:
        """Remove the stored token."""
        self._delete()
        self.token = None


class BaseStorage:
    """Base class of token storages. Subclasses implement :meth:`get`, :meth:`set` and
    :meth:`delete`, and may override :meth:`lock` (the default takes a lock inside this
    process only) and :meth:`user_key`.

    .. versionadded:: 0.1
    """

    def get(self, provider: str, *, user: t.Any = CURRENT_USER) -> Token | None:
        """Return the stored token, or ``None``."""
        raise NotImplementedError

    def set(
        self,
        provider: str,
        token: t.Mapping[str, t.Any],
        *,
        user: t.Any = CURRENT_USER,
        identity: Identity | None = None,
    ) -> None:
        """Store ``token``, replacing the one stored for this provider and user.

        :param identity: who the token belongs to at the provider, known at login.
        """
        raise NotImplementedError

    def delete(self, provider: str, *, user: t.Any = CURRENT_USER) -> None:
        """Remove the stored token, if any."""
        raise NotImplementedError

    def unlink(self, provider: str, *, user: t.Any = CURRENT_USER) -> None:
        """Remove the token and forget which user the provider identity belongs
        to. The default is :meth:`delete`, for storages that keep no identities."""
        self.delete(provider, user=user)

    def find_user(self, provider: str, identity: Identity) -> t.Any | None:
        """Return the user whose token of ``provider`` has this identity, or
        ``None``. Storages that do not record identities always return ``None``."""
        return None

    def linked(self, provider: str, *, user: t.Any = CURRENT_USER) -> bool:
        """Whether ``provider`` is linked to ``user``: a token is stored, or (for
        storages that record identities) the provider identity is still linked
        after its token was removed. Unlinking refuses to remove the last one.

        .. versionadded:: 0.1
        """
        return self.get(provider, user=user) is not None

    def user_key(self, user: t.Any = CURRENT_USER) -> t.Hashable:
        """A hashable key for ``user``, used to serialize refreshes per user.
        ``None`` means there is no user to key on."""
        return None

    @contextmanager
    def lock(
        self, provider: str, *, user: t.Any = CURRENT_USER
    ) -> t.Iterator[LockedToken]:
        """Hold the token of ``(provider, user)`` exclusively, for a refresh.

        The default serializes callers inside this process. Storages shared between
        processes override it with a lock the other processes see (a database row
        lock), and must still re-read the token after taking it.
        """
        # Imported by the first refresh, as is the rest of the refresh machinery.
        from ..locks import process_lock

        with process_lock((id(self), provider, self.user_key(user))):
            yield LockedToken(
                self.get(provider, user=user),
                lambda token: self.set(provider, token, user=user),
                lambda: self.delete(provider, user=user),
            )
