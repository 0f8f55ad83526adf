"""Tokens in the application's database, one row per user and provider.

:class:`OAuthTokenMixin` gives the app's token model its columns and constraints,
:class:`SQLAlchemyStorage` reads and writes those rows::

    class OAuthToken(OAuthTokenMixin, db.Model):
        user_id = db.Column(db.ForeignKey(User.id), nullable=False)
        user = db.relationship(User)

    storage = SQLAlchemyStorage(OAuthToken, db.session, user=lambda: current_user)

Token writes never ride on the view's transaction: each one runs in a transaction of
its own, on a connection of its own, and is committed before the method returns. The
view's pending work is neither committed nor rolled back by the storage, and a view
that rolls back later does not lose the token. (The exception is an in-memory SQLite
database, where everyone shares one connection: see :class:`SQLAlchemyStorage`.)
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
import time
import typing as t
import weakref
from contextlib import contextmanager
from datetime import datetime
from datetime import timezone

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy import orm as sa_orm

from .encryption import current_cipher
from .encryption import seal
from .encryption import TokenCipher
from .encryption import unseal
from .errors import ConfigurationError
from .errors import IdentityInUse
from .errors import StorageError
from .errors import UserRequired
from .storage.base import _process_lock
from .storage.base import BaseStorage
from .storage.base import CURRENT_USER
from .storage.base import Identity
from .storage.base import LockedToken
from .storage.base import Token

__all__ = [
    "IdentityInUse",
    "OAuthTokenMixin",
    "SQLAlchemyStorage",
    "UserRequired",
]

_T = t.TypeVar("_T")

# SQLAlchemy evaluates the ``Mapped[...]`` annotations below at runtime, also on
# Python 3.9 where ``datetime | None`` can't be evaluated: spell the optional types
# as aliases.
_OptionalStr = t.Optional[str]
_OptionalDateTime = t.Optional[datetime]
_OptionalJSON = t.Optional[dict[str, t.Any]]
# (provider, user id) pairs; an alias, as the storage's set() method hides ``set``.
_HeldKeys = set[tuple[str, t.Any]]


#: The app's engine → the storage's engine with a pool of its own.
_own_engines: weakref.WeakKeyDictionary[sa.Engine, sa.Engine] = (
    weakref.WeakKeyDictionary()
)
_own_engines_lock = threading.Lock()


def _utcnow() -> datetime:
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
        sa.DateTime(timezone=True), index=True
    )
    created_at: sa_orm.Mapped[datetime] = sa_orm.mapped_column(
        sa.DateTime(timezone=True), nullable=False, default=_utcnow
    )
    updated_at: sa_orm.Mapped[datetime] = sa_orm.mapped_column(
        sa.DateTime(timezone=True), nullable=False, default=_utcnow, onupdate=_utcnow
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


class SQLAlchemyStorage(BaseStorage):
    """Keep each user's tokens in the app's database.

    :param model: the app's token model, a subclass of :class:`OAuthTokenMixin`.
    :param session: the app's session, usually Flask-SQLAlchemy's ``db.session``. The
        storage only uses it to find the engine and to hand out objects
        (:meth:`find_user`); it never flushes or commits it.
    :param user: a callable returning the current user, e.g.
        ``lambda: current_user``. A user whose ``is_authenticated`` is false is
        anonymous.
    :param user_id: instead of ``user``, a callable returning the current user's id,
        or ``None`` when nobody is logged in.
    :param anonymous_ok: what :meth:`set` does when there is no user: raise
        :exc:`UserRequired` (the default) or, when true, store nothing and return.
    :param lock_timeout: seconds a write or :meth:`lock` waits for another holder of
        the same token (or, on SQLite, of the database) before failing with
        :exc:`~flask_oauthclient.errors.StorageError`.

    With neither ``user`` nor ``user_id``, Flask-Login's ``current_user`` is used.

    On an in-memory SQLite database (one connection shared by everyone), token writes
    can't be kept apart from the view's transaction: they commit it.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        model: type[t.Any],
        session: sa_orm.Session | sa_orm.scoped_session[t.Any],
        user: t.Callable[[], t.Any] | None = None,
        user_id: t.Callable[[], t.Any] | None = None,
        *,
        anonymous_ok: bool = False,
        lock_timeout: float = 30.0,
    ) -> None:
        if user is not None and user_id is not None:
            raise ConfigurationError(
                "SQLAlchemyStorage takes user= or user_id=, not both."
            )
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
        self.session = session
        self.anonymous_ok = anonymous_ok
        self.lock_timeout = lock_timeout
        self._user = user
        self._user_id = user_id
        self._held = threading.local()
        self._mapper: sa_orm.Mapper[t.Any] = mapper
        self._table: sa.Table = table
        self._user_column: sa.Column[t.Any] = table.c[user_column]
        self._user_attr = mapper.get_property_by_column(self._user_column).key
        # Built once: every request reads its token with this statement.
        self._read_stmt = sa.select(table.c.token).where(
            table.c.provider == sa.bindparam("provider"),
            self._user_column == sa.bindparam("user_id"),
        )
        self._read_locked_stmt = self._read_stmt.with_for_update()
        if not _has_unique(table, {"provider", self._user_column.key}):
            raise ConfigurationError(
                f"The table {table.name!r} needs a unique constraint on (provider,"
                f" {self._user_column.name}); OAuthTokenMixin declares it in"
                " __table_args__, keep it when overriding __table_args__."
            )

    # -- the storage protocol ---------------------------------------------------------

    def get(self, provider: str, *, user: t.Any = CURRENT_USER) -> Token | None:
        """Return the token stored for ``provider`` and ``user``, or ``None``; always
        ``None`` for an anonymous user.

        The token is read on a connection of its own, so the value is the committed
        one, whatever the view's session holds.
        """
        user_id = self._resolve_user_id(user)
        if user_id is None:
            return None
        with self._errors("read", provider):
            with self._connect() as conn:
                return self._read(conn, provider, user_id, for_update=False)

    def set(
        self,
        provider: str,
        token: t.Mapping[str, t.Any],
        *,
        user: t.Any = CURRENT_USER,
        identity: Identity | None = None,
    ) -> None:
        """Store ``token`` for ``provider`` and ``user``, replacing the one stored
        before (an upsert on ``(provider, user_id)``). The write is committed when
        this returns, independently of the view's session.

        :param identity: the user's identity at the provider, stored in ``issuer``
            and ``subject``; left unchanged when ``None``.
        :raise UserRequired: there is no user (unless ``anonymous_ok``).
        :raise IdentityInUse: ``identity`` is linked to another user.
        :raise ~flask_oauthclient.errors.StorageError: the database failed; nothing
            was written.
        """
        user_id = self._resolve_user_id(user)
        if user_id is None:
            self._no_user(provider)
            return
        self._refuse_while_locked(provider, user_id)
        token = dict(token)
        # The portable path (select, then update or insert) can lose a race with a
        # concurrent first insert; it then succeeds as an update on the retry.
        attempts = 1 if self._native_upsert(self._engine()) else 2
        for attempt in range(attempts):
            try:
                with self._errors("store", provider, integrity=False):
                    self._in_transaction(
                        lambda conn: self._upsert(
                            conn, provider, user_id, token, identity
                        )
                    )
            except sa_exc.IntegrityError as exc:
                if identity is not None:
                    owner = self._identity_owner(provider, identity)
                    if owner is not None and owner != user_id:
                        raise IdentityInUse(
                            f"The {provider!r} identity is linked to another user;"
                            " the token was not stored."
                        ) from None
                if attempt + 1 < attempts:
                    continue
                raise _storage_error("store", provider, exc) from None
            break
        self._forget_cached(provider, user_id)

    def delete(self, provider: str, *, user: t.Any = CURRENT_USER) -> None:
        """Remove the token of ``provider`` and ``user``, committed when this
        returns; the row stays as the link of the provider identity to the user
        (see :meth:`unlink`). Does nothing for an anonymous user: it never touches
        another user's row."""
        user_id = self._resolve_user_id(user)
        if user_id is None:
            return
        self._refuse_while_locked(provider, user_id)
        with self._errors("delete", provider):
            self._in_transaction(lambda conn: self._delete(conn, provider, user_id))
        self._forget_cached(provider, user_id)

    def unlink(self, provider: str, *, user: t.Any = CURRENT_USER) -> None:
        """Remove the token *and* the link between the provider identity and the
        user: the next login with that identity is a stranger's."""
        user_id = self._resolve_user_id(user)
        if user_id is None:
            return
        self._refuse_while_locked(provider, user_id)
        with self._errors("delete", provider):
            self._in_transaction(lambda conn: self._unlink(conn, provider, user_id))
        self._forget_cached(provider, user_id)

    def user_key(self, user: t.Any = CURRENT_USER) -> t.Hashable:
        """The user's id, or ``None`` for an anonymous user."""
        return t.cast(t.Hashable, self._resolve_user_id(user))

    @contextmanager
    def lock(
        self, provider: str, *, user: t.Any = CURRENT_USER
    ) -> t.Iterator[LockedToken]:
        """Hold the token of ``(provider, user)`` exclusively, for a refresh: one
        holder at a time across threads *and* processes.

        The threads of this process queue on a lock in memory; the holder then takes
        a lock in the database, on a connection of its own, and re-reads the token
        under it. PostgreSQL: a transaction-scoped advisory lock on ``(table,
        provider, user)`` plus ``SELECT ... FOR UPDATE`` on the row; SQLite:
        ``BEGIN IMMEDIATE`` (the database's write lock); others: ``SELECT ... FOR
        UPDATE``.

        :meth:`LockedToken.save` and :meth:`LockedToken.delete` write in the locked
        transaction and commit it: the new token is durable when they return (a
        rotated refresh token must never be lost to a later error). The lock is
        released at that point, which is safe since whoever takes it next re-reads
        the new token; another write in the same block takes it again. An exception
        in the block before a write leaves the stored token untouched.
        """
        user_id = self._resolve_user_id(user)
        with _process_lock((id(self), provider, user_id)):
            if user_id is None:
                yield LockedToken(None, lambda _: self._no_user(provider), _nothing)
                return
            if self._shared_connection(self._engine()):
                # One connection for everyone (in-memory SQLite): there is no other
                # process, and a database lock would collide with the view's own
                # transaction; the lock in memory is all there is.
                yield LockedToken(
                    self.get(provider, user=user),
                    lambda token: self.set(provider, token, user=user),
                    lambda: self.delete(provider, user=user),
                )
                return
            self._refuse_while_locked(provider, user_id)
            held = _HeldToken(self, provider, user_id)
            token = held.acquire()
            held_here = self._held_here()
            held_here.add((provider, user_id))
            try:
                yield LockedToken(token, held.save, held.delete)
            finally:
                held_here.discard((provider, user_id))
                held.release()

    def linked(self, provider: str, *, user: t.Any = CURRENT_USER) -> bool:
        """Whether ``user`` has a row for ``provider``: a token, or the link of the
        provider identity whose token was removed (at logout, say), which still
        lets the user log in with that provider."""
        user_id = self._resolve_user_id(user)
        if user_id is None:
            return False
        stmt = sa.select(self._table.c.provider).where(*self._where(provider, user_id))
        with self._errors("read", provider), self._connect() as conn:
            return conn.execute(stmt).first() is not None

    # -- encryption at rest -----------------------------------------------------------

    def reencrypt(
        self, cipher: TokenCipher | None = None, *, batch_size: int = 200
    ) -> dict[str, int]:
        """Bring every stored token under the newest key of
        ``OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS``: re-encrypt those encrypted with an
        older key and encrypt those stored in plain text. ``flask oauth reencrypt``
        calls it.

        Rows are handled in batches, each in a transaction of its own that locks
        its rows (a refresh of one of them waits for it, then reads the re-encrypted
        token), so it is safe while the app runs, and safe to run again.

        :param cipher: by default the current app's.
        :param batch_size: rows per transaction.
        :return: how many tokens were ``rotated`` (from an older key),
            ``encrypted`` (were plain text), ``current`` (under the newest key
            already) and ``unreadable`` (no key decrypts them: left as they are).
        :raise ConfigurationError: no encryption keys are configured.
        :raise ~flask_oauthclient.errors.StorageError: the database failed; the
            batches before were committed.

        .. versionadded:: 0.1
        """
        cipher = cipher or current_cipher()
        if cipher is None:
            raise ConfigurationError(
                "Tokens can't be re-encrypted: OAUTHCLIENT_TOKEN_ENCRYPTION_KEYS is "
                "not set."
            )
        primary_key = list(self._table.primary_key.columns)
        if len(primary_key) != 1:
            raise ConfigurationError(
                f"Re-encrypting needs a one-column primary key on {self._table.name}."
            )
        counts = dict.fromkeys(("rotated", "encrypted", "current", "unreadable"), 0)
        after: t.Any = None
        while True:
            work = functools.partial(
                self._reencrypt_batch, cipher, primary_key[0], after, batch_size
            )
            try:
                last, done = self._in_transaction(work)
            except (sa_exc.StatementError, sa_exc.TimeoutError) as exc:
                cause = getattr(exc, "orig", None) or exc
                raise StorageError(
                    f"Re-encrypting the tokens failed ({type(cause).__name__}); the"
                    f" {sum(counts.values())} handled before were committed. Run it"
                    " again: tokens under the newest key are skipped."
                ) from None
            for status, number in done.items():
                counts[status] += number
            if last is None:
                return counts
            after = last

    def _reencrypt_batch(
        self,
        cipher: TokenCipher,
        primary_key: sa.Column[t.Any],
        after: t.Any,
        batch_size: int,
        conn: sa.Connection,
    ) -> tuple[t.Any, dict[str, int]]:
        """One batch of :meth:`reencrypt`: the last key seen (``None`` at the end)
        and the counts."""
        column = self._table.c.token
        stmt = (
            sa.select(primary_key, column)
            .where(column.is_not(None))
            .order_by(primary_key)
            .limit(batch_size)
            .with_for_update()
        )
        if after is not None:
            stmt = stmt.where(primary_key > after)
        rows = conn.execute(stmt).all()
        done = dict.fromkeys(("rotated", "encrypted", "current", "unreadable"), 0)
        for key, stored in rows:
            if not isinstance(stored, dict) or not stored:
                continue
            try:
                status, new = cipher.rotate(stored)
            except ValueError:
                done["unreadable"] += 1
                continue
            done[status] += 1
            if new is not None:
                conn.execute(
                    sa.update(self._table)
                    .where(primary_key == key)
                    .values({column.key: new})
                )
        last = rows[-1][0] if len(rows) == batch_size else None
        return last, done

    # -- finding users ----------------------------------------------------------------

    def find_user(self, provider: str, identity: Identity) -> t.Any | None:
        """Return the app's user whose ``provider`` identity is ``identity``, or
        ``None``. The login flow recognizes a returning user this way, by
        ``(issuer, subject)``, never by email.

        The user is loaded through the app's session (without flushing it), ready for
        ``login_user``.
        """
        table = self._table
        stmt = sa.select(self.model).where(
            table.c.provider == provider,
            table.c.issuer == identity.issuer,
            table.c.subject == identity.subject,
        )
        with self._errors("read", provider), self.session.no_autoflush:
            row = self.session.execute(stmt).scalars().first()
            if row is None:
                return None
            return self._user_of(row)

    # -- internals --------------------------------------------------------------------

    def _no_user(self, provider: str) -> None:
        if not self.anonymous_ok:
            raise UserRequired(
                f"No user is logged in, so the {provider!r} token can't be stored: log"
                " the user in first, or pass user= to the storage."
            )

    def _held_here(self) -> _HeldKeys:
        """The tokens this thread holds the database lock of."""
        held: _HeldKeys | None = getattr(self._held, "keys", None)
        if held is None:
            held = self._held.keys = _HeldKeys()
        return held

    def _refuse_while_locked(self, provider: str, user_id: t.Any) -> None:
        # The write would wait for the lock this very thread holds, until it timed
        # out: fail at once, saying what to do instead.
        held = self._held_here()
        if (provider, user_id) in held:
            raise RuntimeError(
                f"This thread holds the lock of the {provider!r} token: write it"
                " through the LockedToken that lock() gave (save(), delete())."
            )
        if held and self._engine().dialect.name == "sqlite":
            raise RuntimeError(
                "This thread holds a token lock, which on SQLite is the database's"
                " write lock: write other tokens after leaving the lock() block."
            )

    def _engine(self) -> sa.Engine:
        """The engine of the storage's writes and locks.

        It reaches the app's database with the app's connection settings, but
        opens a connection per write and closes it after the commit: a view
        already holds one of the app's pooled connections when it writes a token,
        so borrowing a second one from the same pool could leave as many threads
        as connections waiting for each other; and a pool of its own would double
        the idle connections each worker keeps. Writes are rare (a login, a
        refresh, a logout); reads use the view's connection (:meth:`_connect`).
        """
        bind = self.session.get_bind(mapper=self.model).engine
        if self._shared_connection(bind):
            return bind
        own = _own_engines.get(bind)
        if own is None:
            with _own_engines_lock:
                own = _own_engines.get(bind)
                if own is None:
                    pool = sa.pool.NullPool(
                        bind.pool._creator,
                        dialect=bind.dialect,
                        _dispatch=bind.pool.dispatch,
                    )
                    own = _own_engines[bind] = sa.engine.Engine(
                        pool,
                        bind.dialect,
                        bind.url,
                        logging_name="flask_oauthclient",
                        # Statement parameters carry tokens: keep them out of
                        # error messages and logs.
                        hide_parameters=True,
                    )
        return own

    @staticmethod
    def _shared_connection(engine: sa.Engine) -> bool:
        return isinstance(
            engine.pool, (sa.pool.StaticPool, sa.pool.SingletonThreadPool)
        )

    @staticmethod
    def _native_upsert(engine: sa.Engine) -> bool:
        if engine.dialect.name == "postgresql":
            return True
        if engine.dialect.name == "sqlite":
            version = getattr(engine.dialect.dbapi, "sqlite_version_info", (0,))
            return bool(version >= (3, 24))
        # MySQL's ON DUPLICATE KEY UPDATE fires on *any* unique key, the identity
        # constraint included, and would overwrite another user's row: not used.
        return False

    @contextmanager
    def _connect(self) -> t.Iterator[sa.Connection]:
        """A connection for reading: the view's own.

        The view already holds it (Flask-Login loaded the user through it), so a
        read costs no second connection. Writes and locks use connections of their
        own (:meth:`_engine`) and commit before they return, so a read here sees
        them: each statement reads the latest committed data on PostgreSQL (READ
        COMMITTED), and pysqlite begins no transaction for a SELECT.
        """
        yield self.session.connection(bind_arguments={"mapper": self.model})

    def _in_transaction(self, work: t.Callable[[sa.Connection], _T]) -> _T:
        """Run ``work`` in a transaction of its own and commit it."""
        engine = self._engine()
        if self._shared_connection(engine):
            conn = self.session.connection(bind_arguments={"mapper": self.model})
            result = work(conn)
            # The one connection is the view's too: committing it is the only way
            # to make the token durable (documented limitation of in-memory SQLite).
            dbapi_connection = conn.connection.dbapi_connection
            if dbapi_connection is not None:
                dbapi_connection.commit()
            return result
        self._refuse_self_deadlock(engine)
        tx = _Transaction(engine, self.lock_timeout)
        try:
            tx.begin()
            result = work(tx.conn)
            tx.commit()
            return result
        except BaseException:
            tx.rollback_quietly()
            raise
        finally:
            tx.close()

    def _refuse_self_deadlock(self, engine: sa.Engine) -> None:
        """On SQLite, uncommitted writes of the view's session hold the database's
        write lock; waiting for it from the same thread would only time out."""
        if engine.dialect.name != "sqlite":
            return
        session = self._current_session()
        if session is None or not session.in_transaction():
            return
        conn = session.connection(bind_arguments={"mapper": self.model})
        dbapi_connection = conn.connection.dbapi_connection
        if getattr(dbapi_connection, "autocommit", None) is False:
            return  # always "in a transaction": nothing to learn
        if getattr(dbapi_connection, "in_transaction", False):
            raise ConfigurationError(
                "The session has uncommitted writes, which hold the SQLite"
                " database's write lock, so the token can't be written: call"
                " db.session.commit() first (e.g. after creating the user)."
            )

    def _where(
        self, provider: str, user_id: t.Any
    ) -> tuple[sa.ColumnElement[bool], ...]:
        # The only filter used for reads and writes: always one user.
        if user_id is None:  # pragma: no cover - guarded by every caller
            raise AssertionError("a token query without a user")
        return (self._table.c.provider == provider, self._user_column == user_id)

    def _read(
        self, conn: sa.Connection, provider: str, user_id: t.Any, *, for_update: bool
    ) -> Token | None:
        if user_id is None:  # pragma: no cover - guarded by every caller
            raise AssertionError("a token query without a user")
        stmt = self._read_locked_stmt if for_update else self._read_stmt
        value = conn.execute(stmt, {"provider": provider, "user_id": user_id}).scalar()
        return unseal(value)

    def _upsert(
        self,
        conn: sa.Connection,
        provider: str,
        user_id: t.Any,
        token: t.Mapping[str, t.Any],
        identity: Identity | None,
    ) -> None:
        c = self._table.c
        now = _utcnow()
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
            self._user_column.key: user_id,
            c.created_at.key: now,
            **changes,
        }
        if self._native_upsert(conn.engine):
            # Imported here: an app loads only its own database's dialect.
            stmt: t.Any
            if conn.dialect.name == "postgresql":
                from sqlalchemy.dialects import postgresql

                stmt = postgresql.insert(self._table).values(values)
            else:
                from sqlalchemy.dialects import sqlite

                stmt = sqlite.insert(self._table).values(values)
            conn.execute(
                stmt.on_conflict_do_update(
                    # Only this constraint is the arbiter: a clash on the identity
                    # constraint (another user's row) raises instead of updating.
                    index_elements=[c.provider, self._user_column],
                    set_={key: stmt.excluded[key] for key in changes},
                )
            )
            return
        where = self._where(provider, user_id)
        found = conn.execute(
            sa.select(c.provider).where(*where).with_for_update()
        ).first()
        if found is None:
            conn.execute(sa.insert(self._table).values(values))
        else:
            conn.execute(sa.update(self._table).where(*where).values(changes))

    def _delete(self, conn: sa.Connection, provider: str, user_id: t.Any) -> None:
        # Keep the row: it is the link between the provider identity and the user.
        conn.execute(
            sa.update(self._table)
            .where(*self._where(provider, user_id))
            .values(token=None, expires_at=None, updated_at=_utcnow())
        )

    def _unlink(self, conn: sa.Connection, provider: str, user_id: t.Any) -> None:
        conn.execute(sa.delete(self._table).where(*self._where(provider, user_id)))

    def _identity_owner(self, provider: str, identity: Identity) -> t.Any | None:
        c = self._table.c
        stmt = sa.select(self._user_column).where(
            c.provider == provider,
            c.issuer == identity.issuer,
            c.subject == identity.subject,
        )
        with self._errors("read", provider), self._connect() as conn:
            return conn.execute(stmt).scalar()

    def _forget_cached(self, provider: str, user_id: t.Any) -> None:
        """Expire the copies of the row the view's session holds, so that it doesn't
        serve the token as it was before this write."""
        session = self._current_session()
        if session is None:
            return
        for obj in list(session.identity_map.values()):
            if not isinstance(obj, self.model):
                continue
            loaded = sa.inspect(obj).dict
            if loaded.get("provider", provider) == provider and (
                loaded.get(self._user_attr, user_id) == user_id
            ):
                session.expire(obj)

    def _current_session(self) -> sa_orm.Session | None:
        session = self.session
        if isinstance(session, sa_orm.scoped_session):
            try:
                if not session.registry.has():
                    return None
            except RuntimeError:  # no app context: no session to keep fresh
                return None
            return t.cast(sa_orm.Session, session())
        return session

    def _resolve_user_id(self, user: t.Any) -> t.Any | None:
        """The id of ``user`` (or of the current user), ``None`` when anonymous."""
        if user is CURRENT_USER:
            if self._user_id is not None:
                return self._coerce_id(self._user_id())
            user = self._user() if self._user is not None else _flask_login_user()
        unwrap = getattr(user, "_get_current_object", None)
        if callable(unwrap):  # a LocalProxy such as current_user
            user = unwrap()
        if user is None or not getattr(user, "is_authenticated", True):
            return None
        state = sa.inspect(user, raiseerr=False)
        if isinstance(state, sa_orm.InstanceState):
            value = self._id_from_instance(state)
        else:
            value = getattr(user, "id", None)
        if value is None:
            raise ConfigurationError(
                f"The user {type(user).__name__} has no id yet: commit it"
                " (db.session.commit()) before storing or reading its tokens."
            )
        return value

    def _id_from_instance(self, state: sa_orm.InstanceState[t.Any]) -> t.Any:
        mapper = state.mapper
        pk = mapper.primary_key
        target: sa.ColumnElement[t.Any] | None
        target = _referenced_column(self._user_column)
        if target is None or (len(pk) == 1 and target is pk[0]):
            if len(pk) != 1:
                raise ConfigurationError(
                    f"Can't tell the id of a {mapper.class_.__name__} user: give"
                    " the token model's user column a ForeignKey to the user's id."
                )
            if state.key is not None:
                # The identity key: no load, hence no autoflush of the view's session.
                return state.key[1][0]
            target = pk[0]
        try:
            prop = mapper.get_property_by_column(target)
        except sa_orm.exc.UnmappedColumnError:
            raise ConfigurationError(
                f"The token model's user column references {target}, which"
                f" {mapper.class_.__name__} doesn't map: is it the user model?"
            ) from None
        return getattr(state.obj(), prop.key)

    def _coerce_id(self, value: t.Any) -> t.Any:
        # Flask-Login's get_id() gives strings; the column may want ints.
        if value is None:
            return None
        try:
            python_type = self._user_column.type.python_type
        except NotImplementedError:
            return value
        if isinstance(value, python_type):
            return value
        try:
            return python_type(value)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"user_id() returned {type(value).__name__}, not an id for the"
                f" column {self._user_column.name}."
            ) from None

    def _user_of(self, row: t.Any) -> t.Any | None:
        """The user a token row belongs to, through the relationship on the user
        column, or else looked up by the foreign key."""
        for rel in self._mapper.relationships:
            if self._user_column in rel.local_columns and not rel.uselist:
                return getattr(row, rel.key)
        user_id = getattr(row, self._user_attr)
        target = _referenced_column(self._user_column)
        if target is not None:
            for mapper in self._mapper.registry.mappers:
                if mapper.local_table is target.table:
                    stmt = sa.select(mapper.class_).where(target == user_id)
                    return self.session.execute(stmt).scalars().first()
        raise ConfigurationError(
            f"Can't find the user of a {self.model.__name__}: add a relationship to"
            " the user ('user = db.relationship(User)')."
        )

    @contextmanager
    def _errors(
        self, action: str, provider: str, *, integrity: bool = True
    ) -> t.Iterator[None]:
        """Turn database failures into :exc:`StorageError`."""
        try:
            yield
        except sa_exc.IntegrityError as exc:
            if not integrity:
                raise
            raise _storage_error(action, provider, exc) from None
        except (sa_exc.StatementError, sa_exc.TimeoutError) as exc:
            # ``from None``: SQLAlchemy's message quotes the statement's parameters,
            # the token among them, and tracebacks end up in logs.
            raise _storage_error(action, provider, exc) from None


