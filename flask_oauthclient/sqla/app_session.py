"""The app's session at a token write: whether it holds a user that is not committed
yet, or other uncommitted work of a login's ``on_login``; and committing that work
(with a new user's identity link) before the storage writes the token on its own
connection. See :meth:`.SQLAlchemyStorage.set`."""

from __future__ import annotations

import typing as t
import weakref

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy import orm as sa_orm

__all__ = ["has_uncommitted_work", "is_uncommitted", "watch"]

#: ``session.info`` key of the :class:`_Flushed` record of the session's current
#: transaction.
_KEY = "flask_oauthclient.flushed"


class _Flushed:
    """What the flushes of one transaction of a session wrote: that they wrote at
    all, and the objects they inserted."""

    def __init__(self, transaction: sa_orm.SessionTransaction) -> None:
        self.transaction = weakref.ref(transaction)
        self.inserted: weakref.WeakSet[sa_orm.InstanceState[t.Any]] = weakref.WeakSet()


def watch(session: sa_orm.Session | sa_orm.scoped_session[t.Any]) -> bool:
    """Have the flushes of ``session`` recorded (for a ``scoped_session``, those of
    every session its factory makes). Idempotent.

    :return: whether that worked; it does for a ``Session``, a ``sessionmaker``'s
        sessions and a ``scoped_session`` over a ``sessionmaker``
        (Flask-SQLAlchemy's ``db.session``).
    """
    try:
        if not sa.event.contains(session, "after_flush", _after_flush):
            sa.event.listen(session, "after_flush", _after_flush)
    except (sa_exc.ArgumentError, sa_exc.InvalidRequestError):
        return False
    return True


def _after_flush(session: sa_orm.Session, flush_context: t.Any) -> None:
    # After the flush, before its bookkeeping: session.new still lists the objects
    # it just inserted.
    transaction = session.get_transaction()
    if transaction is None:  # pragma: no cover - a flush runs in a transaction
        return
    record = _record(session)
    if record is None:
        record = session.info[_KEY] = _Flushed(transaction)
    for obj in session.new:
        record.inserted.add(sa.inspect(obj))


def _record(session: sa_orm.Session) -> _Flushed | None:
    """The record of the session's current transaction, if it flushed."""
    record = session.info.get(_KEY)
    if not isinstance(record, _Flushed):
        return None
    transaction = session.get_transaction()
    if transaction is None or record.transaction() is not transaction:
        return None  # an earlier transaction's: committed or rolled back
    return record


def is_uncommitted(session: sa_orm.Session, user: t.Any) -> bool:
    """Whether ``user`` is an object of ``session`` that exists only in the session's
    transaction: added (pending), or inserted by a flush of the current transaction
    (as recorded by :func:`watch`)."""
    state = sa.inspect(user, raiseerr=False)
    if not isinstance(state, sa_orm.InstanceState) or state.session is not session:
        return False
    if state.pending:
        return True
    record = _record(session)
    return record is not None and state in record.inserted


def has_uncommitted_work(session: sa_orm.Session, *, watched: bool) -> bool:
    """Whether ``session`` holds changes not committed yet: unflushed ones, or
    (when :func:`watch` works for it, ``watched``) flushed ones; without ``watched``,
    any transaction in progress counts."""
    if session.new or session.deleted or session.dirty:
        return True
    if not watched:
        return session.in_transaction()
    return _record(session) is not None
