"""The storage keeping each user's tokens in the app's database:
:class:`SQLAlchemyStorage`."""

from __future__ import annotations

import threading
import typing as t
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy import orm as sa_orm

from ..encryption import current_cipher
from ..errors import ConfigurationError
from ..errors import IdentityInUse
from ..errors import UserRequired
from ..storage.base import BaseStorage
from ..storage.base import CURRENT_USER
from ..storage.base import LockedToken
from ..tokens import Identity
from ..tokens import Token
from .app_session import has_uncommitted_work
from .app_session import is_uncommitted
from .app_session import watch
from .failures import database_errors
from .failures import storage_error
from .rows import supports_native_upsert
from .rows import TokenRows
from .transactions import engine_for_writes
from .transactions import is_mysql
from .transactions import refuse_self_deadlock
from .transactions import run_in_transaction
from .transactions import run_on_shared_connection
from .transactions import shares_one_connection
from .users import UserIds

if t.TYPE_CHECKING:
    from ..cipher import TokenCipher
    from .locking import ThreadHolds

__all__ = ["SQLAlchemyStorage"]

_T = t.TypeVar("_T")


class SQLAlchemyStorage(BaseStorage):
    """Keep each user's tokens in the app's database.

    :param model: the app's token model, a subclass of :class:`OAuthTokenMixin`.
    :param session: the app's session, usually Flask-SQLAlchemy's ``db.session``. The
        storage uses it to find the engine, to read (except on MySQL and MariaDB) and
        to hand out objects (:meth:`find_user`). It flushes and commits it only when
        a token can't be stored otherwise: for a user not committed yet, and at a
        login whose ``on_login`` left changes in it (see :meth:`set`).
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
        rows = TokenRows(model)
        self.model = model
        self.session = session
        self.anonymous_ok = anonymous_ok
        self.lock_timeout = lock_timeout
        self._rows = rows
        self._table: sa.Table = rows.table
        self._users = UserIds(
            rows.mapper, rows.user_column, rows.user_attr, user, user_id
        )
        self._holds_guard = threading.Lock()
        self._holds_made: ThreadHolds | None = None
        #: Whether the session's flushes are recorded (what on_login inserted).
        self._watched = watch(session)

    @property
    def _holds(self) -> ThreadHolds:
        """The tokens each thread holds the lock of. Made by the first write or
        lock, with :mod:`.locking`, which a worker that only reads tokens never
        loads."""
        holds = self._holds_made
        if holds is None:
            from .locking import ThreadHolds

            with self._holds_guard:
                if self._holds_made is None:
                    self._holds_made = ThreadHolds()
                holds = self._holds_made
        return holds

    # -- the storage protocol ---------------------------------------------------------

    def get(self, provider: str, *, user: t.Any = CURRENT_USER) -> Token | None:
        """Return the token stored for ``provider`` and ``user``, or ``None``; always
        ``None`` for an anonymous user.

        The token is read with a statement of its own, not through the session's
        objects, so the value is the latest committed one, whatever the view's
        session holds.
        """
        user_id = self._users.resolve(user)
        if user_id is None:
            return None
        with database_errors("read", provider):
            with self._connect() as conn:
                return self._rows.read(conn, provider, user_id, for_update=False)

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
        this returns, independently of the view's session, with two exceptions,
        where the session's work must be committed for the token to be stored:

        - ``user`` is not committed yet: added to the session (pending), or
          inserted by a flush of its current transaction, such as a new user
          ``on_login`` added and flushed;
        - at a login (``identity`` given), the session holds uncommitted changes:
          what ``on_login`` did, such as a returning user's profile brought up to
          date.

        Then the session is flushed and, for a user not committed yet, the row
        linking ``identity`` to the user (without the token) is written in the
        session's transaction; the session is committed, and the token written as
        always. If anything fails before that commit, the session is rolled back:
        neither the user nor the token is stored.

        :param identity: the user's identity at the provider, stored in ``issuer``
            and ``subject``; left unchanged when ``None``.
        :raise UserRequired: there is no user (unless ``anonymous_ok``).
        :raise IdentityInUse: ``identity`` is linked to another user.
        :raise ~flask_oauthclient.errors.StorageError: the database failed; nothing
            was written (except, when the session was committed first, what it
            held).
        """
        session = self._current_session()
        if session is not None and self._must_commit_first(session, user, identity):
            self._commit_first(session, provider, user, identity)
        user_id = self._users.resolve(user)
        if user_id is None:
            self._no_user(provider)
            return
        self._holds.refuse_write(provider, user_id, self._engine)
        token = dict(token)
        native = self._native_upsert(self._engine())
        # The portable path (select, then update or insert) can lose a race with a
        # concurrent first insert; it then succeeds as an update on the retry.
        attempts = 1 if native else 2
        for attempt in range(attempts):
            try:
                with database_errors("store", provider, integrity=False):
                    self._in_transaction(
                        lambda conn: self._rows.upsert(
                            conn, provider, user_id, token, identity, native=native
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
                raise storage_error("store", provider, exc) from None
            break
        self._forget_cached(provider, user_id)

    def delete(self, provider: str, *, user: t.Any = CURRENT_USER) -> None:
        """Remove the token of ``provider`` and ``user``, committed when this
        returns; the row stays as the link of the provider identity to the user
        (see :meth:`unlink`). Does nothing for an anonymous user: it never touches
        another user's row."""
        user_id = self._users.resolve(user)
        if user_id is None:
            return
        self._holds.refuse_write(provider, user_id, self._engine)
        with database_errors("delete", provider):
            self._in_transaction(
                lambda conn: self._rows.delete(conn, provider, user_id)
            )
        self._forget_cached(provider, user_id)

    def unlink(self, provider: str, *, user: t.Any = CURRENT_USER) -> None:
        """Remove the token *and* the link between the provider identity and the
        user: the next login with that identity is a stranger's."""
        user_id = self._users.resolve(user)
        if user_id is None:
            return
        self._holds.refuse_write(provider, user_id, self._engine)
        with database_errors("delete", provider):
            self._in_transaction(
                lambda conn: self._rows.unlink(conn, provider, user_id)
            )
        self._forget_cached(provider, user_id)

    def user_key(self, user: t.Any = CURRENT_USER) -> t.Hashable:
        """The user's id, or ``None`` for an anonymous user."""
        return t.cast(t.Hashable, self._users.resolve(user))

    @contextmanager
    def lock(
        self, provider: str, *, user: t.Any = CURRENT_USER
    ) -> t.Iterator[LockedToken]:
        """Hold the token of ``(provider, user)`` exclusively, for a refresh: one
        holder at a time across threads *and* processes.

        The threads of this process queue on a lock in memory; the holder then takes
        a lock in the database, on a connection of its own, and re-reads the token
        under it. PostgreSQL: a transaction-scoped advisory lock on ``(table,
        provider, user)`` plus ``SELECT ... FOR UPDATE`` on the row; MySQL and
        MariaDB: a named lock (``GET_LOCK``) on the same, held until the block
        ends, plus ``SELECT ... FOR UPDATE``; SQLite: ``BEGIN IMMEDIATE`` (the
        database's write lock).

        :meth:`LockedToken.save` and :meth:`LockedToken.delete` write in the locked
        transaction and commit it: the new token is durable when they return (a
        rotated refresh token must never be lost to a later error). The lock is
        released at that point, which is safe since whoever takes it next re-reads
        the new token; another write in the same block takes it again. An exception
        in the block before a write leaves the stored token untouched.
        """
        from ..locks import process_lock
        from .locking import HeldToken

        user_id = self._users.resolve(user)
        with process_lock((id(self), provider, user_id)):
            if user_id is None:
                yield LockedToken(None, lambda _: self._no_user(provider), _nothing)
                return
            if shares_one_connection(self._engine()):
                # One connection for everyone (in-memory SQLite): there is no other
                # process, and a database lock would collide with the view's own
                # transaction; the lock in memory is all there is.
                yield LockedToken(
                    self.get(provider, user=user),
                    lambda token: self.set(provider, token, user=user),
                    lambda: self.delete(provider, user=user),
                )
                return
            self._holds.refuse_write(provider, user_id, self._engine)
            with database_errors("lock", provider):
                engine = self._engine()
                self._refuse_self_deadlock(engine)
            held = HeldToken(
                engine,
                self.lock_timeout,
                self._rows,
                provider,
                user_id,
                native_upsert=self._native_upsert(engine),
                written=lambda: self._forget_cached(provider, user_id),
            )
            token = held.acquire()
            held_here = self._holds.keys()
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
        user_id = self._users.resolve(user)
        if user_id is None:
            return False
        with database_errors("read", provider), self._connect() as conn:
            return self._rows.linked(conn, provider, user_id)

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
        # Imported here: only ``flask oauth reencrypt`` and key rotations use it.
        from .reencrypt import reencrypt_tokens

        return reencrypt_tokens(
            self._table, cipher or current_cipher(), batch_size, self._in_transaction
        )

    # -- finding users ----------------------------------------------------------------

    def find_user(self, provider: str, identity: Identity) -> t.Any | None:
        """Return the app's user whose ``provider`` identity is ``identity``, or
        ``None``. The login flow recognizes a returning user this way, by
        ``(issuer, subject)``, never by email.

        The user is loaded through the app's session (without flushing it), ready for
        ``login_user``.
        """
        params = {
            "provider": provider,
            "issuer": identity.issuer,
            "subject": identity.subject,
        }
        with database_errors("read", provider), self.session.no_autoflush:
            row = (
                self.session.execute(self._rows.identity_stmt, params).scalars().first()
            )
            if row is None:
                return None
            return self._users.user_of(row, self.session)

    # -- internals --------------------------------------------------------------------

    def _must_commit_first(
        self, session: sa_orm.Session, user: t.Any, identity: Identity | None
    ) -> bool:
        """Whether :meth:`set` must commit the app's session before the token."""
        obj = self._users.instance(user)
        if obj is not None and is_uncommitted(session, obj):
            return True
        return identity is not None and has_uncommitted_work(
            session, watched=self._watched
        )

    def _commit_first(
        self,
        session: sa_orm.Session,
        provider: str,
        user: t.Any,
        identity: Identity | None,
    ) -> None:
        """Commit the app's session, with the identity link of a user it created:
        the first step of :meth:`set` when the session holds what the token
        depends on. On failure, the session is rolled back."""
        obj = self._users.instance(user)
        new_user = obj is not None and is_uncommitted(session, obj)
        try:
            with database_errors("store", provider):
                session.flush()  # a pending user gets its id
            user_id = self._users.resolve(user)
            if new_user and user_id is not None:
                # The link goes with the user: a failure after the commit leaves
                # a user the next login finds by identity, never an orphan.
                conn = session.connection(bind_arguments={"mapper": self.model})
                with database_errors("store", provider, integrity=False):
                    self._rows.link(conn, provider, user_id, identity)
            with database_errors("store", provider):
                session.commit()
        except sa_exc.IntegrityError as exc:
            _rollback_quietly(session)
            if identity is not None:
                owner = self._identity_owner(provider, identity)
                if owner is not None:
                    raise IdentityInUse(
                        f"The {provider!r} identity is linked to another user;"
                        " neither the user nor the token was stored."
                    ) from None
            raise storage_error("store", provider, exc) from None
        except BaseException:
            _rollback_quietly(session)
            raise

    #: Whether writes use the database's ``INSERT ... ON CONFLICT``, by engine.
    _native_upsert = staticmethod(supports_native_upsert)

    def _no_user(self, provider: str) -> None:
        if not self.anonymous_ok:
            raise UserRequired(
                f"No user is logged in, so the {provider!r} token can't be stored: log"
                " the user in first, or pass user= to the storage."
            )

    def _engine(self) -> sa.Engine:
        """The engine of the storage's writes and locks: one opening connections of
        its own (see :func:`.engine_for_writes`)."""
        bind = self.session.get_bind(mapper=self.model).engine
        return engine_for_writes(bind)

    @contextmanager
    def _connect(self) -> t.Iterator[sa.Connection]:
        """A connection for reading: the view's own, except on MySQL and MariaDB.

        The view already holds it (Flask-Login loaded the user through it), so a
        read costs no second connection. Writes and locks use connections of their
        own (:meth:`_engine`) and commit before they return, so a read here sees
        them: each statement reads the latest committed data on PostgreSQL (READ
        COMMITTED), and pysqlite begins no transaction for a SELECT. MySQL and
        MariaDB default to REPEATABLE READ, where the view's transaction would keep
        reading the snapshot of its first read: there, reads take a connection of
        the storage's engine (pooled, at READ COMMITTED).
        """
        bind = self.session.get_bind(mapper=self.model).engine
        if is_mysql(bind):
            with engine_for_writes(bind).connect() as conn:
                yield conn
            return
        yield self.session.connection(bind_arguments={"mapper": self.model})

    def _in_transaction(self, work: t.Callable[[sa.Connection], _T]) -> _T:
        """Run ``work`` in a transaction of its own and commit it."""
        engine = self._engine()
        if shares_one_connection(engine):
            conn = self.session.connection(bind_arguments={"mapper": self.model})
            return run_on_shared_connection(conn, work)
        self._refuse_self_deadlock(engine)
        return run_in_transaction(engine, self.lock_timeout, work)

    def _refuse_self_deadlock(self, engine: sa.Engine) -> None:
        refuse_self_deadlock(engine, self._current_session(), self.model)

    def _identity_owner(self, provider: str, identity: Identity) -> t.Any | None:
        with database_errors("read", provider), self._connect() as conn:
            return self._rows.identity_owner(conn, provider, identity)

    def _forget_cached(self, provider: str, user_id: t.Any) -> None:
        """Expire the copies of the row the view's session holds, so that it doesn't
        serve the token as it was before this write."""
        session = self._current_session()
        if session is None:
            return
        user_attr = self._rows.user_attr
        for obj in list(session.identity_map.values()):
            if not isinstance(obj, self.model):
                continue
            loaded = sa.inspect(obj).dict
            if loaded.get("provider", provider) == provider and (
                loaded.get(user_attr, user_id) == user_id
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


def _nothing() -> None:
    pass


def _rollback_quietly(session: sa_orm.Session) -> None:
    """Roll the app's session back after a failed write; a failure here (the
    database is gone) must not hide the first one."""
    try:
        session.rollback()
    except Exception:  # pragma: no cover - the connection is gone already
        pass
