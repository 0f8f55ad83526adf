"""Token storages: where each user's tokens are kept."""

from __future__ import annotations

import typing as t

from ..tokens import Identity
from ..tokens import Token
from .base import BaseStorage
from .base import CURRENT_USER
from .base import LockedToken

if t.TYPE_CHECKING:
    from .memory import MemoryStorage
    from .session import SessionStorage

__all__ = [
    "CURRENT_USER",
    "BaseStorage",
    "Identity",
    "LockedToken",
    "MemoryStorage",
    "SessionStorage",
    "Token",
]


def __getattr__(name: str) -> t.Any:
    # The storages are imported on first use: an app keeps its tokens in one, often
    # another one (SQLAlchemyStorage).
    if name == "MemoryStorage":
        from .memory import MemoryStorage

        return MemoryStorage
    if name == "SessionStorage":
        from .session import SessionStorage

        return SessionStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "MemoryStorage", "SessionStorage"})
