"""The token table's rows: checking the app's model, and the statements that read
and write one ``(provider, user)`` row on a connection the caller provides."""

from __future__ import annotations

import math
import time
import typing as t
from datetime import datetime
from datetime import timezone

import sqlalchemy as sa
from sqlalchemy import orm as sa_orm

from ..encryption import seal
from ..encryption import unseal
from ..errors import ConfigurationError
from ..tokens import Identity
from ..tokens import Token
from .model import utcnow

__all__ = ["TokenRows", "supports_native_upsert"]


class TokenRows:
    """The rows of the app's token model, one per user and provider.

    :raise ConfigurationError: ``model`` is not a mapped model, lacks a column of
        :class:`~.OAuthTokenMixin` or the user column, or the unique constraint on
        ``(provider, user_id)`` the upsert relies on.
    """

    def __init__(self, model: type[t.Any]) -> None:
        mapper = sa.inspect(model, raiseerr=False)
        if not isinstance(mapper, sa_orm.Mapper) or not isinstance(
            mapper.local_table, sa.Table
        ):
            raise ConfigurationError(
                f"{model!r} is not a mapped model: define it as"
                " 'class OAuthToken(OAuthTokenMixin, db.Model)'."
            )
        table = mapper.local_table
        user_column = getattr(model, "__oauth_user_column__", "user_id")
        missing = {"provider", "issuer", "subject", "token", "expires_at"}
        missing.add(user_column)
        missing.difference_update(table.c.keys())
        if missing:
            raise ConfigurationError(
                f"The token model {model.__name__} has no column(s)"
                f" {', '.join(sorted(missing))}: derive it from OAuthTokenMixin and"
                f" add the user column ('{user_column} = db.Column(db.ForeignKey("
                "User.id), nullable=False)') or set __oauth_user_column__."
            )
        self.model = model
        self.mapper: sa_orm.Mapper[t.Any] = mapper
        self.table: sa.Table = table
        self.user_column: sa.Column[t.Any] = table.c[user_column]
        #: The model's attribute mapping the user column.
        self.user_attr = mapper.get_property_by_column(self.user_column).key
        # Built once: every request reads its token with this statement.
        self._read_stmt = sa.select(table.c.token).where(
            table.c.provider == sa.bindparam("provider"),
            self.user_column == sa.bindparam("user_id"),
        )
        self._read_locked_stmt = self._read_stmt.with_for_update()
        #: The model's row of a provider identity: how a login finds its user.
        self.identity_stmt = sa.select(model).where(
            table.c.provider == sa.bindparam("provider"),
            table.c.issuer == sa.bindparam("issuer"),
            table.c.subject == sa.bindparam("subject"),
        )
        # ``INSERT ... ON CONFLICT`` per (dialect, with identity), built on first
        # use: a login writes its token with it.
        self._upserts: dict[tuple[str, bool], t.Any] = {}
        if not _has_unique(table, {"provider", self.user_column.key}):
            raise ConfigurationError(
                f"The table {table.name!r} needs a unique constraint on (provider,"
                f" {self.user_column.name}); OAuthTokenMixin declares it in"
                " __table_args__, keep it when overriding __table_args__."
            )

    def where(
        self, provider: str, user_id: t.Any
    ) -> tuple[sa.ColumnElement[bool], ...]:
        # The only filter used for reads and writes: always one user.
        if user_id is None:  # pragma: no cover - guarded by every caller
            raise AssertionError("a token query without a user")
        return (self.table.c.provider == provider, self.user_column == user_id)

    def read(
        self, conn: sa.Connection, provider: str, user_id: t.Any, *, for_update: bool
    ) -> Token | None:
        if user_id is None:  # pragma: no cover - guarded by every caller
            raise AssertionError("a token query without a user")
        stmt = self._read_locked_stmt if for_update else self._read_stmt
        value = conn.execute(stmt, {"provider": provider, "user_id": user_id}).scalar()
        return unseal(value)

    def upsert(
        self,
        conn: sa.Connection,
        provider: str,
        user_id: t.Any,
        token: t.Mapping[str, t.Any],
        identity: Identity | None,
        *,
        native: bool,
    ) -> None:
        """Insert the row, or update it when it exists.

        :param native: use the database's ``INSERT ... ON CONFLICT`` (see
            :func:`supports_native_upsert`); else select, then update or insert.
        """
        c = self.table.c
        now = utcnow()
        changes: dict[str, t.Any] = {
            # Encrypted when OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS is set.
            c.token.key: seal(token),
            c.expires_at.key: _expires_at(token),
            c.updated_at.key: now,
        }
        if identity is not None:
            changes[c.issuer.key] = identity.issuer
            changes[c.subject.key] = identity.subject
        values = {
            c.provider.key: provider,
            self.user_column.key: user_id,
            c.created_at.key: now,
            **changes,
        }
        if native:
            conn.execute(self._native_upsert(conn, identity is not None), values)
            return
        where = self.where(provider, user_id)
        found = conn.execute(
            sa.select(c.provider).where(*where).with_for_update()
        ).first()
        if found is None:
            conn.execute(sa.insert(self.table).values(values))
        else:
            conn.execute(sa.update(self.table).where(*where).values(changes))

    def _native_upsert(self, conn: sa.Connection, with_identity: bool) -> t.Any:
        key = (conn.dialect.name, with_identity)
        stmt = self._upserts.get(key)
        if stmt is None:
            # Imported here: an app loads only its own database's dialect.
            insert: t.Any
            if conn.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            c = self.table.c
            changes = [c.token.key, c.expires_at.key, c.updated_at.key]
            if with_identity:
                changes += [c.issuer.key, c.subject.key]
            stmt = insert(self.table)
            stmt = stmt.on_conflict_do_update(
                # Only this constraint is the arbiter: a clash on the identity
                # constraint (another user's row) raises instead of updating.
                index_elements=[c.provider, self.user_column],
                set_={name: stmt.excluded[name] for name in changes},
            )
            self._upserts[key] = stmt
        return stmt

    def link(
        self,
        conn: sa.Connection,
        provider: str,
        user_id: t.Any,
        identity: Identity | None,
    ) -> None:
        """Make sure the row of ``(provider, user_id)`` exists: insert it, without a
        token, when it doesn't. Written in the app's transaction when the user is new
        in it (see :meth:`.SQLAlchemyStorage.set`); the token follows separately."""
        if self.linked(conn, provider, user_id):
            return
        c = self.table.c
        now = utcnow()
        values: dict[str, t.Any] = {
            c.provider.key: provider,
            self.user_column.key: user_id,
            c.token.key: None,
            c.expires_at.key: None,
            c.created_at.key: now,
            c.updated_at.key: now,
        }
        if identity is not None:
            values[c.issuer.key] = identity.issuer
            values[c.subject.key] = identity.subject
        conn.execute(sa.insert(self.table).values(values))

    def delete(self, conn: sa.Connection, provider: str, user_id: t.Any) -> None:
        # Keep the row: it is the link between the provider identity and the user.
        conn.execute(
            sa.update(self.table)
            .where(*self.where(provider, user_id))
            .values(token=None, expires_at=None, updated_at=utcnow())
        )

    def unlink(self, conn: sa.Connection, provider: str, user_id: t.Any) -> None:
        conn.execute(sa.delete(self.table).where(*self.where(provider, user_id)))

    def identity_owner(
        self, conn: sa.Connection, provider: str, identity: Identity
    ) -> t.Any | None:
        """The id of the user the ``provider`` identity is linked to, if any."""
        c = self.table.c
        stmt = sa.select(self.user_column).where(
            c.provider == provider,
            c.issuer == identity.issuer,
            c.subject == identity.subject,
        )
        return conn.execute(stmt).scalar()

    def linked(self, conn: sa.Connection, provider: str, user_id: t.Any) -> bool:
        """Whether the user has a row for ``provider``, with a token or without."""
        stmt = sa.select(self.table.c.provider).where(*self.where(provider, user_id))
        return conn.execute(stmt).first() is not None