class _Transaction:
    """A transaction on a connection of its own, whose writes wait for other writers
    (up to ``timeout`` seconds) rather than fail.

    On SQLite the transaction starts with ``BEGIN IMMEDIATE``, which takes the
    database's write lock up front: a deferred ``BEGIN`` would take it only at the
    first write, after reading, and two such transactions deadlock (SQLite then
    fails one at once, without waiting). pysqlite emits its own deferred ``BEGIN``
    before the first write, so that handling is switched off on this connection only,
    and restored before it goes back to the pool: the app's engine is not changed.
    """

    def __init__(self, engine: sa.Engine, timeout: float) -> None:
        self.dialect = engine.dialect.name
        self.timeout_ms = max(1, int(timeout * 1000))
        self.active = False
        self._restore: list[t.Callable[[], None]] = []
        # A connection that is closed after use (the storage's own engine) needs
        # none of its settings restored.
        self._pooled = not isinstance(engine.pool, sa.pool.NullPool)
        self.conn = engine.connect()
        try:
            if self.dialect == "sqlite":
                self._manual_sqlite_transactions()
            elif self.dialect in ("postgresql", "mysql", "mariadb"):
                # Under REPEATABLE READ the re-read after the lock would see the
                # snapshot from before the other holder's commit.
                self.conn.execution_options(isolation_level="READ COMMITTED")
        except BaseException:
            self.close()
            raise

    def _manual_sqlite_transactions(self) -> None:
        conn = self.conn
        dbapi_connection = t.cast(t.Any, conn.connection.dbapi_connection)
        autocommit = getattr(dbapi_connection, "autocommit", None)
        if isinstance(autocommit, bool):
            # Python 3.12+ with autocommit=False keeps a transaction open at all
            # times; autocommit=True leaves BEGIN to us.
            dbapi_connection.autocommit = True
            self._restore.append(
                lambda: setattr(dbapi_connection, "autocommit", autocommit)
            )
        else:
            isolation_level = dbapi_connection.isolation_level
            dbapi_connection.isolation_level = None
            self._restore.append(
                lambda: setattr(dbapi_connection, "isolation_level", isolation_level)
            )
        if not self._pooled:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {self.timeout_ms}")
            return
        busy_timeout = int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0)
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {self.timeout_ms}")

        def restore_busy_timeout() -> None:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {busy_timeout}")

        self._restore.append(restore_busy_timeout)

    def begin(self) -> None:
        if self.dialect == "sqlite":
            self.conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            self.conn.begin()
            if self.dialect == "postgresql":
                self.conn.exec_driver_sql(f"SET LOCAL lock_timeout = {self.timeout_ms}")
        self.active = True

    def commit(self) -> None:
        if self.dialect == "sqlite":
            self.conn.exec_driver_sql("COMMIT")
        self.conn.commit()
        self.active = False

    def rollback_quietly(self) -> None:
        """Roll back, on the way out of an error: a failure here must not hide the
        first one (and the database rolls back a broken connection by itself)."""
        self.active = False
        try:
            if self.dialect == "sqlite":
                dbapi_connection = self.conn.connection.dbapi_connection
                if getattr(dbapi_connection, "in_transaction", True):
                    self.conn.exec_driver_sql("ROLLBACK")
            self.conn.rollback()
        except Exception:
            self.conn.invalidate()

    def close(self) -> None:
        try:
            for restore in reversed(self._restore):
                restore()
        except Exception:
            # Never hand a connection in an odd state back to the pool.
            self.conn.invalidate()
        finally:
            self._restore.clear()
            self.conn.close()


