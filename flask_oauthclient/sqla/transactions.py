"""The storage's transactions: an engine of its own for writes and locks, and
transactions on it whose writes wait for other writers rather than fail (SQLite:
``BEGIN IMMEDIATE`` and ``busy_timeout``; PostgreSQL: ``lock_timeout``, READ
COMMITTED)."""

from __future__ import annotations

import threading
import typing as t
import weakref

import sqlalchemy as sa
from sqlalchemy import orm as sa_orm

from ..errors import ConfigurationError

__all__ = [
    "Transaction",
    "engine_for_writes",
    "refuse_self_deadlock",
    "run_in_transaction",
    "run_on_shared_connection",
    "shares_one_connection",
]

_T = t.TypeVar("_T")

#: The app's engine → the storage's engine, which opens connections of its own.
_own_engines: weakref.WeakKeyDictionary[sa.Engine, sa.Engine] = (
    weakref.WeakKeyDictionary()
)
_own_engines_lock = threading.Lock()


def shares_one_connection(engine: sa.Engine) -> bool:
    """Whether everyone uses one connection (in-memory SQLite)."""
    return isinstance(engine.pool, (sa.pool.StaticPool, sa.pool.SingletonThreadPool))


def engine_for_writes(bind: sa.Engine) -> sa.Engine:
    """The engine of the storage's writes and locks, for the app's engine ``bind``.

    It reaches the app's database with the app's connection settings, but
    opens a connection per write and closes it after the commit: a view
    already holds one of the app's pooled connections when it writes a token,
    so borrowing a second one from the same pool could leave as many threads
    as connections waiting for each other; and a pool of its own would double
    the idle connections each worker keeps. Writes are rare (a login, a
    refresh, a logout); reads use the view's connection.

    On an in-memory SQLite database, which has one connection for everyone, that is
    ``bind`` itself.
    """
    if shares_one_connection(bind):
        return bind
    own = _own_engines.get(bind)
    if own is None:
        with _own_engines_lock:
            own = _own_engines.get(bind)
            if own is None:
                own = _own_engines[bind] = sa.create_engine(
                    bind.url,
                    poolclass=sa.pool.NullPool,
                    creator=_connection_factory(bind.pool),
                    logging_name="flask_oauthclient",
                    # Statement parameters carry tokens: keep them out of
                    # error messages and logs.
                    hide_parameters=True,
                )
    return own


def _connection_factory(pool: sa.pool.Pool) -> t.Callable[[], t.Any]:
    """A function opening a new DBAPI connection as the app's ``pool`` opens them.

    The connections come from a copy of the app's pool (:meth:`Pool.recreate
    <sqlalchemy.pool.Pool.recreate>`), which has the same creator (the app's URL and
    ``connect_args``, its ``do_connect`` hooks) and the same event listeners (the
    app's ``connect`` hooks, such as SQLite PRAGMAs, and its dialect's), and are
    detached from it at once: the copy never keeps one, nor counts it against its
    size, so nobody waits for it; the storage's engine closes each after use. The
    app's own pool is neither used nor changed.
    """
    copy = pool.recreate()

    def connect() -> t.Any:
        connection = copy.connect()
        connection.detach()
        return connection.dbapi_connection

    return connect


def run_in_transaction(
    engine: sa.Engine, timeout: float, work: t.Callable[[sa.Connection], _T]
) -> _T:
    """Run ``work`` in a :class:`Transaction` of its own and commit it."""
    tx = Transaction(engine, timeout)
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


def run_on_shared_connection(
    conn: sa.Connection, work: t.Callable[[sa.Connection], _T]
) -> _T:
    """Run ``work`` on the one connection everyone shares (in-memory SQLite), and
    commit it."""
    result = work(conn)
    # The one connection is the view's too: committing it is the only way to make
    # the token durable (documented limitation of in-memory SQLite).
    dbapi_connection = conn.connection.dbapi_connection
    if dbapi_connection is not None:
        dbapi_connection.commit()
    return result


def refuse_self_deadlock(
    engine: sa.Engine, session: sa_orm.Session | None, model: type[t.Any]
) -> None:
    """On SQLite, uncommitted writes of the view's session hold the database's
    write lock; waiting for it from the same thread would only time out."""
    if engine.dialect.name != "sqlite":
        return
    if session is None or not session.in_transaction():
        return
    conn = session.connection(bind_arguments={"mapper": model})
    dbapi_connection = conn.connection.dbapi_connection
    if getattr(dbapi_connection, "autocommit", None) is False:
        return  # always "in a transaction": nothing to learn
    if getattr(dbapi_connection, "in_transaction", False):
        raise ConfigurationError(
            "The session has uncommitted writes, which hold the SQLite"
            " database's write lock, so the token can't be written: call"
            " db.session.commit() first (e.g. after creating the user)."
        )


class Transaction:
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
