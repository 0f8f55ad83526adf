"""Account linking: whether the current user may unlink a provider, and storing a
linked account's token for the current user."""

from __future__ import annotations

import logging
import typing as t

from flask import current_app

from .errors import IdentityInUse
from .errors import OAuthClientError
from .errors import StorageError
from .storage.base import CURRENT_USER
from .tokens import Identity

if t.TYPE_CHECKING:
    from .state import AppState

log = logging.getLogger("flask_oauthclient")


def current_user() -> t.Any | None:
    """The logged-in Flask-Login user, or ``None`` (nobody, or no Flask-Login)."""
    if not hasattr(current_app, "login_manager"):
        return None
    from flask_login import current_user

    if not current_user.is_authenticated:
        return None
    return current_user._get_current_object()


def current_user_id() -> str | None:
    """The Flask-Login id of the logged-in user, or ``None``."""
    user = current_user()
    user_id = user.get_id() if user is not None else None
    return str(user_id) if user_id is not None else None


def can_unlink(state: AppState, provider: str) -> bool:
    """Whether the current user may unlink ``provider``: another registered
    provider is linked to them, or the ``has_other_login`` hook says they can log
    in otherwise."""
    storage = state.storage
    if any(storage.linked(other) for other in state.providers if other != provider):
        return True
    other_login = state.hooks.has_other_login
    if other_login is None:
        return False
    user = current_user()
    return user is not None and bool(other_login(user))


def identity_owner(
    state: AppState, provider: str, identity: Identity, failure: str
) -> t.Any | None:
    """The user ``identity`` of ``provider`` is linked to, or ``None``.

    :param failure: the message of the :exc:`StorageError` raised when the
        storage fails (the cause is logged, not shown).
    """
    try:
        return state.storage.find_user(provider, identity)
    except OAuthClientError:
        raise
    except Exception:
        log.exception("Looking up the owner of the %s identity failed.", provider)
        raise StorageError(failure) from None


def is_current_user(state: AppState, user: t.Any) -> bool:
    """Whether ``user`` is the one the current request acts for."""
    storage = state.storage
    return bool(storage.user_key(user) == storage.user_key(CURRENT_USER))


def check_link(state: AppState, provider: str, identity: Identity) -> None:
    """Refuse to link ``identity`` to the current user when it is another user's.

    :raises IdentityInUse: the identity is linked to another user.
    """
    owner = identity_owner(
        state, provider, identity, "The account could not be linked."
    )
    if owner is not None and not is_current_user(state, owner):
        raise IdentityInUse(
            f"The {provider!r} identity is linked to another user; nothing was stored."
        )