def supports_native_upsert(engine: sa.Engine) -> bool:
    """Whether :meth:`TokenRows.upsert` can use ``INSERT ... ON CONFLICT`` there."""
    if engine.dialect.name == "postgresql":
        return True
    if engine.dialect.name == "sqlite":
        version = getattr(engine.dialect.dbapi, "sqlite_version_info", (0,))
        return bool(version >= (3, 24))
    # MySQL's ON DUPLICATE KEY UPDATE fires on *any* unique key, the identity
    # constraint included, and would overwrite another user's row: not used.
    return False


def _has_unique(table: sa.Table, keys: set[str]) -> bool:
    for constraint in table.constraints:
        if isinstance(constraint, (sa.UniqueConstraint, sa.PrimaryKeyConstraint)):
            if {c.key for c in constraint.columns} == keys:
                return True
    return any(
        index.unique and {c.key for c in index.columns} == keys
        for index in table.indexes
    )


def _expires_at(token: t.Mapping[str, t.Any]) -> datetime | None:
    """``token["expires_at"]`` (seconds since the epoch) as a UTC datetime."""
    value = token.get("expires_at")
    if value is None and token.get("expires_in") is not None:
        try:
            value = time.time() + float(token["expires_in"])
        except (TypeError, ValueError):
            return None
    try:
        seconds = float(value)  # type: ignore[arg-type]
        if not math.isfinite(seconds):
            return None
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
