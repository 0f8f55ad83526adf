"""The storage's transactions: an engine of its own for writes and locks (and, on
MySQL and MariaDB, reads), with a small pool of its own, and transactions on it
whose writes wait for other writers rather than fail (SQLite: ``BEGIN IMMEDIATE``
and ``busy_timeout``; PostgreSQL: ``lock_timeout``; MySQL and MariaDB:
``innodb_lock_wait_timeout`` and ``lock_wait_timeout``; READ COMMITTED on both)."""

from __future__ import annotations

import math
import threading
import typing as t
import weakref

import sqlalchemy as sa
from sqlalchemy import orm as sa_orm

from ..errors import ConfigurationError

__all__ = [
    "Transaction",
    "engine_for_writes",
    "is_mysql",
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

#: Idle connections the storage's engine keeps, where it only writes and locks.
WRITE_POOL_SIZE = 2

#: ``Connection.info`` keys: the wait a connection of the storage's engine is set
#: to (the settings stay with the connection, which only the storage uses).
_BUSY_TIMEOUT = "flask_oauthclient.busy_timeout_ms"
_LOCK_WAIT = "flask_oauthclient.lock_wait_s"


def shares_one_connection(engine: sa.Engine) -> bool:
    """Whether everyone uses one connection (in-memory SQLite)."""
    return isinstance(engine.pool, (sa.pool.StaticPool, sa.pool.SingletonThreadPool))


def is_mysql(engine: sa.Engine | sa.Connection) -> bool:
    """Whether ``engine`` talks to MySQL or MariaDB (SQLAlchemy names the dialect
    ``mysql`` or ``mariadb`` after the URL's scheme)."""
    return engine.dialect.name in ("mysql", "mariadb")


def engine_for_writes(bind: sa.Engine) -> sa.Engine:
    """The engine of the storage's writes and locks (and reads, on MySQL and
    MariaDB), for the app's engine ``bind``.

    It reaches the app's database with the app's connection settings (see
    :func:`_connection_factory`), through a small pool of its own, which never
    makes anyone wait: it keeps a few idle connections and opens more when more
    are needed at once, closing those when they are returned. A view already holds
    one of the app's pooled connections when it writes a token, so borrowing a
    second one from the app's pool could leave as many threads as connections
    waiting for each other.

    The pool keeps :data:`WRITE_POOL_SIZE` connections where it only writes and
    locks (a login, a refresh, a logout); on MySQL and MariaDB, where it reads
    too, as many as the app's pool. An app without a pool (``NullPool``, behind
    PgBouncer say) gets none here either.

    Its connections are at READ COMMITTED (PostgreSQL, MySQL, MariaDB); SQLite's
    leave transactions to :class:`Transaction` (``BEGIN IMMEDIATE``). Disposing of
    the app's engine disposes of it too.

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
                own = _own_engines[bind] = _create_own_engine(bind)
    return own


def _create_own_engine(bind: sa.Engine) -> sa.Engine:
    app_pool = bind.pool
    options: dict[str, t.Any] = {}
    if isinstance(app_pool, sa.pool.NullPool):
        options["poolclass"] = sa.pool.NullPool
    else:
        size = WRITE_POOL_SIZE
        if is_mysql(bind) and isinstance(app_pool, sa.pool.QueuePool):
            size = max(size, app_pool.size())
        options.update(
            poolclass=sa.pool.QueuePool,
            pool_size=size,
            # Never wait for a connection: open one more instead.
            max_overflow=-1,
            # As the app does: a stale connection is found before it fails.
            pool_pre_ping=bool(getattr(app_pool, "_pre_ping", False)),
            pool_recycle=int(getattr(app_pool, "_recycle", -1)),
        )
    if bind.dialect.name != "sqlite":
        # Under REPEATABLE READ (MySQL's default) the re-read after a lock would
        # see the snapshot from before the other holder's commit.
        options["isolation_level"] = "READ COMMITTED"
    own = sa.create_engine(
        bind.url,
        creator=_connection_factory(app_pool),
        logging_name="flask_oauthclient",
        # Statement parameters carry tokens: keep them out of error messages and
        # logs.
        hide_parameters=True,
        **options,
    )
    if bind.dialect.name == "sqlite":
        sa.event.listen(own, "connect", _manual_sqlite_transactions)
    sa.event.listen(bind, "engine_disposed", _Dispose(own))
    return own


class _Dispose:
    """Dispose of the storage's engine along with the app's."""

    def __init__(self, own: sa.Engine) -> None:
        self.own = own

    def __call__(self, engine: sa.Engine) -> None:
        self.own.dispose()


def _manual_sqlite_transactions(dbapi_connection: t.Any, record: t.Any) -> None:
    """Leave transactions to :class:`Transaction` on the storage's SQLite
    connections: pysqlite would emit a deferred ``BEGIN`` of its own before the
    first write, and two such transactions deadlock (SQLite then fails one at once,
    without waiting). The app's connections are not changed."""
    if isinstance(getattr(dbapi_connection, "autocommit", None), bool):
        # Python 3.12+ with autocommit=False keeps a transaction open at all
        # times; autocommit=True leaves BEGIN to us.
        dbapi_connection.autocommit = True
    else:
        dbapi_connection.isolation_level = None


def _connection_factory(pool: sa.pool.Pool) -> t.Callable[[], t.Any]:
    """A function opening a new DBAPI connection as the app's ``pool`` opens them.

    The connections come from a copy of the app's pool (:meth:`Pool.recreate
    <sqlalchemy.pool.Pool.recreate>`), which has the same creator (the app's URL and
    ``connect_args``, its ``do_connect`` hooks) and the same event listeners (the
    app's ``connect`` hooks, such as SQLite PRAGMAs, and its dialect's), and are
    detached from it at once: the copy never keeps one, nor counts it against its
    size, so nobody waits for it; the storage's engine pools them. The app's own
    pool is neither used nor changed.
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
    """A transaction on a connection of the storage's engine
    (:func:`engine_for_writes`), whose writes wait for other writers (up to
    ``timeout`` seconds) rather than fail.

    On SQLite the transaction starts with ``BEGIN IMMEDIATE``, which takes the
    database's write lock up front: a deferred ``BEGIN`` would take it only at the
    first write, after reading, and two such transactions deadlock (SQLite then
    fails one at once, without waiting). The wait is ``busy_timeout`` there;
    ``lock_timeout`` (for this transaction) on PostgreSQL; on MySQL and MariaDB
    ``innodb_lock_wait_timeout`` (row locks) and ``lock_wait_timeout`` (table
    locks, such as a migration's), in whole seconds, rounded up. The connections
    are the storage's own: a setting stays with its connection, made again only
    when another storage wants another wait.
    """

    def __init__(self, engine: sa.Engine, timeout: float) -> None:
        self.dialect = engine.dialect.name
        self.mysql = is_mysql(engine)
        self.timeout = timeout
        self.active = False
        self.conn = engine.connect()

    def begin(self) -> None:
        conn = self.conn
        if self.dialect == "sqlite":
            # Before BEGIN IMMEDIATE, which is what waits.
            milliseconds = max(1, int(self.timeout * 1000))
            self._set(_BUSY_TIMEOUT, milliseconds, "PRAGMA busy_timeout = {}")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.begin()
            if self.dialect == "postgresql":
                milliseconds = max(1, int(self.timeout * 1000))
                # SET LOCAL: a session-wide SET would be undone by a rollback.
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {milliseconds}")
            elif self.mysql:
                seconds = max(1, math.ceil(self.timeout))
                self._set(
                    _LOCK_WAIT,
                    seconds,
                    "SET SESSION innodb_lock_wait_timeout = {0},"
                    " lock_wait_timeout = {0}",
                )
        self.active = True

    def _set(self, key: str, value: int, statement: str) -> None:
        """Run ``statement`` (a setting that outlives transactions) with ``value``,
        unless the connection has that value already."""
        info = self.conn.info
        if info.get(key) != value:
            self.conn.exec_driver_sql(statement.format(value))
            info[key] = value

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

    def invalidate(self) -> None:
        """Close the connection instead of returning it to the pool (it holds
        something a rollback doesn't release)."""
        self.conn.invalidate()

    def close(self) -> None:
        self.conn.close()
