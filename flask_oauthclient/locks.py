"""Locks shared by the threads of this process, one per key.

The single-flight refresh and the storages serialize work per (provider, user) with
them; a database row lock does the same across processes (see :mod:`.refresh`).
"""

from __future__ import annotations

import threading
import typing as t
from contextlib import contextmanager
from weakref import WeakValueDictionary

_locks_guard = threading.Lock()
_locks: WeakValueDictionary[t.Hashable, t.Any] = WeakValueDictionary()


@contextmanager
def process_lock(key: t.Hashable) -> t.Iterator[None]:
    """A lock per key, shared by the threads of this process, dropped when unused."""
    with _locks_guard:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = threading.RLock()
    with lock:
        yield
