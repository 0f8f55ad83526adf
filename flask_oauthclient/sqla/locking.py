"""The database side of :meth:`.SQLAlchemyStorage.lock`: a token row held in a
transaction of its own (PostgreSQL: an advisory lock plus ``SELECT ... FOR UPDATE``;
MySQL and MariaDB: ``GET_LOCK`` plus ``SELECT ... FOR UPDATE``; SQLite: ``BEGIN
IMMEDIATE``), and the tokens each thread holds."""

from __future__ import annotations

import hashlib
import threading
import typing as t

import sqlalchemy as sa

from ..errors import StorageError
from ..tokens import Token
from .failures import database_errors
from .rows import TokenRows
from .transactions import Transaction

__all__ = ["HeldToken", "ThreadHolds"]

# (provider, user id) pairs; an alias, as the storage's set() method hides ``set``.
_HeldKeys = set[tuple[str, t.Any]]


class ThreadHolds:
    """The tokens each thread holds the database lock of."""

    def __init__(self) -> None:
        self._local = threading.local()

    def keys(self) -> _HeldKeys:
        """The ``(provider, user id)`` of the tokens this thread holds."""
        held: _HeldKeys | None = getattr(self._local, "keys", None)
        if held is None:
            held = self._local.keys = _HeldKeys()
        return held

    def refuse_write(
        self, provider: str, user_id: t.Any, engine: t.Callable[[], sa.Engine]
    ) -> None:
        """Fail when this thread may not write the token now.

        :param engine: returns the engine of the write.
        """
        # The write would wait for the lock this very thread holds, until it timed
        # out: fail at once, saying what to do instead.
        held = self.keys()
        if (provider, user_id) in held:
            raise RuntimeError(
                f"This thread holds the lock of the {provider!r} token: write it"
                " through the LockedToken that lock() gave (save(), delete())."
            )
        if held and engine().dialect.name == "sqlite":
            raise RuntimeError(
                "This thread holds a token lock, which on SQLite is the database's"
                " write lock: write other tokens after leaving the lock() block."
            )


class HeldToken:
    """The database side of :meth:`.SQLAlchemyStorage.lock`: the token of
    ``(provider, user_id)``, held in a :class:`.Transaction` on ``engine``.

    :param native_upsert: how :meth:`save` writes (see :meth:`.TokenRows.upsert`).
    :param written: called after each committed write.
    """

    def __init__(
        self,
        engine: sa.Engine,
        timeout: float,
        rows: TokenRows,
        provider: str,
        user_id: t.Any,
        *,
        native_upsert: bool,
        written: t.Callable[[], None],
    ) -> None:
        self.engine = engine
        self.timeout = timeout
        self.rows = rows
        self.provider = provider
        self.user_id = user_id
        self.native_upsert = native_upsert
        self.written = written
        self.tx: Transaction | None = None
        #: Whether this holder has the MySQL/MariaDB named lock (GET_LOCK), which
        #: belongs to the connection, not to the transaction.
        self._named_lock = False

    def acquire(self) -> Token | None:
        """Take the lock and read the token under it."""
        with database_errors("lock", self.provider):
            self.tx = Transaction(self.engine, self.timeout)
            try:
                self._lock(self.tx)
                return self.rows.read(
                    self.tx.conn, self.provider, self.user_id, for_update=True
                )
            except BaseException:
                self.release()
                raise

    def _lock(self, tx: Transaction) -> None:
        tx.begin()  # SQLite: BEGIN IMMEDIATE is the lock.
        if tx.dialect == "postgresql":
            # FOR UPDATE locks nothing while the row doesn't exist (the first token
            # of a user, or after a delete); an advisory lock on (table, provider,
            # user) serializes those holders too. It is released with the
            # transaction, so a dead holder never leaves it behind. The FOR UPDATE
            # still matters: it makes plain set() and delete() wait for the holder.
            key = sa.cast(sa.literal(self._advisory_key()), sa.BigInteger)
            tx.conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
        elif tx.mysql and not self._named_lock:
            # The same for MySQL and MariaDB (whose FOR UPDATE locks no gap at
            # READ COMMITTED): a named lock, held by the connection until
            # release(), or until the connection closes (a dead holder's does).
            got = tx.conn.execute(
                sa.select(sa.func.get_lock(self._lock_name(tx), self.timeout))
            ).scalar()
            if got != 1:
                raise StorageError(
                    f"Could not lock the {self.provider!r} token: another holder"
                    f" kept it longer than {self.timeout:g} s."
                )
            self._named_lock = True

    def _digest(self, *parts: str) -> bytes:
        # Python's hash() differs between processes; every process must agree.
        table = self.rows.table
        name = "\0".join((table.fullname, self.provider, str(self.user_id), *parts))
        return hashlib.blake2b(name.encode(), digest_size=8).digest()

    def _advisory_key(self) -> int:
        return int.from_bytes(self._digest(), "big", signed=True)

    def _lock_name(self, tx: Transaction) -> str:
        # Named locks are server-wide: the database is part of the name, and
        # names are at most 64 characters.
        database = tx.conn.engine.url.database or ""
        return f"flask_oauthclient:{self._digest(database).hex()}"

    def save(self, token: t.Mapping[str, t.Any]) -> None:
        token = dict(token)
        self._write(
            lambda conn: self.rows.upsert(
                conn,
                self.provider,
                self.user_id,
                token,
                None,
                native=self.native_upsert,
            )
        )

    def delete(self) -> None:
        self._write(lambda conn: self.rows.delete(conn, self.provider, self.user_id))

    def _write(self, work: t.Callable[[sa.Connection], None]) -> None:
        tx = self.tx
        if tx is None:
            raise RuntimeError("The token lock is no longer held.")
        with database_errors("store", self.provider):
            try:
                if not tx.active:  # an earlier write released the lock
                    self._lock(tx)
                work(tx.conn)
                tx.commit()
            except BaseException:
                tx.rollback_quietly()
                raise
        self.written()

    def release(self) -> None:
        """Release the lock. Every write was committed when made, so what is left
        is only the lock itself: roll back."""
        tx, self.tx = self.tx, None
        if tx is None:
            return
        try:
            if tx.active:
                tx.rollback_quietly()
            if self._named_lock:
                self._named_lock = False
                try:
                    tx.conn.execute(
                        sa.select(sa.func.release_lock(self._lock_name(tx)))
                    )
                    tx.conn.rollback()
                except Exception:
                    # Closing the connection releases the lock.
                    tx.invalidate()
        finally:
            tx.close()
