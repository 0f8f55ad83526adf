"""Tokens in the application's database, one row per user and provider.

:class:`OAuthTokenMixin` gives the app's token model its columns and constraints,
:class:`SQLAlchemyStorage` reads and writes those rows::

    class OAuthToken(OAuthTokenMixin, db.Model):
        user_id = db.Column(db.ForeignKey(User.id), nullable=False)
        user = db.relationship(User)

    storage = SQLAlchemyStorage(OAuthToken, db.session, user=lambda: current_user)

Token writes never ride on the view's transaction: each one runs in a transaction of
its own, on a connection of its own, and is committed before the method returns, so a
view that rolls back later does not lose the token. The view's pending work is
neither committed nor rolled back by the storage, except where the token depends on
it: a user not committed yet, and what ``on_login`` changed at a login are committed
first (see :meth:`SQLAlchemyStorage.set`). (On an in-memory SQLite database, where
everyone shares one connection, a token write commits the view's transaction: see
:class:`SQLAlchemyStorage`.)
"""

from __future__ import annotations

from ..errors import IdentityInUse
from ..errors import UserRequired
from .model import OAuthTokenMixin
from .storage import SQLAlchemyStorage

__all__ = [
    "IdentityInUse",
    "OAuthTokenMixin",
    "SQLAlchemyStorage",
    "UserRequired",
]
