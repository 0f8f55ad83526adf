"""The app's token model: :class:`OAuthTokenMixin` gives it its columns and
constraints, one row per user and provider."""

from __future__ import annotations

import typing as t
from datetime import datetime
from datetime import timezone

import sqlalchemy as sa
from sqlalchemy import orm as sa_orm

from ..errors import ConfigurationError

__all__ = ["OAuthTokenMixin", "utcnow"]

# SQLAlchemy evaluates the ``Mapped[...]`` annotations below at runtime, also on
# Python 3.9 where ``datetime | None`` can't be evaluated: spell the optional types
# as aliases.
_OptionalStr = t.Optional[str]
_OptionalDateTime = t.Optional[datetime]
_OptionalJSON = t.Optional[dict[str, t.Any]]


class DATETIME(sa.DATETIME):
    """``sqlalchemy.dialects.mysql.DATETIME``, the MySQL and MariaDB variant of the
    timestamps, without importing :mod:`sqlalchemy.dialects.mysql`: that package
    loads every MySQL driver's dialect (20 modules, about 8 ms), which an app on
    another database never needs. It compiles as that type does (``DATETIME(6)``),
    Alembic renders it as that type (``mysql.DATETIME(timezone=True, fsp=6)``, with
    its import), and it pickles and copies as that type.
    """

    # Alembic renders a type whose class is in a module under
    # ``sqlalchemy.dialects.<name>`` as ``<name>.<repr>`` and imports ``<name>``;
    # the repr is "<class name>(<arguments>)".
    __module__ = "sqlalchemy.dialects.mysql.types"

    def __init__(self, timezone: bool = False, fsp: int | None = None) -> None:
        super().__init__(timezone=timezone)
        self.fsp = fsp

    def __reduce__(self) -> tuple[t.Any, ...]:
        # Pickled (and copied) as the real type: pickle refuses a class that its
        # module's attribute of that name is not.
        from sqlalchemy.dialects.mysql import DATETIME

        return DATETIME, (self.timezone, self.fsp)


def _timestamp() -> sa.types.TypeEngine[datetime]:
    """A point in time, in UTC. MySQL's and MariaDB's ``DATETIME`` drops the
    fraction of a second unless told to keep it (``fsp``): they get microseconds,
    as PostgreSQL and SQLite have them."""
    return sa.DateTime(timezone=True).with_variant(
        DATETIME(timezone=True, fsp=6), "mysql", "mariadb"
    )


def utcnow() -> datetime:
    """Now, in UTC: the ``created_at`` and ``updated_at`` of a row."""
    return datetime.now(timezone.utc)


class OAuthTokenMixin:
    """Columns and constraints of the app's token model: one row per user and
    provider.

    The app adds the user column, which must be named ``user_id`` (or set
    ``__oauth_user_column__`` to its name), and usually a relationship to the user::

        class OAuthToken(OAuthTokenMixin, db.Model):
            user_id = db.Column(db.ForeignKey(User.id), nullable=False)
            user = db.relationship(User)

    The mixin declares two unique constraints in ``__table_args__``:
    ``(provider, user_id)``, one token per user and provider, which the storage's
    upsert relies on; and ``(provider, issuer, subject)``, one provider identity
    belongs to one user (rows without an identity are not constrained, as unique
    constraints treat NULLs as distinct on PostgreSQL, SQLite and MySQL). A model
    that sets its own ``__table_args__`` must declare both again.

    The constraints are unnamed, so the metadata's naming convention (if any) names
    them, as it does for the rest of the app's tables.

    .. versionadded:: 0.1
    """

    #: Name of the app's column holding the user's id.
    __oauth_user_column__ = "user_id"

    id: sa_orm.Mapped[int] = sa_orm.mapped_column(sa.Integer, primary_key=True)
    #: The name the provider is registered under, e.g. ``"google"``.
    provider: sa_orm.Mapped[str] = sa_orm.mapped_column(sa.String(64), nullable=False)
    #: The OpenID Connect issuer (for plain OAuth 2 providers, see ``Identity``).
    issuer: sa_orm.Mapped[_OptionalStr] = sa_orm.mapped_column(sa.String(255))
    #: The user's id at the provider (the ``sub`` claim).
    subject: sa_orm.Mapped[_OptionalStr] = sa_orm.mapped_column(sa.String(255))
    #: The token as the provider issued it (access token, refresh token, ...), or
    #: ``{"enc": "<Fernet token>"}`` holding it encrypted when
    #: ``OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS`` is set (see
    #: :mod:`flask_oauthclient.encryption`): the same column serves both, so the
    #: model doesn't change when encryption is switched on.
    #: ``None`` once it was removed (logout, refused refresh): the row then still
    #: links the provider identity to the user, so a returning user is recognized.
    token: sa_orm.Mapped[_OptionalJSON] = sa_orm.mapped_column(
        sa.JSON(none_as_null=True)
    )
    #: When the access token expires, in UTC; ``None`` when the token doesn't say.
    #: Kept for queries ("tokens expiring soon"); the storage reads the token itself.
    expires_at: sa_orm.Mapped[_OptionalDateTime] = sa_orm.mapped_column(
        _timestamp(), index=True
    )
    created_at: sa_orm.Mapped[datetime] = sa_orm.mapped_column(
        _timestamp(), nullable=False, default=utcnow
    )
    updated_at: sa_orm.Mapped[datetime] = sa_orm.mapped_column(
        _timestamp(), nullable=False, default=utcnow, onupdate=utcnow
    )

    @sa_orm.declared_attr.directive
    def __table_args__(cls) -> tuple[t.Any, ...]:
        user_column = getattr(cls, "__oauth_user_column__", "user_id")
        if getattr(cls, user_column, None) is None:
            raise ConfigurationError(
                f"The token model {t.cast(type, cls).__name__} has no"
                f" {user_column!r} column: add"
                f" '{user_column} = db.Column(db.ForeignKey(User.id),"
                " nullable=False)', or set __oauth_user_column__ to its name."
            )
        return (
            sa.UniqueConstraint("provider", user_column),
            sa.UniqueConstraint("provider", "issuer", "subject"),
        )

    def __repr__(self) -> str:
        # Never the token: reprs end up in logs and error pages.
        user_id = getattr(self, self.__oauth_user_column__, None)
        return (
            f"<{type(self).__name__} {self.provider!r} user={user_id!r}"
            f" expires_at={self.expires_at!r}>"
        )
