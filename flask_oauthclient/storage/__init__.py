"""Token storages: where each user's tokens are kept."""

from __future__ import annotations

from ..tokens import Identity
from ..tokens import Token
from .base import BaseStorage
from .base import CURRENT_USER
from .base import LockedToken
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