class _HeldToken:
    """The database side of :meth:`SQLAlchemyStorage.lock`."""

    def __init__(
        self, storage: SQLAlchemyStorage, provider: str, user_id: t.Any
    ) -> None:
        self.storage = storage
        self.provider = provider
        self.user_id = user_id
        self.tx: _Transaction | None = None

    def acquire(self) -> Token | None:
        """Take the lock and read the token under it."""
        storage = self.storage
        with storage._errors("lock", self.provider):
            engine = storage._engine()
            storage._refuse_self_deadlock(engine)
            self.tx = _Transaction(engine, storage.lock_timeout)
            try:
                self._lock(self.tx)
                return storage._read(
                    self.tx.conn, self.provider, self.user_id, for_update=True
                )
            except BaseException:
                self.release()
                raise

    def _lock(self, tx: _Transaction) -> None:
        tx.begin()  # SQLite: BEGIN IMMEDIATE is the lock.
        if tx.dialect == "postgresql":
            # FOR UPDATE locks nothing while the row doesn't exist (the first token
            # of a user, or after a delete); an advisory lock on (table, provider,
            # user) serializes those holders too. It is released with the
            # transaction, so a dead holder never leaves it behind. The FOR UPDATE
            # still matters: it makes plain set() and delete() wait for the holder.
            key = sa.cast(sa.literal(self._advisory_key()), sa.BigInteger)
            tx.conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))

    def _advisory_key(self) -> int:
        # Python's hash() differs between processes; every process must agree.
        table = self.storage._table
        name = f"{table.fullname}\0{self.provider}\0{self.user_id}"
        digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)

    def save(self, token: t.Mapping[str, t.Any]) -> None:
        token = dict(token)
        self._write(
            lambda conn: self.storage._upsert(
                conn, self.provider, self.user_id, token, None
            )
        )

    def delete(self) -> None:
        self._write(
            lambda conn: self.storage._delete(conn, self.provider, self.user_id)
        )

    def _write(self, work: t.Callable[[sa.Connection], None]) -> None:
        tx = self.tx
        if tx is None:
            raise RuntimeError("The token lock is no longer held.")
        with self.storage._errors("store", self.provider):
            try:
                if not tx.active:  # an earlier write released the lock
                    self._lock(tx)
                work(tx.conn)
                tx.commit()
            except BaseException:
                tx.rollback_quietly()
                raise
        self.storage._forget_cached(self.provider, self.user_id)

    def release(self) -> None:
        """Release the lock. Every write was committed when made, so what is left
        is only the lock itself: roll back."""
        tx, self.tx = self.tx, None
        if tx is not None:
            if tx.active:
                tx.rollback_quietly()
            tx.close()


def _nothing() -> None:
    pass


def _flask_login_user() -> t.Any:
    from flask_login import current_user

    return current_user


def _referenced_column(column: sa.Column[t.Any]) -> sa.Column[t.Any] | None:
    for fk in column.foreign_keys:
        try:
            return fk.column
        except sa_exc.NoReferenceError:
            return None
    return None


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


def _storage_error(action: str, provider: str, exc: Exception) -> StorageError:
    """A :exc:`StorageError` naming the failure without quoting the statement's
    parameters (SQLAlchemy's message does, with the token in them)."""
    cause = getattr(exc, "orig", None) or exc
    if isinstance(exc, sa_exc.StatementError) and cause is exc:
        detail = type(exc).__name__
    else:
        lines = str(cause).strip().splitlines()
        detail = f"{type(cause).__name__}: {lines[0][:200]}" if lines else ""
        detail = detail or type(cause).__name__
    what = "nothing was written" if action != "read" else "nothing was read"
    return StorageError(
        f"Could not {action} the {provider!r} token, {what}: the database failed"
        f" ({detail})."
    )
