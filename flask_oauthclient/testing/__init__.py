"""Helpers for testing apps that use Flask-OAuthClient."""

from __future__ import annotations

from typing import Any
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .devprovider import DevClient
    from .devprovider import DevProvider

__all__ = ["DevClient", "DevProvider"]


def __getattr__(name: str) -> Any:
    # Imported on first use: were this package to import devprovider eagerly,
    # ``python -m flask_oauthclient.testing.devprovider`` would find the module
    # already imported and runpy would warn.
    if name in ("DevClient", "DevProvider"):
        from . import devprovider

        return getattr(devprovider, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
